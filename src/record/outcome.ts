/**
 * How a request ended, as Envoy's stream info records it: the response code and the response flags.
 * The sidecar, the fastify plugin and the undici interceptor report what happened (finished, reset by whom,
 * which error); this file is the one place that turns those facts into `response_code` / `response_flags`.
 *
 * Envoy sources: `source/common/router/router.cc` (upstream failures and their local replies),
 * `source/common/stream_info/utility.cc` (flag letters), `source/common/http/conn_manager_impl.cc`
 * (DC: the downstream closed before the response completed).
 */
import { ResponseFlag } from '../stats/types.js';

/** How one upstream attempt failed, as the dispatch layer saw it. */
export type UpstreamFailureKind =
  /** No connection was made: retryable (Envoy UF). */
  | 'connect'
  /** Connected, then reset or closed before a response head (Envoy UC). */
  | 'reset';

/** A local reply: the status the proxy answers with and the flags that explain it. */
export interface LocalReplyOutcome {
  readonly responseCode: number;
  readonly responseFlags: number;
}

/**
 * True for an error that says the upstream's bytes were not HTTP: Node's llhttp parser errors
 * (`HPE_*` codes, which undici's `HTTPParserError` carries too) and undici's response-head errors.
 * Envoy answers those 502 with `UPE` (upstream protocol error), not 503 `UC`.
 */
export function isUpstreamProtocolError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const { code, name } = err as { code?: unknown; name?: unknown };
  if (typeof code === 'string' && (code.startsWith('HPE_') || code === 'UND_ERR_INFO' || code === 'ERR_HTTP2_PROTOCOL_ERROR')) return true;
  return name === 'HTTPParserError';
}

/**
 * The local reply for a failed upstream attempt once no retry is left (router.cc `onUpstreamReset`):
 * connect failure → 503 `UF` (`UF,URX` when retries were spent), malformed response → 502 `UPE`,
 * reset before the head → 503 `UC`.
 */
export function upstreamFailureOutcome(kind: UpstreamFailureKind, err: unknown, retried: boolean): LocalReplyOutcome {
  if (isUpstreamProtocolError(err)) return { responseCode: UPSTREAM_PROTOCOL_ERROR_CODE, responseFlags: ResponseFlag.UPE };
  if (kind === 'connect') return { responseCode: UPSTREAM_FAILURE_CODE, responseFlags: ResponseFlag.UF | (retried ? ResponseFlag.URX : 0) };
  return { responseCode: UPSTREAM_FAILURE_CODE, responseFlags: ResponseFlag.UC };
}

/**
 * The flag of a TCP connection whose upstream failed (Envoy tcp_proxy): `UF` when it never connected, `UC` when
 * it was reset or closed with an error after connecting. The sidecar's inbound and outbound TCP proxies both call it.
 */
export function tcpUpstreamErrorFlag(connected: boolean): number {
  return connected ? ResponseFlag.UC : ResponseFlag.UF;
}

/** The router's local reply codes: 503 for no connection or a reset, 502 for bytes that are not HTTP, 504 for a route timeout. */
export const UPSTREAM_FAILURE_CODE = 503;
export const UPSTREAM_PROTOCOL_ERROR_CODE = 502;
export const ROUTE_TIMEOUT_CODE = 504;

/**
 * Flags for a stream that closed before its response completed. DC is the downstream's doing only: when the
 * proxy itself reset the downstream (upstream reset mid-body, route timeout after the head), the flags it set
 * then (UC, UT) stand and DC is not added.
 */
export function closedEarlyFlags(flags: number, resetByProxy: boolean): number {
  return resetByProxy ? flags : flags | ResponseFlag.DC;
}

/** The response code of a stream the downstream left: what was sent, or 0 when no head was sent (Envoy). */
export function closedEarlyCode(status: number, headSent: boolean): number {
  return headSent ? status : 0;
}

/** Facts of a server-side stream at close (fastify inbound): did it finish, was a head sent, which status, who left. */
export interface ServerStreamFacts {
  readonly finished: boolean;
  readonly headersSent: boolean;
  readonly statusCode: number;
  /** The client ended or reset the connection (record/connection.ts `peerClosed`). */
  readonly peerClosed?: boolean;
}

/**
 * Code and flags of an inbound stream seen from inside the app, as an inbound sidecar in front of the app would
 * record it: finished → the status; the client left → DC (code 0 before a head); the app itself ended the stream
 * unfinished (destroyed its response or socket) → the app reset its upstream side, `UC`, answered 503 before a
 * head (router.cc's local reply) and keeping the sent status after one.
 */
export function serverStreamOutcome(facts: ServerStreamFacts): LocalReplyOutcome {
  if (facts.finished) return { responseCode: facts.statusCode, responseFlags: 0 };
  if (facts.peerClosed !== false) return { responseCode: closedEarlyCode(facts.statusCode, facts.headersSent), responseFlags: closedEarlyFlags(0, false) };
  return { responseCode: facts.headersSent ? facts.statusCode : UPSTREAM_FAILURE_CODE, responseFlags: ResponseFlag.UC };
}

const CONNECT_FAILURE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'ENETUNREACH']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Flags of an outbound client request that failed with `err` (undici interceptor): the flags an outbound
 * sidecar would set for the same failure. The app aborting is the downstream leaving (DC).
 */
export function clientErrorFlags(err: Error): number {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_ABORTED' || err.name === 'AbortError') return ResponseFlag.DC;
  if (TIMEOUT_CODES.has(code)) return ResponseFlag.UT;
  if (CONNECT_FAILURE_CODES.has(code)) return ResponseFlag.UF;
  if (isUpstreamProtocolError(err)) return ResponseFlag.UPE;
  return ResponseFlag.UC;
}

/**
 * Code of an outbound client request at its end, as an outbound sidecar records it: after a response head, the
 * code that was received; with no head, the local reply the sidecar would have answered the app with (router.cc):
 * 504 for a timeout (UT), 502 for a protocol error (UPE), 503 for a connect failure or a reset (UF, UC); 0 when
 * the app itself left first (DC), as Envoy reports a downstream that got nothing.
 */
export function clientResponseCode(status: number, flags: number): number {
  if (status !== 0 || flags === 0) return status;
  if ((flags & ResponseFlag.DC) !== 0) return 0;
  if ((flags & ResponseFlag.UT) !== 0) return ROUTE_TIMEOUT_CODE;
  if ((flags & ResponseFlag.UPE) !== 0) return UPSTREAM_PROTOCOL_ERROR_CODE;
  return UPSTREAM_FAILURE_CODE;
}

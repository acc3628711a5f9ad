/**
 * Upstream connections for the HTTP listeners (Envoy's per-cluster connection pools): the interface the
 * proxy calls, and which pool takes a request.
 *
 * - bodyless plain-text HTTP/1.1 requests: an undici Agent driven through its dispatch handler API
 *   (upstream-undici.ts), the fastest path;
 * - requests with a body, mTLS requests and WebSocket upgrades: keep-alive node:http/https agents
 *   (upstream-h1.ts), because a retry after a connection failure must not lose the body (undici destroys
 *   it on a connect error) and the upstream certificate (the principal) is read from node's socket;
 * - h2c/gRPC/h2 over mTLS: one cached HTTP/2 session per endpoint (upstream-h2.ts).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { DEFAULT_LISTENER_LIMITS } from './listener-limits.js';
import type { SidecarTls } from './tls.js';
import { createH2Upstream } from './upstream-h2.js';
import { createNodeHttpUpstream } from './upstream-h1.js';
import { createUndiciUpstream } from './upstream-undici.js';

/** Where to send one request. */
export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  /** `h2` for http2/grpc ports (prior-knowledge h2c, or h2 over mTLS). */
  readonly h2: boolean;
  /** Use mutual TLS (mesh endpoint with a sidecar, and TLS configured). */
  readonly tls: boolean;
  /** Under mTLS: the SPIFFE id the endpoint's certificate must carry (mesh `identity`), else any in our trust domain. */
  readonly identity?: string | undefined;
}

/**
 * Receives the response body of one attempt (the proxy's per-request state implements it, so the
 * body path allocates no closure per request).
 */
export interface UpstreamBodySink {
  /** A body chunk; return false to stop the flow until {@link UpstreamResponse.resume} is called. */
  onBodyData(chunk: Buffer): void | boolean;
  /** The body ended; the trailers when the upstream sent any. */
  onBodyEnd(trailers: IncomingHttpHeaders | undefined): void;
  /** The upstream failed mid-body (reset, error): nothing more comes. */
  onBodyError(err: Error): void;
  /** The upstream aborted mid-body (node's `aborted` event): an error or the end may still follow. */
  onBodyAborted(): void;
}

/** The upstream's response head, and its body on demand. */
export interface UpstreamResponse {
  readonly status: number;
  /** Response headers, pseudo-headers removed. A fresh object: the caller may modify it. */
  readonly headers: IncomingHttpHeaders;
  /** The head carried END_STREAM (gRPC trailers-only response): there is no body and no trailers. */
  readonly endStream: boolean;
  /** Upstream certificate SPIFFE id under mTLS, else `''`. */
  readonly peerPrincipal: string;
  /** Approximate wire size of the response head (for h2 downstream accounting). */
  readonly headBytes: number;
  /**
   * Deliver the body to `sink`. Call it, {@link drain} or {@link destroy} synchronously in
   * `onResponse`: body bytes that arrive before any of them are dropped.
   */
  pipeBody(sink: UpstreamBodySink): void;
  /** Restart a flow stopped by `onBodyData` returning false. */
  resume(): void;
  /** Read and drop the body (keeps the connection reusable). */
  drain(): void;
  /** Abandon the response: the upstream stream (and for HTTP/1.1 its connection) is closed. */
  destroy(): void;
}

/** How an attempt failed. */
export type UpstreamFailure =
  /** No connection was made; nothing of the body was sent: retryable (Envoy UF). */
  | 'connect'
  /** Connected but reset/closed before a response head (Envoy UC). */
  | 'reset';

/** Callbacks of one attempt; exactly one of them is called once. */
export interface UpstreamHandlers {
  onUpstreamResponse(res: UpstreamResponse): void;
  onUpstreamError(kind: UpstreamFailure, err: Error): void;
}

/** A running attempt. */
export interface UpstreamCall {
  /** Abandon the attempt (downstream went away, timeout). */
  abort(): void;
}

/** Callbacks of an upgrade attempt: the 101 hands over the upstream socket; any other answer is a response. */
export interface UpstreamUpgradeHandlers extends UpstreamHandlers {
  onUpstreamUpgrade(headers: IncomingHttpHeaders, socket: Socket, head: Buffer, peerPrincipal: string): void;
}

/** Options of {@link createUpstreamPool}. */
export interface UpstreamPoolOptions {
  readonly tls?: SidecarTls;
  /** Max sockets per HTTP/1.1 endpoint. */
  readonly maxSocketsPerHost?: number;
  /**
   * An HTTP/2 session with no stream open for this long is closed (GOAWAY), ms. Envoy's upstream
   * `common_http_protocol_options.idle_timeout` (Istio `connectionPool.http.idleTimeout`), 1 h by default.
   */
  readonly idleTimeoutMs?: number;
  /**
   * A pooled HTTP/1.1 socket with no request on it is closed after this long, ms (both the node:http agents
   * and undici; a shorter `Keep-Alive: timeout=` hint from the upstream wins, a longer one does not).
   * See `ListenerLimits.upstreamKeepAliveTimeoutMs`.
   */
  readonly keepAliveTimeoutMs?: number;
}

/** The per-listener connection pools. */
export interface UpstreamPool {
  /**
   * Send a request. `body` (the downstream request) is piped only once connected; `onBodyChunk`
   * sees each chunk as it is sent (gRPC message counting, h2 byte accounting).
   */
  request(
    target: UpstreamTarget,
    method: string,
    path: string,
    authority: string,
    headers: OutgoingHttpHeaders,
    body: Readable | null,
    handlers: UpstreamHandlers,
    onBodyChunk?: (chunk: Buffer) => void,
  ): UpstreamCall;
  /**
   * Send an HTTP/1.1 upgrade request (WebSocket) on a connection of its own (an upgraded connection
   * never returns to a pool). Upgrades need no body: whatever follows the head is the upgraded stream.
   */
  upgrade(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, handlers: UpstreamUpgradeHandlers): UpstreamCall;
  /** Destroy every pooled connection; resolves once undici's pool has released its sockets and timers. */
  close(): Promise<void>;
  /** Open HTTP/2 sessions (for tests and the soak's leak probes). */
  readonly h2Sessions: number;
}

/** Create the pools. */
export function createUpstreamPool(options: UpstreamPoolOptions = {}): UpstreamPool {
  const maxSockets = options.maxSocketsPerHost ?? 1024;
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? DEFAULT_LISTENER_LIMITS.upstreamKeepAliveTimeoutMs;
  const node = createNodeHttpUpstream(options, maxSockets, keepAliveTimeoutMs);
  const h2 = createH2Upstream(options, options.idleTimeoutMs ?? DEFAULT_LISTENER_LIMITS.upstreamIdleTimeoutMs);
  const undici = createUndiciUpstream(maxSockets, keepAliveTimeoutMs);
  return {
    upgrade: node.upgrade,
    request(target, method, path, authority, headers, body, handlers, onBodyChunk) {
      if (body === null && !target.h2 && !target.tls && headers.expect === undefined) return undici.request(target, method, path, authority, headers, handlers);
      return target.h2
        ? h2.request(target, method, path, authority, headers, body, handlers, onBodyChunk)
        : node.request(target, method, path, authority, headers, body, handlers, onBodyChunk);
    },
    async close() {
      node.close();
      const undiciClosed = undici.close();
      h2.close();
      await undiciClosed;
    },
    get h2Sessions() {
      return h2.size;
    },
  };
}

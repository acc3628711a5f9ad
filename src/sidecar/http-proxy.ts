/**
 * The HTTP filter chain of one listener (inbound or outbound), written once for HTTP/1.1 and HTTP/2:
 * metadata exchange, routing, the upstream call with Istio's retries, and one stats record per
 * request per reporter, whatever happens (istio/proxy `istio_stats.cc` records from the access-log
 * hook, i.e. exactly once per stream, including local replies and resets).
 *
 * Failure mapping (envoy `source/common/router/router.cc`, `stream_info/utility.h`):
 * connection refused → 503 `UF` (`UF,URX` once Istio's 2 retries are spent), reset before the head
 * → 503 `UC`, route timeout → 504 `UT`, unknown port of a known service → 404 `NR`, no endpoints →
 * 503 `UH`, downstream gone before the end → `DC` with response code 0 when no head was sent.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Logger } from '../core/logger.js';
import type { ExchangeExtract, MetadataExchangeMode } from '../exchange/types.js';
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import { formatResponseFlags } from '../stats/response-flags.js';
import { ResponseFlag } from '../stats/types.js';
import type { HttpStreamAttributes, ServiceInfo, SpecialCluster } from '../stats/types.js';
import type { HopSpan } from '../tracing/types.js';
import { createGrpcMessageCounter } from './grpc-frames.js';
import type { GrpcMessageCounter } from './grpc-frames.js';
import type { ServiceRegistry, ServiceRoute, ResolvedEndpoint } from './registry.js';
import { splitAuthority } from './registry.js';
import type { PeriodicReport, ReportingTicker } from './reporting-ticker.js';
import type { SidecarTelemetry } from './telemetry.js';
import { peerOf } from './telemetry.js';
import type { UpstreamCall, UpstreamFailure, UpstreamPool, UpstreamResponse, UpstreamTarget } from './upstream.js';

/** Downstream request/response as node:http or the node:http2 compatibility API gives them. */
export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;
/** A request handler usable by both servers. */
export type HttpHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;

/** Symbol under which a listener stores per-connection facts on the raw socket. */
export const CONNECTION_INFO = Symbol('meshtel.connection');

/** Per-connection facts, computed once at accept time. */
export interface ConnectionInfo {
  /** Downstream certificate SPIFFE id (mTLS), `''` in plain text. */
  readonly peerPrincipal: string;
  /** Our SPIFFE id on this connection (mTLS), `''` in plain text. */
  readonly localPrincipal: string;
  /** Bytes already attributed to earlier requests on this keep-alive connection. */
  read: number;
  written: number;
}

/** Options of {@link createHttpProxyHandler}. */
export interface HttpProxyOptions {
  readonly direction: 'inbound' | 'outbound';
  readonly telemetry: SidecarTelemetry;
  readonly pool: UpstreamPool;
  readonly ticker: ReportingTicker;
  readonly logger: Logger;
  /** Inbound: the local app. */
  readonly app?: { readonly host: string; readonly port: number; readonly h2: boolean };
  /** Inbound: the service this workload backs (cluster metadata `istio.services[0]`). */
  readonly inboundService?: ServiceInfo | null;
  /** Outbound: the registry. */
  readonly registry?: ServiceRegistry;
  /** Outbound per-service listener: every request goes to this service port, whatever its Host. */
  readonly fixedRoute?: ServiceRoute;
  /** Istio `outboundTrafficPolicy.mode`. */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** `proxyHeaders.metadataExchangeHeaders.mode`. */
  readonly mxMode?: MetadataExchangeMode;
  /** Send to mesh endpoints with a sidecar over mutual TLS. */
  readonly mtls?: boolean;
  /** Our SPIFFE id when mTLS is configured (outbound local principal). */
  readonly localPrincipal?: string;
  /** Retries on connection failure (Istio default 2). */
  readonly retries?: number;
  /** Route timeout in ms, 0 = none (Istio's default). */
  readonly timeoutMs?: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);

/** HTTP status → gRPC status for local replies (envoy `source/common/grpc/status.cc` `httpToGrpcStatus`). */
function httpToGrpcStatus(code: number): number {
  switch (code) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

/** Local reply bodies, Envoy's wording. */
const LOCAL_REPLY: Record<number, string> = {
  404: 'route not found',
  502: '',
  503: 'no healthy upstream',
  504: 'upstream request timeout',
};

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Build the handler of one listener. */
export function createHttpProxyHandler(options: HttpProxyOptions): HttpHandler {
  const { telemetry, pool, ticker, logger } = options;
  const inbound = options.direction === 'inbound';
  const reporter = inbound ? 'destination' : 'source';
  const retries = options.retries ?? 2;
  const timeoutMs = options.timeoutMs ?? 0;
  const policy = options.outboundTrafficPolicy ?? 'ALLOW_ANY';
  const inMesh = options.mxMode === 'IN_MESH';
  const mtls = options.mtls === true;
  const telemetryOn = telemetry.enabled;
  const tracer = telemetry.tracer;
  const activity = telemetry.activity;

  return function handle(req, res) {
    const start = performance.now();
    activity.active++;
    const h2 = req.httpVersionMajor === 2;
    const rawSocket = (h2 ? (req as Http2ServerRequest).stream.session?.socket : req.socket) as (Socket & { [CONNECTION_INFO]?: ConnectionInfo }) | undefined;
    const conn = rawSocket?.[CONNECTION_INFO];
    const method = req.method ?? 'GET';
    const reqHeaders = req.headers;
    const contentType = firstHeader(reqHeaders['content-type']) ?? '';
    const grpc = contentType.startsWith('application/grpc');

    // --- target ---------------------------------------------------------------------------
    let authority = firstHeader(reqHeaders[':authority']) ?? firstHeader(reqHeaders.host) ?? '';
    let path = req.url ?? '/';
    let absolutePort: number | undefined;
    if (!inbound && !h2 && path.charCodeAt(0) !== 47 /* '/' */) {
      // Absolute-form request from an app using us as HTTP_PROXY (RFC 9112 §3.2.2).
      try {
        const u = new URL(path);
        authority = u.host;
        path = `${u.pathname}${u.search}`;
        absolutePort = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
      } catch {
        // Not a URL: routed as an origin-form path below, which fails to match any route.
      }
    }

    let route: ServiceRoute | undefined;
    let service: ServiceInfo | null = null;
    let special: SpecialCluster | undefined;
    let localReply = 0;
    let flags = 0;
    let mxOn = telemetryOn;
    if (inbound) {
      service = options.inboundService ?? null;
    } else {
      route = options.fixedRoute ?? options.registry?.resolve(authority, absolutePort ?? 80);
      if (route) {
        service = route.service;
        if (route.endpoints.length === 0) {
          localReply = 503;
          flags |= ResponseFlag.UH;
        }
        if (inMesh && route.external) mxOn = false;
      } else if (options.registry?.hasHost(authority) === true) {
        // Known host, unknown port: no route (Envoy 404 NR).
        localReply = 404;
        flags |= ResponseFlag.NR;
      } else if (policy === 'REGISTRY_ONLY') {
        // Istio's block_all catch-all virtual host: direct response 502, cluster BlackHoleCluster.
        special = 'BlackHoleCluster';
        localReply = 502;
      } else {
        special = 'PassthroughCluster';
        if (inMesh) mxOn = false;
      }
    }

    // --- downstream MX (inbound) ----------------------------------------------------------
    let extract: ExchangeExtract | undefined;
    let peer: PeerMetadata | null = null;
    let unknownReason: UnknownPeerReason | undefined;
    if (telemetryOn && inbound) {
      extract = telemetry.readRequestPeer(reqHeaders);
      peer = peerOf(extract);
      if (!extract.result.ok) unknownReason = extract.result.reason;
    }

    let span: HopSpan | undefined;
    if (telemetryOn) {
      const { port } = splitAuthority(authority);
      span = tracer.startSpan(reqHeaders as Record<string, string | string[] | undefined>, {
        kind: inbound ? 'server' : 'client',
        method,
        url: `http://${authority}${path}`,
        authority,
        protocol: h2 ? 'HTTP/2' : 'HTTP/1.1',
        peerAddress: req.socket?.remoteAddress,
        port: route?.port ?? port ?? options.app?.port ?? 80,
        serviceHost: service?.host,
      });
    }

    // --- state of this stream ------------------------------------------------------------
    let done = false;
    let headSent = false;
    let status = 0;
    let grpcStatus: string | undefined;
    let upstreamPrincipal = '';
    let upstreamCall: UpstreamCall | undefined;
    let timer: NodeJS.Timeout | undefined;
    let reqCounter: GrpcMessageCounter | undefined;
    let respCounter: GrpcMessageCounter | undefined;
    let reportedReq = 0;
    let reportedResp = 0;
    let periodic: PeriodicReport | undefined;
    let respHeadersOut: OutgoingHttpHeaders | undefined;
    // h2 has no per-stream socket counters: bytes are estimated from frames (see wireBytes()).
    let h2ReqBytes = 0;
    let h2RespBytes = 0;
    if (h2) h2ReqBytes = headerBlockSize(reqHeaders);
    if (grpc && telemetryOn) {
      reqCounter = createGrpcMessageCounter();
      respCounter = createGrpcMessageCounter();
    }
    let endpointPeer: PeerMetadata | null = null;

    const attrs = (final: boolean): HttpStreamAttributes => {
      const [requestBytes, responseBytes] = final ? wireBytes() : [0, 0];
      return {
        reporter,
        peer: peer ?? endpointPeer,
        ...(peer === null && unknownReason !== undefined ? { peerUnknownReason: unknownReason } : {}),
        peerPrincipal: inbound ? (conn?.peerPrincipal ?? '') : upstreamPrincipal,
        localPrincipal: inbound ? (conn?.localPrincipal ?? '') : upstreamPrincipal !== '' ? (options.localPrincipal ?? '') : '',
        service,
        ...(special ? { specialCluster: special } : {}),
        remoteAddress: req.socket?.remoteAddress,
        authority,
        protocol: grpc ? 'grpc' : 'http',
        responseCode: status,
        ...(grpcStatus !== undefined ? { grpcStatus } : {}),
        responseFlags: flags,
        durationMs: performance.now() - start,
        requestBytes,
        responseBytes,
        method,
        path,
        requestHeaders: reqHeaders,
        ...(respHeadersOut ? { responseHeaders: respHeadersOut as Record<string, string | string[] | undefined> } : {}),
        ...(span?.sampled ? { traceId: span.traceId } : {}),
      };
    };

    const wireBytes = (): [number, number] => {
      if (h2) return [h2ReqBytes, h2RespBytes];
      const s = req.socket;
      if (!s || !conn) return [0, 0];
      const r = s.bytesRead - conn.read;
      const w = s.bytesWritten - conn.written;
      conn.read = s.bytesRead;
      conn.written = s.bytesWritten;
      return [r, w];
    };

    const finish = (): void => {
      if (done) return;
      done = true;
      activity.active--;
      if (timer) clearTimeout(timer);
      if (!telemetryOn) return;
      if (periodic) ticker.delete(periodic);
      try {
        const a = attrs(true);
        telemetry.recordHttp(a);
        if (peer === null && unknownReason !== undefined) telemetry.recordPeerUnknown(unknownReason, reporter);
        if (reqCounter && respCounter) {
          telemetry.recordGrpcMessages(a, reqCounter.total - reportedReq, respCounter.total - reportedResp);
        }
        span?.end({
          statusCode: status,
          responseFlags: formatResponseFlags(flags),
          // Envoy cluster names: outbound|<port>||<host>, inbound|<port>||.
          upstreamCluster: special ?? (inbound ? `inbound|${options.app?.port ?? 0}||` : service ? `outbound|${route?.port ?? 0}||${service.host}` : ''),
          requestSize: a.requestBytes,
          responseSize: a.responseBytes,
          ...(grpcStatus !== undefined ? { grpcStatus } : {}),
          peer: a.peer,
        });
      } catch (err) {
        logger.warnOnce('record-http', 'recording a request failed', { err });
      }
    };

    // Downstream went away before we finished: Envoy DC, code 0 when nothing was sent.
    let ended = false;
    res.on('close', () => {
      if (done) return;
      if (!ended) {
        flags |= ResponseFlag.DC;
        if (!headSent) status = 0;
        upstreamCall?.abort();
      }
      finish();
    });
    res.on('finish', () => {
      ended = true;
      // HTTP/1.1 'finish' means fully handed to the socket; h2 streams are recorded at 'close'.
      if (!h2) finish();
    });

    const countRequestChunk = (chunk: Buffer): void => {
      if (h2) h2ReqBytes += chunk.length + 9;
      if (reqCounter) reqCounter.push(chunk);
    };

    const reply = (code: number, extraFlags: number): void => {
      flags |= extraFlags;
      if (headSent || res.headersSent) {
        // The head is out: all we can do is reset (Envoy resets the downstream stream).
        res.destroy();
        return;
      }
      headSent = true;
      status = code;
      const headers: OutgoingHttpHeaders = {};
      let body = '';
      if (grpc) {
        // Envoy turns local replies to gRPC requests into trailers-only gRPC errors.
        status = 200;
        grpcStatus = String(httpToGrpcStatus(code));
        headers['content-type'] = 'application/grpc';
        headers['grpc-status'] = grpcStatus;
        headers['grpc-message'] = LOCAL_REPLY[code] ?? 'upstream error';
      } else {
        body = LOCAL_REPLY[code] ?? '';
        if (code === 503 && (extraFlags & (ResponseFlag.UF | ResponseFlag.UC)) !== 0) {
          body = `upstream connect error or disconnect/reset before headers. reset reason: ${extraFlags & ResponseFlag.UF ? 'connection failure' : 'connection termination'}`;
        }
        headers['content-type'] = 'text/plain';
        headers['content-length'] = Buffer.byteLength(body);
      }
      if (extract && telemetryOn) telemetry.writeResponsePeer(headers, extract);
      respHeadersOut = headers;
      if (h2) h2RespBytes += headerBlockSize(headers) + (body.length > 0 ? body.length + 9 : 0);
      // Drain what the client still sends so keep-alive survives the local reply.
      req.resume();
      if (h2 && grpc) {
        // gRPC clients need trailers-only (END_STREAM on the HEADERS frame), which the compatibility
        // API cannot send.
        ended = true;
        try {
          (res as Http2ServerResponse).stream.respond({ ':status': status, ...headers }, { endStream: true });
        } catch {
          res.destroy();
        }
        finish();
        return;
      }
      res.writeHead(status, headers as Record<string, string>);
      res.end(body);
    };

    if (localReply !== 0) {
      reply(localReply, 0);
      return;
    }

    // --- upstream request headers ---------------------------------------------------------
    const upHeaders: OutgoingHttpHeaders = {};
    for (const name in reqHeaders) {
      if (HOP_BY_HOP.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
      upHeaders[name] = reqHeaders[name];
    }
    if (firstHeader(reqHeaders.te) === 'trailers') upHeaders.te = 'trailers';
    if (!inbound && mxOn) telemetry.writeRequestPeer(upHeaders);
    span?.inject(upHeaders as Record<string, string | string[] | undefined>);

    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        upstreamCall?.abort();
        reply(504, ResponseFlag.UT);
      }, timeoutMs);
      timer.unref();
    }

    const targetFor = (ep: ResolvedEndpoint | undefined): UpstreamTarget | undefined => {
      if (inbound) return options.app ? { host: options.app.host, port: options.app.port, h2: options.app.h2, tls: false } : undefined;
      if (route) {
        if (!ep) return undefined;
        return { host: ep.address, port: ep.port, h2: route.protocol !== 'http', tls: mtls && ep.sidecar && !route.external };
      }
      // Passthrough: the original destination of the Host header.
      const { host, port } = splitAuthority(authority);
      return { host, port: port ?? absolutePort ?? 80, h2: h2, tls: false };
    };

    let attempt = 0;
    const send = (): void => {
      const ep = route?.pick();
      if (ep) endpointPeer = ep.workload;
      const target = targetFor(ep);
      if (!target) {
        reply(503, ResponseFlag.UH);
        return;
      }
      const call = pool.request(
        target,
        method,
        path,
        authority,
        attempt === 0 ? upHeaders : { ...upHeaders },
        bodyOf(method),
        { onUpstreamResponse, onUpstreamError },
        reqCounter || h2 ? countRequestChunk : undefined,
      );
      upstreamCall = call;
    };

    const bodyOf = (m: string): Readable | null => {
      // GET/HEAD without a declared body: send none (lets a stale keep-alive socket be retried).
      if ((m === 'GET' || m === 'HEAD') && reqHeaders['content-length'] === undefined && reqHeaders['transfer-encoding'] === undefined && !h2) return null;
      return req as Readable;
    };

    const onUpstreamError = (kind: UpstreamFailure, err: Error): void => {
      if (done) return;
      if (kind === 'connect' && !inbound && attempt < retries) {
        attempt++;
        send();
        return;
      }
      logger.debug('upstream failure', { kind, err, authority });
      const f = kind === 'connect' ? ResponseFlag.UF | (attempt > 0 && attempt >= retries ? ResponseFlag.URX : 0) : ResponseFlag.UC;
      reply(503, f);
    };

    const onUpstreamResponse = (up: UpstreamResponse): void => {
      if (done || headSent) {
        up.destroy();
        return;
      }
      upstreamPrincipal = up.peerPrincipal;
      const upHead = up.headers;
      if (!inbound && mxOn) {
        const ex = telemetry.readResponsePeer(upHead);
        peer = peerOf(ex);
        if (!ex.result.ok) unknownReason = ex.result.reason;
      } else if (!inbound && telemetryOn) {
        unknownReason = 'mx_disabled';
      }
      const out: OutgoingHttpHeaders = {};
      for (const name in upHead) {
        if (HOP_BY_HOP.has(name)) continue;
        out[name] = upHead[name];
      }
      if (extract) telemetry.writeResponsePeer(out, extract);
      status = up.status;
      const gs = firstHeader(upHead['grpc-status']);
      if (grpc && gs !== undefined) grpcStatus = gs;
      respHeadersOut = out;
      headSent = true;
      if (h2) h2RespBytes += headerBlockSize(out);
      if (reqCounter && respCounter && telemetryOn) {
        // Periodic message reports for long streams (istio/proxy istio_stats.cc onTimer).
        periodic = {
          report: () => {
            const rq = reqCounter!.total - reportedReq;
            const rs = respCounter!.total - reportedResp;
            if (rq === 0 && rs === 0) return;
            reportedReq += rq;
            reportedResp += rs;
            telemetry.recordGrpcMessages(attrs(false), rq, rs);
          },
        };
        ticker.add(periodic);
      }
      if (h2 && up.endStream) {
        // gRPC trailers-only response (grpc-status in the head, END_STREAM): forward it the same way;
        // the compatibility API cannot, so the stream answers directly.
        ended = true;
        try {
          (res as Http2ServerResponse).stream.respond({ ':status': status, ...out }, { endStream: true });
        } catch (err) {
          logger.warnOnce('bad-upstream-head', 'upstream response head cannot be forwarded', { err });
          res.destroy();
        }
        up.drain();
        finish();
        return;
      }
      try {
        res.writeHead(status, out as Record<string, string>);
      } catch (err) {
        logger.warnOnce('bad-upstream-head', 'upstream response head cannot be forwarded', { err });
        up.destroy();
        headSent = false;
        reply(502, ResponseFlag.UPE);
        return;
      }
      up.pipeBody({
        onBodyData: (chunk: Buffer): boolean => {
          if (h2) h2RespBytes += chunk.length + 9;
          if (respCounter) respCounter.push(chunk);
          if ((res as ServerResponse).write(chunk)) return true;
          res.once('drain', () => up.resume());
          return false;
        },
        onBodyEnd: (trailers) => {
          if (trailers) {
            const t: Record<string, string> = {};
            let any = false;
            for (const name in trailers) {
              if (name.charCodeAt(0) === 58) continue;
              const v = trailers[name];
              if (v === undefined) continue;
              t[name] = Array.isArray(v) ? v.join(', ') : v;
              any = true;
            }
            if (any) {
              // grpc-status is read from trailers first, then headers (envoy grpc Common::getGrpcStatus).
              if (grpc && t['grpc-status'] !== undefined) grpcStatus = t['grpc-status'];
              if (h2) h2RespBytes += headerBlockSize(t);
              res.addTrailers(t);
            }
          }
          res.end();
        },
        onBodyError: () => {
          // Upstream died mid-body: Envoy resets the downstream and flags UC.
          flags |= ResponseFlag.UC;
          res.destroy();
        },
        onBodyAborted: () => {
          flags |= ResponseFlag.UC;
        },
      });
    };

    send();
  };
}

/** Approximate HPACK-free size of a header block plus its frame header (documented estimate for h2). */
function headerBlockSize(headers: IncomingHttpHeaders | OutgoingHttpHeaders | Record<string, string>): number {
  let n = 9;
  for (const name in headers) {
    const v = (headers as Record<string, unknown>)[name];
    if (v === undefined) continue;
    n += name.length + (Array.isArray(v) ? v.join(', ').length : String(v).length) + 2;
  }
  return n;
}

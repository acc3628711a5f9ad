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
 *
 * This file builds a listener's handler and records what the codec refused; one request is a
 * {@link ProxyStream} (routing and forwarding, proxy-stream.ts) over a `StreamRecord` (its state, local
 * replies and record, stream-record.ts).
 */
import { ServerResponse } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from '../core/logger.js';
import type { MetadataExchangeMode } from '../exchange/types.js';
import { firstHeader } from '../core/headers.js';
import { attachedConnectionInfo } from '../record/connection.js';
import { takeByteDeltas } from '../record/bytes.js';
import { inboundClusterName } from '../record/cluster.js';
import type { ServiceInfo } from '../stats/types.js';
import type { SpanStartInfo } from '../tracing/types.js';
import type { DestinationGuard } from './destination-guard.js';
import type { ProxyRefusals } from './listener-limits.js';
import type { ServiceRegistry, ServiceRoute } from './registry.js';
import type { ReportingTicker } from './reporting-ticker.js';
import type { SidecarTelemetry } from './telemetry-contract.js';
import { ProxyStream } from './proxy-stream.js';
import type { UpstreamPool, UpstreamTarget } from './upstream.js';

/** Downstream request/response as node:http or the node:http2 compatibility API gives them. */
export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;
/** A request handler usable by both servers. */
export type HttpHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;

/**
 * The proxy's handler, plus the record of a request the codec refused before any handler could run
 * (a head node's parser rejects, answered by the listener): Envoy records those streams too, with the
 * local reply's code and `DPE` (envoy `source/common/http/conn_manager_impl.cc`, codec errors).
 */
export interface ProxyHandler extends HttpHandler {
  protocolError(socket: Socket, responseCode: number, responseFlags: number): void;
  /**
   * An HTTP/1.1 request with `Upgrade` (node's `'upgrade'` event). WebSocket passes through, as Istio
   * enables `upgrade_configs: websocket` on every HTTP connection manager; `h2c` is served as a plain
   * request (Envoy strips it); any other type is refused 403 as Envoy's HCM refuses an upgrade the route
   * does not allow (`upgrade_failed`, connection closed).
   */
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void;
  /**
   * A CONNECT request (node's `'connect'` event). Istio's sidecar routes match paths and carry no
   * `connect_matcher`/`connect_config`, so Envoy finds no route for a (pathless) CONNECT: 404 `NR`.
   */
  connect(req: IncomingMessage, socket: Socket, head: Buffer): void;
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
  /** Outbound: passthrough destinations that are refused (loopback, the sidecar's own ports). */
  readonly destinationGuard?: DestinationGuard;
  /** Counts the guard's refusals. */
  readonly refusals?: ProxyRefusals;
}

/** Listener-wide facts, computed once when the handler is built (read by every {@link ProxyStream}). */
export interface Listener {
  readonly options: HttpProxyOptions;
  readonly telemetry: SidecarTelemetry;
  readonly pool: UpstreamPool;
  readonly ticker: ReportingTicker;
  readonly logger: Logger;
  readonly inbound: boolean;
  readonly reporter: 'source' | 'destination';
  readonly retries: number;
  readonly timeoutMs: number;
  readonly registryOnly: boolean;
  readonly inMesh: boolean;
  readonly mtls: boolean;
  readonly telemetryOn: boolean;
  /** The tracer may record: build a {@link SpanStartInfo} per request; otherwise {@link staticSpanInfo} is passed. */
  readonly tracing: boolean;
  /** The one start info handed to a tracer that records nothing (tracing off): no URL string or object per request. */
  readonly staticSpanInfo: SpanStartInfo;
  readonly localPrincipal: string;
  /** Inbound: the app, one target object for every request. */
  readonly appTarget: UpstreamTarget | undefined;
  /** Inbound: Envoy's cluster name `inbound|<port>||`. */
  readonly inboundCluster: string;
  /** The port of the last authority seen (keep-alive clients repeat their Host): one-entry cache. */
  lastAuthority: string | undefined;
  lastAuthorityPort: number | undefined;
}

/** Build the handler of one listener. */
export function createHttpProxyHandler(options: HttpProxyOptions): ProxyHandler {
  const inbound = options.direction === 'inbound';
  const listener: Listener = {
    options,
    telemetry: options.telemetry,
    pool: options.pool,
    ticker: options.ticker,
    logger: options.logger,
    inbound,
    reporter: inbound ? 'destination' : 'source',
    retries: options.retries ?? 2,
    timeoutMs: options.timeoutMs ?? 0,
    registryOnly: options.outboundTrafficPolicy === 'REGISTRY_ONLY',
    inMesh: options.mxMode === 'IN_MESH',
    mtls: options.mtls === true,
    telemetryOn: options.telemetry.enabled,
    tracing: options.telemetry.tracer.recording !== false,
    staticSpanInfo: Object.freeze({ kind: inbound ? 'server' : 'client', method: '', url: '', authority: '', protocol: '', port: 0 }),
    localPrincipal: options.localPrincipal ?? '',
    appTarget: options.app ? { host: options.app.host, port: options.app.port, h2: options.app.h2, tls: false } : undefined,
    inboundCluster: inboundClusterName(options.app?.port ?? 0),
    lastAuthority: undefined,
    lastAuthorityPort: undefined,
  };
  const handle = (req: DownstreamRequest, res: DownstreamResponse): void => {
    let stream: ProxyStream | undefined;
    // Nothing on the request path may throw into node's server (an uncaught exception stops the
    // proxy): a bug becomes this request's 500, recorded once like any other.
    try {
      stream = new ProxyStream(listener, req, res);
      stream.start();
    } catch (err) {
      if (stream !== undefined) stream.internalError(err);
      else {
        listener.logger.warnOnce('proxy-internal', 'request could not be handled', { err });
        res.destroy();
      }
    }
  };
  /** A request node took off the HTTP parser (upgrade, CONNECT): its response is written on the socket itself. */
  const onSocket = (req: IncomingMessage, socket: Socket, head: Buffer, tunnel: boolean): void => {
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    // The connection ends with this exchange unless it becomes a tunnel (Envoy closes after a refused upgrade).
    res.shouldKeepAlive = false;
    res.on('finish', () => socket.destroySoon());
    let stream: ProxyStream | undefined;
    try {
      stream = new ProxyStream(listener, req, res);
      const type = (firstHeader(req.headers.upgrade) ?? '').toLowerCase();
      if (tunnel && type === 'websocket') stream.tunnelTo(socket, head);
      else if (tunnel && type !== 'h2c') stream.forcedCode = 403;
      stream.start();
    } catch (err) {
      if (stream !== undefined) stream.internalError(err);
      else socket.destroy();
    }
  };
  return Object.assign(handle, {
    protocolError: (socket: Socket, code: number, flags: number) => recordProtocolError(listener, socket, code, flags),
    upgrade: (req: IncomingMessage, socket: Socket, head: Buffer) => onSocket(req, socket, head, true),
    connect: (req: IncomingMessage, socket: Socket, head: Buffer) => onSocket(req, socket, head, false),
  });
}

/** The record of a request refused by the codec: no head, so no peer, route or path; bytes from the socket. */
function recordProtocolError(l: Listener, socket: Socket, responseCode: number, responseFlags: number): void {
  if (!l.telemetryOn) return;
  try {
    const conn = attachedConnectionInfo(socket);
    const { requestBytes, responseBytes } = conn ? takeByteDeltas(socket, conn) : { requestBytes: 0, responseBytes: 0 };
    const inbound = l.inbound;
    l.telemetry.recordHttp({
      reporter: l.reporter,
      peer: null,
      peerUnknownReason: inbound ? 'no_header' : undefined,
      peerPrincipal: inbound ? (conn?.peerPrincipal ?? '') : '',
      localPrincipal: inbound ? (conn?.localPrincipal ?? '') : '',
      service: inbound ? (l.options.inboundService ?? null) : null,
      specialCluster: undefined,
      remoteAddress: socket.remoteAddress,
      authority: '',
      protocol: 'http',
      responseCode,
      grpcStatus: undefined,
      responseFlags,
      durationMs: 0,
      requestBytes,
      responseBytes,
      method: undefined,
      path: undefined,
      requestHeaders: undefined,
      responseHeaders: undefined,
      traceId: undefined,
    });
    if (inbound) l.telemetry.recordPeerUnknown('no_header', l.reporter);
  } catch (err) {
    l.logger.warnOnce('record-http', 'recording a request failed', { err });
  }
}

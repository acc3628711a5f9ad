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
import { ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Logger } from '../core/logger.js';
import type { ExchangeExtract, MetadataExchangeMode } from '../exchange/types.js';
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import { firstHeader } from '../core/headers.js';
import { CONNECTION_INFO } from '../record/connection.js';
import type { ConnectionInfo } from '../record/connection.js';
import { h2HeaderBlockBytes, takeByteDeltas } from '../record/bytes.js';
import { inboundClusterName, routeNameOf } from '../record/cluster.js';
import { ROUTE_TIMEOUT_CODE, closedEarlyCode, closedEarlyFlags, upstreamFailureOutcome } from '../record/outcome.js';
import { UNSAMPLED_SPAN_END, spanEndOf } from '../record/span.js';
import { httpToGrpcStatus } from '../stats/grpc-status.js';
import { ResponseFlag } from '../stats/types.js';
import type { HttpStreamAttributes, ServiceInfo, SpecialCluster } from '../stats/types.js';
import type { HopSpan, SpanStartInfo } from '../tracing/types.js';
import type { DestinationGuard, ResolvedDestination } from './destination-guard.js';
import { createGrpcMessageCounter } from './grpc-frames.js';
import type { ProxyRefusals } from './listener-limits.js';
import type { GrpcMessageCounter } from './grpc-frames.js';
import type { ServiceRegistry, ServiceRoute, ResolvedEndpoint } from './registry.js';
import { splitAuthority } from '../core/service-names.js';
import type { PeriodicReport, ReportingTicker } from './reporting-ticker.js';
import type { SidecarTelemetry } from './telemetry-contract.js';
import { peerOf } from './telemetry-contract.js';
import { isUpstreamIdentityError } from './tls.js';
import type { UpstreamBodySink, UpstreamCall, UpstreamFailure, UpstreamHandlers, UpstreamPool, UpstreamResponse, UpstreamTarget } from './upstream.js';

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

// The per-connection record (principals, byte marks) is the record stage's; listeners store it on the socket.
export { CONNECTION_INFO } from '../record/connection.js';
export type { ConnectionInfo } from '../record/connection.js';

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

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);

/** Local reply bodies, Envoy's wording. */
const LOCAL_REPLY: Record<number, string> = {
  404: 'route not found',
  502: '',
  503: 'no healthy upstream',
  504: 'upstream request timeout',
};

/** Listener-wide facts, computed once when the handler is built. */
interface Listener {
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

/** The port an authority names, if any (cached for a repeated authority). */
function authorityPort(l: Listener, authority: string): number | undefined {
  if (authority !== l.lastAuthority) {
    l.lastAuthorityPort = splitAuthority(authority).port;
    l.lastAuthority = authority;
  }
  return l.lastAuthorityPort;
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
    const conn = (socket as Socket & { [CONNECTION_INFO]?: ConnectionInfo })[CONNECTION_INFO];
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

/** Where the downstream response keeps its stream, so shared listeners need no closure per request. */
const STREAM = Symbol('meshtel.stream');
type TaggedResponse = DownstreamResponse & { [STREAM]?: ProxyStream };

function onResponseClose(this: TaggedResponse): void {
  this[STREAM]?.onDownstreamClose();
}
function onResponseFinish(this: TaggedResponse): void {
  this[STREAM]?.onDownstreamFinish();
}
function onResponseDrain(this: TaggedResponse): void {
  this[STREAM]?.upstream?.resume();
}
function onRouteTimeout(stream: ProxyStream): void {
  stream.onTimeout();
}

/**
 * One request through the listener, from the downstream head to the stats record. A class rather than
 * closures in the handler: a dozen closures per request (and their shared context) cost measurable
 * time on the request path, and the object is at the same time the upstream handler, the body sink
 * and (gRPC) the periodic report.
 */
class ProxyStream implements UpstreamHandlers, UpstreamBodySink, PeriodicReport {
  private readonly startedAt: number;
  private readonly h2: boolean;
  private readonly conn: ConnectionInfo | undefined;
  private readonly method: string;
  private readonly reqHeaders: IncomingHttpHeaders;
  private readonly grpc: boolean;
  private authority: string;
  private path: string;
  private absolutePort: number | undefined = undefined;
  private route: ServiceRoute | undefined = undefined;
  private service: ServiceInfo | null = null;
  private special: SpecialCluster | undefined = undefined;
  private flags = 0;
  private mxOn: boolean;
  private extract: ExchangeExtract | undefined = undefined;
  private peer: PeerMetadata | null = null;
  private endpointPeer: PeerMetadata | null = null;
  private unknownReason: UnknownPeerReason | undefined = undefined;
  private span: HopSpan | undefined = undefined;
  // --- state of this stream ---
  private done = false;
  private ended = false;
  private headSent = false;
  /** The proxy reset the downstream itself (upstream reset mid-body, timeout after the head): not DC. */
  private resetByProxy = false;
  private status = 0;
  private grpcStatus: string | undefined = undefined;
  private upstreamPrincipal = '';
  private call: UpstreamCall | undefined = undefined;
  /** The response being forwarded (for flow control). */
  upstream: UpstreamResponse | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private reqCounter: GrpcMessageCounter | undefined = undefined;
  private respCounter: GrpcMessageCounter | undefined = undefined;
  private reportedReq = 0;
  private reportedResp = 0;
  private periodic = false;
  private respHeadersOut: OutgoingHttpHeaders | undefined = undefined;
  // h2 has no per-stream socket counters: bytes are estimated from frames (see attrs()).
  private h2ReqBytes = 0;
  private h2RespBytes = 0;
  private upHeaders: OutgoingHttpHeaders | undefined = undefined;
  private attempt = 0;
  /** Passthrough to a DNS name: resolved and checked before the upstream call, then connected by address. */
  private resolveName: string | undefined = undefined;
  /** A local reply decided before routing (CONNECT: 404 NR; an upgrade type that is not allowed: 403). */
  forcedCode = 0;
  /** WebSocket: the downstream socket and the bytes read past the head, spliced to the upstream on 101. */
  private tunnel: Socket | undefined = undefined;
  private tunnelHead: Buffer | undefined = undefined;
  private passthroughAddress: string | undefined = undefined;

  constructor(
    private readonly l: Listener,
    private readonly req: DownstreamRequest,
    private readonly res: DownstreamResponse,
  ) {
    this.startedAt = performance.now();
    l.telemetry.activity.active++;
    const h2 = req.httpVersionMajor === 2;
    this.h2 = h2;
    const rawSocket = (h2 ? (req as Http2ServerRequest).stream.session?.socket : req.socket) as (Socket & { [CONNECTION_INFO]?: ConnectionInfo }) | undefined;
    this.conn = rawSocket?.[CONNECTION_INFO];
    this.method = req.method ?? 'GET';
    if (this.method === 'CONNECT') this.forcedCode = 404;
    const reqHeaders = req.headers;
    this.reqHeaders = reqHeaders;
    const contentType = firstHeader(reqHeaders['content-type']);
    this.grpc = contentType !== undefined && contentType.startsWith('application/grpc');
    this.authority = firstHeader(reqHeaders[':authority']) ?? firstHeader(reqHeaders.host) ?? '';
    this.path = req.url ?? '/';
    this.mxOn = l.telemetryOn;
  }

  start(): void {
    const l = this.l;
    const { telemetry, options } = l;
    const { req, res, reqHeaders, h2 } = this;
    const inbound = l.inbound;

    // --- target ---------------------------------------------------------------------------
    const forced = this.forcedCode;
    if (!inbound && !h2 && forced === 0 && this.path.charCodeAt(0) !== 47 /* '/' */) {
      // Absolute-form request from an app using us as HTTP_PROXY (RFC 9112 §3.2.2).
      try {
        const u = new URL(this.path);
        this.authority = u.host;
        this.path = `${u.pathname}${u.search}`;
        this.absolutePort = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
      } catch {
        // Not a URL: routed as an origin-form path below, which fails to match any route.
      }
    }
    const authority = this.authority;

    let localReply = 0;
    if (forced === 404) {
      // No route matches a pathless CONNECT: NR.
      localReply = 404;
      this.flags |= ResponseFlag.NR;
    } else if (inbound) {
      this.service = options.inboundService ?? null;
    } else {
      const route = options.fixedRoute ?? options.registry?.resolve(authority, this.absolutePort ?? 80);
      this.route = route;
      if (route) {
        this.service = route.service;
        if (route.endpoints.length === 0) {
          localReply = 503;
          this.flags |= ResponseFlag.UH;
        }
        if (l.inMesh && route.external) this.mxOn = false;
      } else if (options.registry?.hasHost(authority) === true) {
        // Known host, unknown port: no route (Envoy 404 NR).
        localReply = 404;
        this.flags |= ResponseFlag.NR;
      } else if (l.registryOnly) {
        // Istio's block_all catch-all virtual host: direct response 502, cluster BlackHoleCluster.
        this.special = 'BlackHoleCluster';
        localReply = 502;
      } else {
        this.special = 'PassthroughCluster';
        if (l.inMesh) this.mxOn = false;
        const guard = options.destinationGuard;
        if (guard !== undefined) {
          const dst = splitAuthority(authority);
          const refused = guard.check(dst.host, dst.port ?? this.absolutePort ?? 80);
          // A name is checked once resolved (below, before the upstream call).
          if (refused === undefined && net.isIP(dst.host) === 0) this.resolveName = dst.host;
          if (refused !== undefined) {
            // What Envoy's blackhole filter chains do for such destinations (see destination-guard.ts).
            this.special = 'BlackHoleCluster';
            localReply = 502;
            options.refusals?.count('outbound', refused);
          }
        }
      }
    }

    // An upgrade the route does not allow: 403 before any filter runs (HCM `upgrade_failed`), when a route
    // matched at all (no route stays 404 NR).
    if (forced === 403 && localReply !== 404) {
      localReply = 403;
      this.flags = 0;
    }

    if (l.telemetryOn) {
      // --- downstream MX (inbound) --------------------------------------------------------
      if (inbound) {
        const extract = telemetry.readRequestPeer(reqHeaders, this.conn?.peerPrincipal);
        this.extract = extract;
        this.peer = peerOf(extract);
        if (!extract.result.ok) this.unknownReason = extract.result.reason;
      }
      const route = this.route;
      this.span = telemetry.tracer.startSpan(
        reqHeaders as Record<string, string | string[] | undefined>,
        l.tracing
          ? {
              kind: inbound ? 'server' : 'client',
              method: this.method,
              url: `http://${authority}${this.path}`,
              authority,
              protocol: h2 ? 'HTTP/2' : 'HTTP/1.1',
              peerAddress: req.socket?.remoteAddress,
              port: route !== undefined ? route.port : (authorityPort(l, authority) ?? options.app?.port ?? 80),
              serviceHost: this.service?.host,
            }
          : l.staticSpanInfo,
      );
      if (this.grpc) {
        this.reqCounter = createGrpcMessageCounter();
        this.respCounter = createGrpcMessageCounter();
      }
    }
    if (h2) this.h2ReqBytes = h2HeaderBlockBytes(reqHeaders);

    // Downstream went away before we finished: Envoy DC, code 0 when nothing was sent.
    (res as TaggedResponse)[STREAM] = this;
    res.on('close', onResponseClose);
    res.on('finish', onResponseFinish);

    if (localReply !== 0) {
      this.reply(localReply, 0);
      return;
    }

    // --- upstream request headers ---------------------------------------------------------
    const upHeaders: OutgoingHttpHeaders = {};
    for (const name in reqHeaders) {
      const v = reqHeaders[name];
      // undefined: an MX header the exchange stripped.
      if (v === undefined || HOP_BY_HOP.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
      upHeaders[name] = v;
    }
    if (firstHeader(reqHeaders.te) === 'trailers') upHeaders.te = 'trailers';
    if (this.tunnel !== undefined) {
      upHeaders.connection = 'upgrade';
      upHeaders.upgrade = reqHeaders.upgrade;
    }
    if (!inbound && this.mxOn) telemetry.writeRequestPeer(upHeaders);
    this.span?.inject(upHeaders as Record<string, string | string[] | undefined>);
    this.upHeaders = upHeaders;

    if (l.timeoutMs > 0) {
      this.timer = setTimeout(onRouteTimeout, l.timeoutMs, this);
      this.timer.unref();
    }
    if (this.resolveName !== undefined) {
      const port = splitAuthority(authority).port ?? this.absolutePort ?? 80;
      options.destinationGuard?.resolve(this.resolveName, port, (outcome) => this.onResolved(outcome));
      return;
    }
    this.send();
  }

  /** The passthrough name resolved: refused like the IP it names, else the connection goes to that address. */
  private onResolved(outcome: ResolvedDestination | undefined): void {
    if (this.done) return;
    if (outcome?.refused !== undefined) {
      this.special = 'BlackHoleCluster';
      this.l.options.refusals?.count('outbound', outcome.refused);
      this.reply(502, 0);
      return;
    }
    this.passthroughAddress = outcome?.address;
    this.send();
  }

  private attrs(final: boolean): HttpStreamAttributes {
    let requestBytes = 0;
    let responseBytes = 0;
    if (final) {
      if (this.h2) {
        requestBytes = this.h2ReqBytes;
        responseBytes = this.h2RespBytes;
      } else {
        const s = this.req.socket;
        const conn = this.conn;
        if (s && conn) ({ requestBytes, responseBytes } = takeByteDeltas(s, conn));
      }
    }
    const inbound = this.l.inbound;
    const peer = this.peer;
    const span = this.span;
    // No route (NR) has no cluster: ''. Both names are precomputed strings (listener, registry route).
    const cluster = this.special ?? (inbound ? this.l.inboundCluster : (this.route?.cluster ?? ''));
    // Every field always present (undefined when absent): one object shape for the stats stage.
    return {
      reporter: this.l.reporter,
      peer: peer ?? this.endpointPeer,
      peerUnknownReason: peer === null ? this.unknownReason : undefined,
      peerPrincipal: inbound ? (this.conn?.peerPrincipal ?? '') : this.upstreamPrincipal,
      localPrincipal: inbound ? (this.conn?.localPrincipal ?? '') : this.upstreamPrincipal !== '' ? this.l.localPrincipal : '',
      service: this.service,
      specialCluster: this.special,
      remoteAddress: this.req.socket?.remoteAddress,
      clusterName: cluster,
      routeName: routeNameOf(cluster),
      authority: this.authority,
      protocol: this.grpc ? 'grpc' : 'http',
      responseCode: this.status,
      grpcStatus: this.grpcStatus,
      responseFlags: this.flags,
      durationMs: performance.now() - this.startedAt,
      requestBytes,
      responseBytes,
      method: this.method,
      path: this.path,
      requestHeaders: this.reqHeaders,
      responseHeaders: this.respHeadersOut as Record<string, string | string[] | undefined> | undefined,
      traceId: span !== undefined && span.sampled ? span.traceId : undefined,
    };
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    const l = this.l;
    const telemetry = l.telemetry;
    telemetry.activity.active--;
    if (this.timer) clearTimeout(this.timer);
    if (!l.telemetryOn) return;
    if (this.periodic) l.ticker.delete(this);
    try {
      const a = this.attrs(true);
      telemetry.recordHttp(a);
      if (this.peer === null && this.unknownReason !== undefined) telemetry.recordPeerUnknown(this.unknownReason, l.reporter);
      const { reqCounter, respCounter } = this;
      if (reqCounter && respCounter) {
        telemetry.recordGrpcMessages(a, reqCounter.total - this.reportedReq, respCounter.total - this.reportedResp);
      }
      const span = this.span;
      if (span !== undefined && !span.sampled) span.end(UNSAMPLED_SPAN_END);
      else if (span !== undefined) span.end(spanEndOf(a, a.clusterName ?? ''));
    } catch (err) {
      l.logger.warnOnce('record-http', 'recording a request failed', { err });
    }
  }

  /** Periodic message reports for long gRPC streams (istio/proxy istio_stats.cc onTimer). */
  report(): void {
    const { reqCounter, respCounter } = this;
    if (!reqCounter || !respCounter) return;
    const rq = reqCounter.total - this.reportedReq;
    const rs = respCounter.total - this.reportedResp;
    if (rq === 0 && rs === 0) return;
    this.reportedReq += rq;
    this.reportedResp += rs;
    this.l.telemetry.recordGrpcMessages(this.attrs(false), rq, rs);
  }

  /**
   * The upstream's response head as the downstream gets it: the peer read from its MX (outbound),
   * hop-by-hop headers removed, this proxy's MX added (inbound).
   */
  private responseHead(upHead: IncomingHttpHeaders, peerPrincipal: string): OutgoingHttpHeaders {
    const l = this.l;
    if (!l.inbound && this.mxOn) {
      const ex = l.telemetry.readResponsePeer(upHead, peerPrincipal);
      this.peer = peerOf(ex);
      if (!ex.result.ok) this.unknownReason = ex.result.reason;
    } else if (!l.inbound && l.telemetryOn) {
      this.unknownReason = 'mx_disabled';
    }
    const out: OutgoingHttpHeaders = {};
    for (const name in upHead) {
      const v = upHead[name];
      // undefined: an MX header the exchange stripped.
      if (v === undefined || HOP_BY_HOP.has(name)) continue;
      out[name] = v;
    }
    if (this.extract) l.telemetry.writeResponsePeer(out, this.extract);
    return out;
  }

  /** This request asks for a WebSocket upgrade: on 101 the two sockets are spliced. */
  tunnelTo(socket: Socket, head: Buffer): void {
    this.tunnel = socket;
    this.tunnelHead = head;
  }

  /**
   * The upstream accepted the upgrade. Recorded as Envoy records an upgraded stream: code 101, the
   * stream's wire bytes both ways for its whole life, duration until it closes; DC when the downstream
   * closed it, no flag when the upstream ended it (the WebSocket server closes the TCP connection first).
   */
  onUpstreamUpgrade(headers: IncomingHttpHeaders, up: Socket, upHead: Buffer, peerPrincipal: string): void {
    const down = this.tunnel;
    if (this.done || this.headSent || down === undefined || down.destroyed) {
      up.destroy();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.upstreamPrincipal = peerPrincipal;
    const out = this.responseHead(headers, peerPrincipal);
    this.respHeadersOut = out;
    this.status = 101;
    this.headSent = true;
    let head = `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${firstHeader(headers.upgrade) ?? 'websocket'}\r\n`;
    for (const name in out) {
      const v = out[name];
      for (const one of Array.isArray(v) ? v : [v]) head += `${name}: ${String(one)}\r\n`;
    }
    down.write(`${head}\r\n`);
    if (upHead.length > 0) down.write(upHead);
    const early = this.tunnelHead;
    if (early !== undefined && early.length > 0) up.write(early);
    up.setNoDelay(true);
    up.on('error', () => {});
    // The upstream ending is the stream's normal end; the downstream closing first is DC (onDownstreamClose).
    up.once('end', () => (this.ended = true));
    up.once('close', () => {
      this.ended = true;
      down.destroySoon();
    });
    down.once('close', () => up.destroy());
    down.pipe(up);
    up.pipe(down);
  }

  /** `start()` threw (a bug): answer 500 if the head is not out, else reset; recorded once either way. */
  internalError(err: unknown): void {
    this.l.logger.warnOnce('proxy-internal', 'request could not be handled', { err });
    const res = this.res as TaggedResponse;
    if (res[STREAM] !== this) {
      res[STREAM] = this;
      res.on('close', onResponseClose);
      res.on('finish', onResponseFinish);
    }
    if (this.done) return;
    this.call?.abort();
    try {
      this.reply(500, 0);
    } catch {
      this.resetByProxy = true;
      res.destroy();
    }
  }

  onDownstreamClose(): void {
    if (this.done) return;
    if (!this.ended) {
      this.flags = closedEarlyFlags(this.flags, this.resetByProxy);
      this.status = closedEarlyCode(this.status, this.headSent);
      this.call?.abort();
    }
    this.finish();
  }

  onDownstreamFinish(): void {
    this.ended = true;
    // HTTP/1.1 'finish' means fully handed to the socket; h2 streams are recorded at 'close'.
    if (!this.h2) this.finish();
  }

  onTimeout(): void {
    this.call?.abort();
    this.reply(ROUTE_TIMEOUT_CODE, ResponseFlag.UT);
  }

  private countRequestChunk(chunk: Buffer): void {
    if (this.h2) this.h2ReqBytes += chunk.length + 9;
    if (this.reqCounter) this.reqCounter.push(chunk);
  }

  private reply(code: number, extraFlags: number): void {
    const { req, res, h2, grpc } = this;
    this.flags |= extraFlags;
    if (this.headSent || res.headersSent) {
      // The head is out: all we can do is reset (Envoy resets the downstream stream). Our reset, not the
      // downstream leaving: no DC.
      this.resetByProxy = true;
      res.destroy();
      return;
    }
    this.headSent = true;
    this.status = code;
    const headers: OutgoingHttpHeaders = {};
    let body = '';
    if (grpc) {
      // Envoy turns local replies to gRPC requests into trailers-only gRPC errors.
      this.status = 200;
      const grpcStatus = String(httpToGrpcStatus(code));
      this.grpcStatus = grpcStatus;
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
    if (this.extract && this.l.telemetryOn) this.l.telemetry.writeResponsePeer(headers, this.extract);
    this.respHeadersOut = headers;
    if (h2) this.h2RespBytes += h2HeaderBlockBytes(headers) + (body.length > 0 ? body.length + 9 : 0);
    // Drain what the client still sends so keep-alive survives the local reply.
    req.resume();
    if (h2 && grpc) {
      // gRPC clients need trailers-only (END_STREAM on the HEADERS frame), which the compatibility
      // API cannot send.
      this.ended = true;
      try {
        (res as Http2ServerResponse).stream.respond({ ':status': this.status, ...headers }, { endStream: true });
      } catch {
        res.destroy();
      }
      this.finish();
      return;
    }
    res.writeHead(this.status, headers as Record<string, string>);
    res.end(body);
  }

  private targetFor(ep: ResolvedEndpoint | undefined): UpstreamTarget | undefined {
    if (this.l.inbound) return this.l.appTarget;
    const route = this.route;
    if (route) {
      if (!ep) return undefined;
      return { host: ep.address, port: ep.port, h2: route.protocol !== 'http', tls: this.l.mtls && ep.sidecar && !route.external, identity: ep.identity };
    }
    // Passthrough: the original destination of the Host header.
    const { host, port } = splitAuthority(this.authority);
    return { host: this.passthroughAddress ?? host, port: port ?? this.absolutePort ?? 80, h2: this.h2, tls: false };
  }

  private send(): void {
    const ep = this.route?.pick();
    if (ep) this.endpointPeer = ep.workload;
    const target = this.targetFor(ep);
    if (!target) {
      this.reply(503, ResponseFlag.UH);
      return;
    }
    const upHeaders = this.upHeaders as OutgoingHttpHeaders;
    if (this.tunnel !== undefined) {
      this.call = this.l.pool.upgrade(target, this.method, this.path, this.authority, this.attempt === 0 ? upHeaders : { ...upHeaders }, this);
      return;
    }
    this.call = this.l.pool.request(
      target,
      this.method,
      this.path,
      this.authority,
      // A retry gets its own copy: the pool adds `host` to the object it is given.
      this.attempt === 0 ? upHeaders : { ...upHeaders },
      this.body(),
      this,
      this.reqCounter || this.h2 ? (chunk: Buffer) => this.countRequestChunk(chunk) : undefined,
    );
  }

  private body(): Readable | null {
    const m = this.method;
    const reqHeaders = this.reqHeaders;
    // GET/HEAD without a declared body: send none (lets a stale keep-alive socket be retried).
    if ((m === 'GET' || m === 'HEAD') && reqHeaders['content-length'] === undefined && reqHeaders['transfer-encoding'] === undefined && !this.h2) return null;
    return this.req as Readable;
  }

  onUpstreamError(kind: UpstreamFailure, err: Error): void {
    if (this.done) return;
    if (isUpstreamIdentityError(err)) {
      // A certificate of the wrong workload fails the handshake: a connection failure (Envoy UF), and
      // retried on the next endpoint like one.
      kind = 'connect';
      this.l.options.refusals?.count('outbound', 'upstream_san_mismatch');
    }
    if (kind === 'connect' && !this.l.inbound && this.attempt < this.l.retries) {
      this.attempt++;
      this.send();
      return;
    }
    this.l.logger.debug('upstream failure', { kind, err, authority: this.authority });
    const outcome = upstreamFailureOutcome(kind, err, this.attempt > 0 && this.attempt >= this.l.retries);
    this.reply(outcome.responseCode, outcome.responseFlags);
  }

  onUpstreamResponse(up: UpstreamResponse): void {
    if (this.done || this.headSent) {
      up.destroy();
      return;
    }
    const l = this.l;
    const { res, h2, grpc } = this;
    this.upstreamPrincipal = up.peerPrincipal;
    const upHead = up.headers;
    const out = this.responseHead(upHead, up.peerPrincipal);
    const status = up.status;
    this.status = status;
    if (grpc) {
      const gs = firstHeader(upHead['grpc-status']);
      if (gs !== undefined) this.grpcStatus = gs;
    }
    this.respHeadersOut = out;
    this.headSent = true;
    if (h2) this.h2RespBytes += h2HeaderBlockBytes(out);
    if (this.reqCounter && this.respCounter && l.telemetryOn) {
      this.periodic = true;
      l.ticker.add(this);
    }
    if (h2 && up.endStream) {
      // gRPC trailers-only response (grpc-status in the head, END_STREAM): forward it the same way;
      // the compatibility API cannot, so the stream answers directly.
      this.ended = true;
      try {
        (res as Http2ServerResponse).stream.respond({ ':status': status, ...out }, { endStream: true });
      } catch (err) {
        l.logger.warnOnce('bad-upstream-head', 'upstream response head cannot be forwarded', { err });
        res.destroy();
      }
      up.drain();
      this.finish();
      return;
    }
    try {
      res.writeHead(status, out as Record<string, string>);
    } catch (err) {
      l.logger.warnOnce('bad-upstream-head', 'upstream response head cannot be forwarded', { err });
      up.destroy();
      this.headSent = false;
      this.reply(502, ResponseFlag.UPE);
      return;
    }
    this.upstream = up;
    up.pipeBody(this);
  }

  onBodyData(chunk: Buffer): boolean {
    if (this.h2) this.h2RespBytes += chunk.length + 9;
    if (this.respCounter) this.respCounter.push(chunk);
    if ((this.res as ServerResponse).write(chunk)) return true;
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onBodyEnd(trailers: IncomingHttpHeaders | undefined): void {
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
        if (this.grpc && t['grpc-status'] !== undefined) this.grpcStatus = t['grpc-status'];
        if (this.h2) this.h2RespBytes += h2HeaderBlockBytes(t);
        this.res.addTrailers(t);
      }
    }
    this.res.end();
  }

  onBodyError(): void {
    // Upstream died mid-body: Envoy resets the downstream and flags UC (its reset, so no DC).
    this.flags |= ResponseFlag.UC;
    this.resetByProxy = true;
    this.res.destroy();
  }

  onBodyAborted(): void {
    this.flags |= ResponseFlag.UC;
  }
}

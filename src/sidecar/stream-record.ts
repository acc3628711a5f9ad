/**
 * What one request through a listener has seen, and how that becomes its record: the per-request state,
 * the downstream's close/finish/timeout, the local replies the proxy writes itself (Envoy's wording, gRPC
 * trailers-only), and the one stats record and span end per request per reporter (istio/proxy
 * `istio_stats.cc` records from the access-log hook: exactly once per stream, including local replies and
 * resets). Routing and forwarding are `ProxyStream`'s (proxy-stream.ts), which extends this class.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { ExchangeExtract } from '../exchange/types.js';
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import { firstHeader } from '../core/headers.js';
import { attachedConnectionInfo } from '../record/connection.js';
import type { ConnectionInfo } from '../record/connection.js';
import { h2HeaderBlockBytes, takeByteDeltas } from '../record/bytes.js';
import { routeNameOf } from '../record/cluster.js';
import { ROUTE_TIMEOUT_CODE, closedEarlyCode, closedEarlyFlags } from '../record/outcome.js';
import { UNSAMPLED_SPAN_END, spanEndOf } from '../record/span.js';
import { httpToGrpcStatus, requestProtocolOf } from '../stats/grpc-status.js';
import { ResponseFlag } from '../stats/types.js';
import type { HttpStreamAttributes, ServiceInfo, SpecialCluster } from '../stats/types.js';
import type { HopSpan } from '../tracing/types.js';
import type { GrpcMessageCounter } from './grpc-frames.js';
import type { DownstreamRequest, DownstreamResponse, Listener } from './http-proxy.js';
import type { ServiceRoute } from './registry.js';
import type { PeriodicReport } from './reporting-ticker.js';
import type { UpstreamCall, UpstreamResponse } from './upstream.js';
/** Local reply bodies, Envoy's wording. */
const LOCAL_REPLY: Record<number, string> = {
  404: 'route not found',
  502: '',
  503: 'no healthy upstream',
  504: 'upstream request timeout',
};

/** Where the downstream response keeps its stream, so shared listeners need no closure per request. */
export const STREAM = Symbol('meshtel.stream');
export type TaggedResponse = DownstreamResponse & { [STREAM]?: StreamRecord };

/** The downstream response closed (`'close'`): the stream ends, DC if it had not finished. */
export function onResponseClose(this: TaggedResponse): void {
  this[STREAM]?.onDownstreamClose();
}
/** The downstream response was fully written (`'finish'`). */
export function onResponseFinish(this: TaggedResponse): void {
  this[STREAM]?.onDownstreamFinish();
}
/** The downstream drained (`'drain'`): the upstream body flows again. */
export function onResponseDrain(this: TaggedResponse): void {
  this[STREAM]?.upstream?.resume();
}
/** The route timeout fired (a `setTimeout` callback without a closure). */
export function onRouteTimeout(stream: StreamRecord): void {
  stream.onTimeout();
}

/**
 * One request's state and record. A class rather than closures in the handler: a dozen closures per
 * request (and their shared context) cost measurable time on the request path, and the object is at the
 * same time (as `ProxyStream`) the upstream handler, the body sink and (gRPC) the periodic report.
 */
export abstract class StreamRecord implements PeriodicReport {
  protected readonly startedAt: number;
  protected readonly h2: boolean;
  protected readonly conn: ConnectionInfo | undefined;
  protected readonly method: string;
  protected readonly reqHeaders: IncomingHttpHeaders;
  protected readonly grpc: boolean;
  protected authority: string;
  protected path: string;
  protected route: ServiceRoute | undefined = undefined;
  protected service: ServiceInfo | null = null;
  protected special: SpecialCluster | undefined = undefined;
  protected flags = 0;
  protected mxOn: boolean;
  protected extract: ExchangeExtract | undefined = undefined;
  protected peer: PeerMetadata | null = null;
  protected endpointPeer: PeerMetadata | null = null;
  protected unknownReason: UnknownPeerReason | undefined = undefined;
  protected span: HopSpan | undefined = undefined;
  // --- state of this stream ---
  protected done = false;
  protected ended = false;
  protected headSent = false;
  /** The proxy reset the downstream itself (upstream reset mid-body, timeout after the head): not DC. */
  protected resetByProxy = false;
  protected status = 0;
  protected grpcStatus: string | undefined = undefined;
  protected upstreamPrincipal = '';
  protected call: UpstreamCall | undefined = undefined;
  /** The response being forwarded (for flow control). */
  upstream: UpstreamResponse | undefined = undefined;
  protected timer: NodeJS.Timeout | undefined = undefined;
  protected reqCounter: GrpcMessageCounter | undefined = undefined;
  protected respCounter: GrpcMessageCounter | undefined = undefined;
  protected reportedReq = 0;
  protected reportedResp = 0;
  protected periodic = false;
  protected respHeadersOut: OutgoingHttpHeaders | undefined = undefined;
  // h2 has no per-stream socket counters: bytes are estimated from frames (see attrs()).
  protected h2ReqBytes = 0;
  protected h2RespBytes = 0;
  /** A local reply decided before routing (CONNECT: 404 NR; an upgrade type that is not allowed: 403). */
  forcedCode = 0;

  constructor(
    protected readonly l: Listener,
    protected readonly req: DownstreamRequest,
    protected readonly res: DownstreamResponse,
  ) {
    this.startedAt = performance.now();
    l.telemetry.activity.active++;
    const h2 = req.httpVersionMajor === 2;
    this.h2 = h2;
    this.conn = attachedConnectionInfo(h2 ? (req as Http2ServerRequest).stream.session?.socket : req.socket);
    this.method = req.method ?? 'GET';
    if (this.method === 'CONNECT') this.forcedCode = 404;
    const reqHeaders = req.headers;
    this.reqHeaders = reqHeaders;
    this.grpc = requestProtocolOf(firstHeader(reqHeaders['content-type'])) === 'grpc';
    this.authority = firstHeader(reqHeaders[':authority']) ?? firstHeader(reqHeaders.host) ?? '';
    this.path = req.url ?? '/';
    this.mxOn = l.telemetryOn;
  }

  protected attrs(final: boolean): HttpStreamAttributes {
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

  protected finish(): void {
    if (this.done) return;
    this.done = true;
    const l = this.l;
    const telemetry = l.telemetry;
    telemetry.activity.active--;
    if (this.timer) clearTimeout(this.timer);
    if (!l.telemetryOn) {
      // The connection's byte marks still move: without node's parser state the listener judges a later reset
      // by them (bytes since the last finished request are a partial head, reason="incomplete_head").
      const s = this.h2 ? undefined : this.req.socket;
      if (s && this.conn) takeByteDeltas(s, this.conn);
      return;
    }
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

  protected countRequestChunk(chunk: Buffer): void {
    if (this.h2) this.h2ReqBytes += chunk.length + 9;
    if (this.reqCounter) this.reqCounter.push(chunk);
  }

  protected reply(code: number, extraFlags: number): void {
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

}

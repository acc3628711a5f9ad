/**
 * `meshtelFastify`: what an inbound sidecar does, as a fastify plugin (spec §1 "Sidecar inbound HCM",
 * §4 reporter=destination, §5 server span):
 * - onRequest: read the peer from `x-envoy-peer-metadata(-id)` (or baggage), strip both headers so the
 *   handlers never see them, start the server span and hand its context to the handlers' outbound calls;
 * - in the same hook, answer with our id / value only where the request carried them (P `filter.cc`): the answer
 *   depends on the request alone, so no onSend hook is needed;
 * - when the response finishes, or its connection closes first: record `istio_requests_total` and the three
 *   histograms with downstream wire bytes and the span, exactly once (no listener per request: see
 *   onResponseFinish). A gRPC request's `grpc-status` is read from the response trailers first, then its headers,
 *   as the sidecar and Envoy read it (the trailers are seen as the app adds them: node keeps no readable copy).
 *
 * Wrapped in fastify-plugin so the hooks apply to every route of the instance that registers it.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { IncomingMessage, ServerResponse } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { context as otelContext } from '@opentelemetry/api';
import { keepHeaders, nodeHeaderGetter, nodeHeaderRemover, nodeHeadersWithout } from '../exchange/http-exchange.js';
import type { NodeHeaders } from '../exchange/http-exchange.js';
import type { ExchangeExtract } from '../exchange/types.js';
import type { PeerMetadata } from '../metadata/types.js';
import { publishHttpTap, tapChannel } from '../record/tap.js';
import { firstHeader } from '../core/headers.js';
import { splitAuthority } from '../core/service-names.js';
import { takeByteDeltas } from '../record/bytes.js';
import { inboundClusterName, routeNameOf } from '../record/cluster.js';
import { connectionInfoOf, peerClosedConnection } from '../record/connection.js';
import type { ConnectionInfo } from '../record/connection.js';
import { serverStreamOutcome } from '../record/outcome.js';
import { UNSAMPLED_SPAN_END, spanEndOf } from '../record/span.js';
import { requestProtocolOf } from '../stats/grpc-status.js';
import type { HttpStreamAttributes, ServiceInfo } from '../stats/types.js';
import type { HopSpan, SpanStartInfo } from '../tracing/types.js';
import { assertEmbedding } from './embedding.js';
import type { MeshtelEmbedding } from './embedding.js';
import { inboundTraceContext, inboundTraceContextRead, pickTraceHeaders } from './trace-context.js';

/** node:http's channel for finished responses (Node ≥ 16.18). */
const RESPONSE_FINISH_CHANNEL = 'http.server.response.finish';

/** Options of {@link meshtelFastify}. */
export interface MeshtelFastifyOptions {
  /** The shared embedding (createMeshtelEmbedding). */
  readonly embedding: MeshtelEmbedding;
  /** The service this app serves; default the embedding's `inboundService` (none: the canonical name is used). */
  readonly service?: ServiceInfo | null;
  /**
   * URL paths (query ignored) that are not mesh traffic: no MX, no series, no span. For routes such as
   * `/metrics` or health probes, which in Istio reach the agent ports (15020/15021), not the app port.
   */
  readonly ignorePaths?: readonly string[];
}

/** Per-request state, kept on the raw response under a symbol (no fastify decoration cost per request). */
interface InboundState {
  readonly start: number;
  readonly extract: ExchangeExtract;
  readonly span: HopSpan;
  /** Only when something reads the trace context (the undici interceptor); else undefined. */
  readonly traceHeaders: Readonly<Record<string, string>> | undefined;
  readonly req: IncomingMessage;
  readonly res: RawWithState;
  /** For its headers: fastify hands its own to writeHead, so the raw response alone does not list them. */
  readonly reply: FastifyReply;
  /** `request_protocol`, from the request's content-type. */
  readonly protocol: 'http' | 'grpc';
  /** gRPC only: the response's own `addTrailers`, which {@link addTrailersSeeingGrpcStatus} calls. */
  readonly addTrailers: ServerResponse['addTrailers'] | undefined;
  /** gRPC only: `grpc-status` of the trailers the app added. */
  trailerGrpcStatus: string | undefined;
  readonly conn: InboundConnection;
  /** The recorder of the plugin instance that started it (one process may run several apps and embeddings). */
  readonly record: (state: InboundState, finished: boolean) => void;
}

/**
 * What every request of one connection shares, built on its first request: the principals and byte marks
 * (record/connection.ts), the inbound cluster of the port it reached, and the requests not recorded yet.
 */
interface InboundConnection {
  readonly info: ConnectionInfo;
  readonly cluster: string;
  readonly routeName: string | undefined;
  /** The oldest request whose response has not finished (node:http answers pipelined requests in order). */
  pending: InboundState | undefined;
  /** Further unfinished requests, only when the client pipelines. */
  more: InboundState[] | undefined;
}

const STATE = Symbol('meshtel.inbound');
const CONNECTION = Symbol('meshtel.inbound.connection');

/** The raw response carries its request's state, so shared listeners find it without a closure per request. */
type RawWithState = ServerResponse & { [STATE]?: InboundState };
type SocketWithConnection = Socket & { [CONNECTION]?: InboundConnection };

/**
 * The `addTrailers` of a gRPC request's response (one shared function, no closure per request): notes the
 * trailers' `grpc-status` for the record, then adds them as the response's own method does.
 */
function addTrailersSeeingGrpcStatus(this: RawWithState, trailers: OutgoingHttpHeaders | readonly [string, string][]): void {
  const state = this[STATE];
  if (state !== undefined) {
    const pairs = Array.isArray(trailers) ? (trailers as readonly [string, string][]) : Object.entries(trailers as OutgoingHttpHeaders);
    for (const [name, value] of pairs) {
      if (name.toLowerCase() === 'grpc-status' && value !== undefined) state.trailerGrpcStatus = firstHeader(value as string | string[] | number);
    }
  }
  (state?.addTrailers ?? Object.getPrototypeOf(this).addTrailers).call(this, trailers);
}

/** Adds an MX answer header to the raw response (a shared function, no closure per request). */
const rawHeaderSetter = (res: ServerResponse, name: string, value: string): void => {
  res.setHeader(name, value);
};

/**
 * How a finished response is recorded without a listener per request. node:http publishes every response that
 * finishes on the `http.server.response.finish` diagnostics channel, from the 'finish' handler it already has
 * (node `lib/_http_server.js` resOnFinish); one process-wide subscriber records the response's state, so a request
 * adds no 'close' listener and no event is emitted for it. A response that never finishes (the client left, the
 * app reset its socket) ends with its connection: one 'close' listener per connection records what is left.
 * Subscribed at the first registration; responses of other servers carry no state and are ignored.
 */
let subscribed = false;
function onResponseFinish(message: unknown): void {
  const state = (message as { response?: RawWithState }).response?.[STATE];
  if (state !== undefined) state.record(state, true);
}

/** A connection closed: its requests still unrecorded did not finish (record() reads how each ended). */
function onConnectionClose(this: SocketWithConnection): void {
  const conn = this[CONNECTION];
  if (conn === undefined) return;
  while (conn.pending !== undefined) {
    const state = conn.pending;
    state.record(state, state.res.writableFinished);
    // record() moved the queue on; a state it refused (recorded already) is dropped here.
    if (conn.pending === state) conn.pending = conn.more?.shift();
  }
}

/**
 * The fallback for responses node:http does not publish (fastify's inject(), HTTP/2): their own 'finish', and
 * 'close' for one that never finishes. 'finish' is the fact itself: inject()'s response never reads as
 * `writableFinished` (its mock socket has no `writableLength`), so a close alone recorded it as UC.
 */
function onFallbackFinish(this: RawWithState): void {
  const state = this[STATE];
  if (state !== undefined) state.record(state, true);
}
function onResponseClose(this: RawWithState): void {
  const state = this[STATE];
  if (state !== undefined) state.record(state, this.writableFinished);
}

/** Methods whose route may parse a body (fastify parses none for GET and HEAD). */
function mayParseBody(method: string | string[]): boolean {
  const methods = Array.isArray(method) ? method : [method];
  return methods.some((m) => m !== 'GET' && m !== 'HEAD');
}

function plugin(app: FastifyInstance, options: MeshtelFastifyOptions, done: (err?: Error) => void): void {
  try {
    assertEmbedding(options?.embedding, 'meshtelFastify');
  } catch (err) {
    // A callback plugin reports through done(); a throw here would escape avvio.
    done(err as Error);
    return;
  }
  const { embedding } = options;
  const { exchange, stats, tracer, logger } = embedding;
  const service = options.service !== undefined ? options.service : embedding.inboundService;
  const ignored = new Set(options.ignorePaths ?? []);
  // A tracer that records nothing (tracing off) gets one shared start info: no URL string or object per request.
  const tracing = tracer.recording !== false;
  const staticSpanInfo: SpanStartInfo = Object.freeze({ kind: 'server', method: '', url: '', authority: '', protocol: '', port: 0 });
  // Response headers are copied for the record only when an expression can read them (stats.readsHeaders).
  const copyResponseHeaders = stats.readsHeaders;
  if (!subscribed) {
    subscribed = true;
    diagnosticsChannel.subscribe(RESPONSE_FINISH_CHANNEL, onResponseFinish);
  }

  /** The connection's shared part, built (and its 'close' listener added) on its first request. */
  function connectionOf(socket: SocketWithConnection, tracked: boolean): InboundConnection {
    let conn = socket[CONNECTION];
    if (conn === undefined) {
      // The port the app listens on (the inbound cluster's target port), read while the socket is open.
      const cluster = inboundClusterName(socket.localPort ?? 0);
      conn = { info: connectionInfoOf(socket), cluster, routeName: routeNameOf(cluster), pending: undefined, more: undefined };
      socket[CONNECTION] = conn;
      if (tracked) socket.on('close', onConnectionClose);
    }
    return conn;
  }

  app.addHook('onRequest', (request, reply, next) => {
    const req = request.raw;
    if (ignored.size > 0) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      if (ignored.has(q < 0 ? url : url.slice(0, q))) {
        next();
        return;
      }
    }
    const headers = req.headers as NodeHeaders;
    // node:http's request takes a new header object (a setter), which stays a fast object where deletes would
    // not (nodeHeadersWithout); HTTP/2's compatibility request has no setter, so its headers are deleted in place.
    const replaceable = req.constructor === IncomingMessage;
    const extract = exchange.extractRequest(headers, nodeHeaderGetter, replaceable ? keepHeaders : nodeHeaderRemover);
    // Strip exactly when a removal would have removed something: either MX header arrived.
    if (replaceable && (extract.idReceived || extract.valueReceived)) req.headers = nodeHeadersWithout(headers) as IncomingMessage['headers'];
    const socket = req.socket as SocketWithConnection;
    const res = reply.raw as RawWithState;
    // node:http's own responses are published when they finish (onResponseFinish); any other kind (inject()'s,
    // HTTP/2's compatibility response, a subclass) keeps a 'close' listener of its own.
    const published = res.constructor === ServerResponse;
    const conn = connectionOf(socket, published);
    let info = staticSpanInfo;
    if (tracing) {
      const authority = firstHeader(req.headers.host) ?? '';
      info = {
        kind: 'server',
        method: req.method ?? 'GET',
        url: `http://${authority}${req.url ?? '/'}`,
        authority,
        protocol: `HTTP/${req.httpVersion}`,
        peerAddress: socket.remoteAddress,
        // As the sidecar names its inbound span: the port the caller addressed, else the one it reached.
        port: splitAuthority(authority).port ?? socket.localPort ?? 0,
        serviceHost: service?.host,
      };
    }
    const span = tracer.startSpan(req.headers, info);
    // The inbound sidecar forwards the request with its server span as parent; the handlers' outbound
    // calls continue from there (trace-context.ts).
    span.inject(req.headers);
    const traceHeaders = inboundTraceContextRead() ? pickTraceHeaders(req.headers) : undefined;
    const protocol = requestProtocolOf(firstHeader(req.headers['content-type']));
    const addTrailers = protocol === 'grpc' ? res.addTrailers : undefined;
    const state: InboundState = { start: performance.now(), extract, span, traceHeaders, req, res, reply, conn, record, protocol, addTrailers, trailerGrpcStatus: undefined };
    res[STATE] = state;
    if (addTrailers !== undefined) res.addTrailers = addTrailersSeeingGrpcStatus;
    if (!published) {
      // 'on', not 'once' (no wrapper per request): record() runs once per state anyway.
      res.on('finish', onFallbackFinish);
      res.on('close', onResponseClose);
    } else if (conn.pending === undefined) {
      conn.pending = state;
    } else {
      (conn.more ??= []).push(state);
    }
    // The MX answer depends only on what the request carried, so it is set now rather than in an onSend hook
    // (a hook fewer on every reply), and on the raw response: a handler that writes reply.raw itself or hijacks
    // the reply (streams, SSE) still answers with our identity, as an inbound sidecar would. fastify keeps raw
    // headers set before it writes the head.
    exchange.injectResponse(res, rawHeaderSetter, extract);
    enter(state, next);
  });

  // Body parsing runs on stream events, outside the context entered above: enter it again for the handlers.
  const reenter = (_request: FastifyRequest, reply: FastifyReply, next: () => void): void => {
    const state = (reply.raw as RawWithState)[STATE];
    if (state !== undefined) enter(state, next);
    else next();
  };
  if (tracing || inboundTraceContextRead()) {
    app.addHook('preHandler', reenter);
  } else {
    // Nothing reads the context yet, but an interceptor created later will: only routes that can parse a body
    // need the second entry (GET and HEAD run their handlers inside onRequest's call), so only they get the hook.
    app.addHook('onRoute', (route) => {
      if (!mayParseBody(route.method)) return;
      const own = route.preHandler;
      route.preHandler = own === undefined ? reenter : Array.isArray(own) ? [reenter, ...own] : [reenter, own];
    });
  }

  /**
   * Run the rest of the request inside the server span: as the OTel context when tracing records (an app with an
   * SDK gets its own spans and meshtel's client spans as children), and as the headers the interceptor copies
   * when the app has no context manager (trace-context.ts).
   */
  function enter(state: InboundState, next: () => void): void {
    const headers = state.traceHeaders;
    const ctx = tracing ? state.span.context : undefined;
    if (ctx !== undefined) otelContext.with(ctx, headers !== undefined ? () => inboundTraceContext.run(headers, next) : next);
    else if (headers !== undefined) inboundTraceContext.run(headers, next);
    else next();
  }

  function record(state: InboundState, finished: boolean): void {
    const { req, res, conn } = state;
    if (res[STATE] !== state) return;
    res[STATE] = undefined; // exactly once
    if (conn.pending === state) conn.pending = conn.more?.shift();
    else if (conn.more !== undefined) {
      const i = conn.more.indexOf(state);
      if (i >= 0) conn.more.splice(i, 1);
    }
    try {
      const socket = req.socket;
      // Principals and byte marks are the connection's, read once per connection (record/connection.ts).
      // (fastify's inject() has a socket without counters: those requests count 0 bytes.)
      const { requestBytes, responseBytes } = takeByteDeltas(socket, conn.info);
      const { responseCode, responseFlags } = serverStreamOutcome({
        finished,
        headersSent: res.headersSent,
        statusCode: res.statusCode,
        peerClosed: peerClosedConnection(socket),
      });
      const peer: PeerMetadata | null = state.extract.result.ok ? state.extract.result.peer : null;
      const unknownReason = state.extract.result.ok ? undefined : state.extract.result.reason;
      // gRPC only, as the sidecar reads it (stream-record.ts): trailers first, then headers (Envoy
      // Grpc::Common::getGrpcStatus), read through the reply: fastify hands its own headers to writeHead, so the raw
      // response alone may not list them (as for responseHeaders below).
      const grpcStatus =
        state.protocol === 'grpc' ? (state.trailerGrpcStatus ?? firstHeader(state.reply.getHeader('grpc-status') as string | string[] | number | undefined)) : undefined;
      const span = state.span;
      // Every field always present (undefined when absent), no spreads: one object shape for the stats stage, and
      // on Node 20 each property added to a spread-built object costs far more than a literal's.
      const attrs: HttpStreamAttributes = {
        reporter: 'destination',
        peer,
        peerUnknownReason: unknownReason,
        peerPrincipal: conn.info.peerPrincipal,
        localPrincipal: conn.info.localPrincipal,
        service,
        specialCluster: undefined,
        remoteAddress: socket.remoteAddress,
        clusterName: conn.cluster,
        routeName: conn.routeName,
        authority: firstHeader(req.headers.host) ?? '',
        protocol: state.protocol,
        responseCode,
        grpcStatus,
        responseFlags,
        durationMs: performance.now() - state.start,
        requestBytes,
        responseBytes,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        requestHeaders: req.headers,
        // fastify's and the raw response's headers (reply.getHeaders merges both), as the wire carried them.
        responseHeaders: copyResponseHeaders ? (state.reply.getHeaders() as Record<string, string | string[] | undefined>) : undefined,
        traceId: span.sampled ? span.traceId : undefined,
      };
      stats.recordHttp(attrs);
      if (tapChannel.hasSubscribers) publishHttpTap(embedding.metadata, attrs);
      if (unknownReason !== undefined) stats.recordPeerUnknown(unknownReason, 'destination');
      span.end(span.sampled ? spanEndOf(attrs, conn.cluster) : UNSAMPLED_SPAN_END);
    } catch (err) {
      // Never throw into the server: count nothing twice, log once.
      logger.warnOnce('embed-record-inbound', 'recording an inbound request failed', { err });
    }
  }

  done();
}

/**
 * The fastify plugin: `app.register(meshtelFastify, { embedding })`.
 * Throws MESHTEL_ERR_INVALID_CONFIG at registration without an embedding.
 */
export const meshtelFastify = fp(plugin, { fastify: '5.x', name: 'meshtel' });

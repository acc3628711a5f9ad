/**
 * `meshtelFastify`: what an inbound sidecar does, as a fastify plugin (spec §1 "Sidecar inbound HCM",
 * §4 reporter=destination, §5 server span):
 * - onRequest: read the peer from `x-envoy-peer-metadata(-id)` (or baggage), strip both headers so the
 *   handlers never see them, start the server span and hand its context to the handlers' outbound calls;
 * - in the same hook, answer with our id / value only where the request carried them (P `filter.cc`): the answer
 *   depends on the request alone, so no onSend hook is needed;
 * - when the response closes (finished or not): record `istio_requests_total` and the three histograms
 *   with downstream wire bytes and the span, exactly once. A gRPC request's `grpc-status` is read from the
 *   response trailers first, then its headers, as the sidecar and Envoy read it (the trailers are seen as the
 *   app adds them: node keeps no readable copy).
 *
 * Wrapped in fastify-plugin so the hooks apply to every route of the instance that registers it.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { context as otelContext } from '@opentelemetry/api';
import { nodeHeaderGetter, nodeHeaderRemover } from '../exchange/http-exchange.js';
import type { NodeHeaders } from '../exchange/http-exchange.js';
import type { ExchangeExtract } from '../exchange/types.js';
import type { PeerMetadata } from '../metadata/types.js';
import { publishHttpTap, tapChannel } from '../record/tap.js';
import { firstHeader } from '../core/headers.js';
import { splitAuthority } from '../core/service-names.js';
import { takeByteDeltas } from '../record/bytes.js';
import { inboundClusterName, routeNameOf } from '../record/cluster.js';
import { connectionInfoOf, peerClosedConnection } from '../record/connection.js';
import { serverStreamOutcome } from '../record/outcome.js';
import { UNSAMPLED_SPAN_END, spanEndOf } from '../record/span.js';
import { requestProtocolOf } from '../stats/grpc-status.js';
import type { HttpStreamAttributes, ServiceInfo } from '../stats/types.js';
import type { HopSpan, SpanStartInfo } from '../tracing/types.js';
import { assertEmbedding } from './embedding.js';
import type { MeshtelEmbedding } from './embedding.js';
import { inboundTraceContext, inboundTraceContextRead, pickTraceHeaders } from './trace-context.js';

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

/** Per-request state, kept on the request under a symbol (no fastify decoration cost per request). */
interface InboundState {
  readonly start: number;
  readonly extract: ExchangeExtract;
  readonly span: HopSpan;
  /** Only when something reads the trace context (the undici interceptor); else undefined. */
  readonly traceHeaders: Readonly<Record<string, string>> | undefined;
  readonly request: WithState;
  readonly reply: FastifyReply;
  /** The port the app listens on (the inbound cluster's target port), read while the socket is open. */
  readonly localPort: number;
  /** `request_protocol`, from the request's content-type. */
  readonly protocol: 'http' | 'grpc';
  /** gRPC only: the response's own `addTrailers`, which {@link addTrailersSeeingGrpcStatus} calls. */
  readonly addTrailers: ServerResponse['addTrailers'] | undefined;
  /** gRPC only: `grpc-status` of the trailers the app added. */
  trailerGrpcStatus: string | undefined;
}

const STATE = Symbol('meshtel.inbound');

type WithState = FastifyRequest & { [STATE]?: InboundState };
/** The raw response carries its request's state, so one shared 'close' listener serves every request. */
type RawWithState = FastifyReply['raw'] & { [STATE]?: InboundState };

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

/** Adds an MX answer header through fastify (a shared function, no closure per request). */
const rawHeaderSetter = (res: ServerResponse, name: string, value: string): void => {
  res.setHeader(name, value);
};

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

  function onResponseClose(this: RawWithState): void {
    const state = this[STATE];
    if (state !== undefined) record(state);
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
    const extract = exchange.extractRequest(headers, nodeHeaderGetter, nodeHeaderRemover);
    const socket = req.socket;
    const localPort = socket.localPort ?? 0;
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
        port: splitAuthority(authority).port ?? localPort,
        serviceHost: service?.host,
      };
    }
    const span = tracer.startSpan(req.headers, info);
    // The inbound sidecar forwards the request with its server span as parent; the handlers' outbound
    // calls continue from there (trace-context.ts).
    span.inject(req.headers);
    const traceHeaders = inboundTraceContextRead() ? pickTraceHeaders(req.headers) : undefined;
    const protocol = requestProtocolOf(firstHeader(req.headers['content-type']));
    const raw = reply.raw as RawWithState;
    const addTrailers = protocol === 'grpc' ? raw.addTrailers : undefined;
    const state: InboundState = { start: performance.now(), extract, span, traceHeaders, request: request as WithState, reply, localPort, protocol, addTrailers, trailerGrpcStatus: undefined };
    (request as WithState)[STATE] = state;
    raw[STATE] = state;
    if (addTrailers !== undefined) raw.addTrailers = addTrailersSeeingGrpcStatus;
    // 'on', not 'once' (no wrapper per request): record() runs once per state anyway.
    raw.on('close', onResponseClose);
    // The MX answer depends only on what the request carried, so it is set now rather than in an onSend hook
    // (a hook fewer on every reply), and on the raw response: a handler that writes reply.raw itself or hijacks
    // the reply (streams, SSE) still answers with our identity, as an inbound sidecar would. fastify keeps raw
    // headers set before it writes the head.
    exchange.injectResponse(reply.raw, rawHeaderSetter, extract);
    enter(state, next);
  });

  // Body parsing ran on stream events, outside the context entered above: enter it again for the handler.
  app.addHook('preHandler', (request, _reply, next) => {
    const state = (request as WithState)[STATE];
    if (state !== undefined) enter(state, next);
    else next();
  });

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

  function record(state: InboundState): void {
    const { request, reply } = state;
    if (request[STATE] !== state) return;
    request[STATE] = undefined; // exactly once
    (reply.raw as RawWithState)[STATE] = undefined;
    try {
      const req = request.raw;
      const res = reply.raw;
      const socket = req.socket;
      // Principals and byte marks are the connection's, read once per connection (record/connection.ts).
      // (fastify's inject() has a socket without counters: those requests count 0 bytes.)
      const conn = connectionInfoOf(socket);
      const { requestBytes, responseBytes } = takeByteDeltas(socket, conn);
      const { responseCode, responseFlags } = serverStreamOutcome({
        finished: res.writableFinished,
        headersSent: res.headersSent,
        statusCode: res.statusCode,
        peerClosed: peerClosedConnection(socket),
      });
      const peer: PeerMetadata | null = state.extract.result.ok ? state.extract.result.peer : null;
      const unknownReason = state.extract.result.ok ? undefined : state.extract.result.reason;
      // Trailers first, then headers (Envoy Grpc::Common::getGrpcStatus).
      const grpcStatus = state.trailerGrpcStatus ?? firstHeader(res.getHeader('grpc-status') as string | string[] | number | undefined);
      const span = state.span;
      const cluster = inboundClusterName(state.localPort);
      // Every field always present (undefined when absent), no spreads: one object shape for the stats stage, and
      // on Node 20 each property added to a spread-built object costs far more than a literal's.
      const attrs: HttpStreamAttributes = {
        reporter: 'destination',
        peer,
        peerUnknownReason: unknownReason,
        peerPrincipal: conn.peerPrincipal,
        localPrincipal: conn.localPrincipal,
        service,
        specialCluster: undefined,
        remoteAddress: socket.remoteAddress,
        clusterName: cluster,
        routeName: routeNameOf(cluster),
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
        responseHeaders: res.getHeaders() as Record<string, string | string[] | undefined>,
        traceId: span.sampled ? span.traceId : undefined,
      };
      stats.recordHttp(attrs);
      if (tapChannel.hasSubscribers) publishHttpTap(embedding.metadata, attrs);
      if (unknownReason !== undefined) stats.recordPeerUnknown(unknownReason, 'destination');
      span.end(span.sampled ? spanEndOf(attrs, cluster) : UNSAMPLED_SPAN_END);
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

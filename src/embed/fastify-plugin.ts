/**
 * `meshtelFastify`: what an inbound sidecar does, as a fastify plugin (spec §1 "Sidecar inbound HCM",
 * §4 reporter=destination, §5 server span):
 * - onRequest: read the peer from `x-envoy-peer-metadata(-id)` (or baggage), strip both headers so the
 *   handlers never see them, start the server span and hand its context to the handlers' outbound calls;
 * - onSend: answer with our id / value only where the request carried them (P `filter.cc`);
 * - when the response closes (finished or not): record `istio_requests_total` and the three histograms
 *   with downstream wire bytes and the span, exactly once.
 *
 * Wrapped in fastify-plugin so the hooks apply to every route of the instance that registers it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { nodeHeaderGetter, nodeHeaderRemover } from '../exchange/http-exchange.js';
import type { NodeHeaders } from '../exchange/http-exchange.js';
import type { ExchangeExtract } from '../exchange/types.js';
import type { PeerMetadata } from '../metadata/types.js';
import { publishHttpTap, tapChannel } from '../core/tap.js';
import { firstHeader } from '../core/headers.js';
import { takeByteDeltas } from '../record/bytes.js';
import { inboundClusterName } from '../record/cluster.js';
import { connectionInfoOf } from '../record/connection.js';
import { serverStreamOutcome } from '../record/outcome.js';
import { spanEndOf } from '../record/span.js';
import type { HttpStreamAttributes, ServiceInfo } from '../stats/types.js';
import type { HopSpan } from '../tracing/types.js';
import { assertEmbedding } from './embedding.js';
import type { MeshtelEmbedding } from './embedding.js';
import { inboundTraceContext, pickTraceHeaders } from './trace-context.js';

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
  readonly traceHeaders: Readonly<Record<string, string>>;
}

const STATE = Symbol('meshtel.inbound');

type WithState = FastifyRequest & { [STATE]?: InboundState };

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
    const authority = firstHeader(req.headers.host) ?? '';
    const socket = req.socket;
    const span = tracer.startSpan(req.headers, {
      kind: 'server',
      method: req.method ?? 'GET',
      url: `http://${authority}${req.url ?? '/'}`,
      authority,
      protocol: `HTTP/${req.httpVersion}`,
      ...(socket.remoteAddress !== undefined ? { peerAddress: socket.remoteAddress } : {}),
      port: socket.localPort ?? 0,
      ...(service ? { serviceHost: service.host } : {}),
    });
    // The inbound sidecar forwards the request with its server span as parent; the handlers' outbound
    // calls continue from there (trace-context.ts).
    span.inject(req.headers);
    const state: InboundState = { start: performance.now(), extract, span, traceHeaders: pickTraceHeaders(req.headers) };
    (request as WithState)[STATE] = state;
    reply.raw.once('close', () => record(request as WithState, reply));
    inboundTraceContext.run(state.traceHeaders, next);
  });

  // Body parsing ran on stream events, outside the context entered above: enter it again for the handler.
  app.addHook('preHandler', (request, _reply, next) => {
    const state = (request as WithState)[STATE];
    if (state) inboundTraceContext.run(state.traceHeaders, next);
    else next();
  });

  app.addHook('onSend', (request, reply, payload, next) => {
    const state = (request as WithState)[STATE];
    if (state) exchange.injectResponse(reply, (r, name, value) => void r.header(name, value), state.extract);
    next(null, payload);
  });

  function record(request: WithState, reply: FastifyReply): void {
    const state = request[STATE];
    if (state === undefined) return;
    request[STATE] = undefined; // exactly once
    try {
      const req = request.raw;
      const res = reply.raw;
      const socket = req.socket;
      // Principals and byte marks are the connection's, read once per connection (record/connection.ts).
      // (fastify's inject() has a socket without counters: those requests count 0 bytes.)
      const conn = connectionInfoOf(socket);
      const { requestBytes, responseBytes } = takeByteDeltas(socket, conn);
      const { responseCode, responseFlags } = serverStreamOutcome({ finished: res.writableFinished, headersSent: res.headersSent, statusCode: res.statusCode });
      const peer: PeerMetadata | null = state.extract.result.ok ? state.extract.result.peer : null;
      const unknownReason = state.extract.result.ok ? undefined : state.extract.result.reason;
      const contentType = firstHeader(req.headers['content-type']) ?? '';
      const grpcStatus = firstHeader(res.getHeader('grpc-status') as string | string[] | number | undefined);
      const attrs: HttpStreamAttributes = {
        reporter: 'destination',
        peer,
        ...(unknownReason !== undefined ? { peerUnknownReason: unknownReason } : {}),
        peerPrincipal: conn.peerPrincipal,
        localPrincipal: conn.localPrincipal,
        service,
        ...(socket.remoteAddress !== undefined ? { remoteAddress: socket.remoteAddress } : {}),
        authority: firstHeader(req.headers.host) ?? '',
        protocol: contentType.startsWith('application/grpc') ? 'grpc' : 'http',
        responseCode,
        ...(grpcStatus !== undefined ? { grpcStatus } : {}),
        responseFlags,
        durationMs: performance.now() - state.start,
        requestBytes,
        responseBytes,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        requestHeaders: req.headers,
        responseHeaders: res.getHeaders() as Record<string, string | string[] | undefined>,
        ...(state.span.sampled ? { traceId: state.span.traceId } : {}),
      };
      stats.recordHttp(attrs);
      if (tapChannel.hasSubscribers) publishHttpTap(embedding.metadata, attrs);
      if (unknownReason !== undefined) stats.recordPeerUnknown(unknownReason, 'destination');
      state.span.end(spanEndOf(attrs, inboundClusterName(socket.localPort ?? 0)));
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

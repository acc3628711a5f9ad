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
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { nodeHeaderGetter, nodeHeaderRemover } from '../exchange/http-exchange.js';
import type { NodeHeaders } from '../exchange/http-exchange.js';
import type { ExchangeExtract } from '../exchange/types.js';
import type { PeerMetadata } from '../metadata/types.js';
import { publishHttpTap, tapChannel } from '../core/tap.js';
import { ResponseFlag } from '../stats/types.js';
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
/** Per-socket byte marks: bytes already attributed to earlier requests on a keep-alive connection. */
const MARKS = Symbol('meshtel.bytes');

type WithState = FastifyRequest & { [STATE]?: InboundState };
type MarkedSocket = Socket & { [MARKS]?: { read: number; written: number } };

function first(v: string | string[] | undefined): string {
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** URI SAN `spiffe://...` of a certificate, or ''. */
function spiffeOf(cert: { subjectaltname?: string } | null | undefined): string {
  const m = /URI:(spiffe:\/\/[^,\s]+)/.exec(cert?.subjectaltname ?? '');
  return m?.[1] ?? '';
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
    const authority = first(req.headers.host);
    const socket = req.socket as MarkedSocket;
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
      const socket = req.socket as MarkedSocket;
      // Wire bytes of this request on the connection, as the sidecar counts them (socket deltas).
      // (fastify's inject() has a socket without counters: those requests count 0 bytes.)
      const marks = (socket[MARKS] ??= { read: 0, written: 0 });
      const read = Number.isFinite(socket.bytesRead) ? socket.bytesRead : 0;
      const written = Number.isFinite(socket.bytesWritten) ? socket.bytesWritten : 0;
      const requestBytes = Math.max(0, read - marks.read);
      const responseBytes = Math.max(0, written - marks.written);
      marks.read = read;
      marks.written = written;
      const finished = res.writableFinished;
      // Envoy: a downstream that left before the response completed is DC, with code 0 if nothing was sent.
      const responseCode = finished || res.headersSent ? res.statusCode : 0;
      const responseFlags = finished ? 0 : ResponseFlag.DC;
      const peer: PeerMetadata | null = state.extract.result.ok ? state.extract.result.peer : null;
      const unknownReason = state.extract.result.ok ? undefined : state.extract.result.reason;
      const tls = (socket as Partial<TLSSocket>).encrypted === true ? (socket as TLSSocket) : undefined;
      const contentType = first(req.headers['content-type']);
      const grpc = contentType.startsWith('application/grpc');
      const grpcStatus = res.getHeader('grpc-status');
      const attrs: HttpStreamAttributes = {
        reporter: 'destination',
        peer,
        ...(unknownReason !== undefined ? { peerUnknownReason: unknownReason } : {}),
        peerPrincipal: tls ? spiffeOf(tls.getPeerCertificate()) : '',
        localPrincipal: tls ? spiffeOf(tls.getCertificate() as { subjectaltname?: string } | null) : '',
        service,
        ...(socket.remoteAddress !== undefined ? { remoteAddress: socket.remoteAddress } : {}),
        authority: first(req.headers.host),
        protocol: grpc ? 'grpc' : 'http',
        responseCode,
        ...(grpcStatus !== undefined ? { grpcStatus: String(grpcStatus) } : {}),
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
      state.span.end({
        statusCode: responseCode,
        responseFlags: finished ? '-' : 'DC',
        upstreamCluster: `inbound|${socket.localPort ?? 0}||`,
        requestSize: requestBytes,
        responseSize: responseBytes,
        ...(grpcStatus !== undefined ? { grpcStatus: String(grpcStatus) } : {}),
        peer,
      });
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

/**
 * `createMeshtelInterceptor`: what an outbound sidecar does, as an undici interceptor (spec §1 "Sidecar
 * outbound HCM", §4 reporter=source, §5 client span). Compose it on any dispatcher:
 * `new Agent().compose(createMeshtelInterceptor(embedding))` or `setGlobalDispatcher(...)` for `fetch`.
 * - request: always set our MX headers (overwriting the app's), start the client span (parent: the
 *   headers the app propagated, or the inbound request being handled), inject its context;
 * - response: read the peer from the upstream's MX headers and strip them before the app sees them;
 * - end or error: record `istio_requests_total` and the histograms once, end the span.
 *
 * Bytes: with no socket between the app and a proxy, `istio_request_bytes` / `istio_response_bytes`
 * are the HTTP/1.1 wire size of the request as the app sent it and of the response as it reaches the
 * app (request line or status line, headers without MX, body), i.e. what an outbound sidecar's
 * downstream byte meter would count for the same exchange.
 */
import { DecoratorHandler } from 'undici';
import type { Dispatcher } from 'undici';
import { nodeHeaderGetter, nodeHeaderRemover, nodeHeaderSetter } from '../exchange/http-exchange.js';
import type { NodeHeaders } from '../exchange/http-exchange.js';
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import { publishHttpTap, tapChannel } from '../record/tap.js';
import { firstHeader } from '../core/headers.js';
import { createBoundedMemo } from '../core/bounded-memo.js';
import { h1HeaderLineBytes } from '../record/bytes.js';
import { outboundClusterOf, routeNameOf } from '../record/cluster.js';
import { clientErrorFlags, clientResponseCode } from '../record/outcome.js';
import { spanEndOf } from '../record/span.js';
import { requestProtocolOf } from '../stats/grpc-status.js';
import type { HttpStreamAttributes, ServiceInfo } from '../stats/types.js';
import type { HopSpan } from '../tracing/types.js';
import { assertEmbedding } from './embedding.js';
import type { MeshtelEmbedding } from './embedding.js';
import { inboundTraceContext, readInboundTraceContext } from './trace-context.js';

/** Options of {@link createMeshtelInterceptor}. */
export interface MeshtelInterceptorOptions {
  /** Skip MX headers to hosts that are not mesh services (Istio `metadataExchangeHeaders.mode: IN_MESH`). Default false. */
  readonly inMeshOnly?: boolean;
}

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;
type RequiredHandler = Required<Pick<Handler, 'onRequestStart' | 'onResponseStart' | 'onResponseData' | 'onResponseEnd' | 'onResponseError'>>;

/** Header object from any form undici accepts (object, flat array, iterable of pairs). */
function toHeaderObject(input: unknown): NodeHeaders {
  const out: NodeHeaders = {};
  const add = (k: string, v: unknown): void => {
    const name = k.toLowerCase();
    const value = Array.isArray(v) ? v.map(String) : String(v);
    const prev = out[name];
    out[name] = prev === undefined ? value : ([] as string[]).concat(prev as string | string[], value);
  };
  if (input == null) return out;
  if (Array.isArray(input)) {
    if (input.length > 0 && Array.isArray(input[0])) for (const [k, v] of input as [string, unknown][]) add(k, v);
    else for (let i = 0; i + 1 < input.length; i += 2) add(String(input[i]), input[i + 1]);
    return out;
  }
  if (typeof (input as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of input as Iterable<[string, unknown]>) add(k, v);
    return out;
  }
  for (const [k, v] of Object.entries(input as Record<string, unknown>)) if (v !== undefined) add(k, v);
  return out;
}

function bodyBytes(body: unknown, headers: NodeHeaders): number {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof Uint8Array) return body.byteLength;
  const cl = Number(headers['content-length']);
  return Number.isFinite(cl) ? cl : 0;
}

/** Parsed origins: a client talks to few, so each string is parsed once (bounded; see createBoundedMemo). */
const origins = createBoundedMemo<string, URL>(256, (origin) => new URL(origin));
function parseOrigin(origin: string): URL {
  return origins.get(origin);
}

/**
 * Create the interceptor. Throws MESHTEL_ERR_INVALID_CONFIG without an embedding; on the request path
 * nothing it does throws into the app (failures are logged once and the request proceeds untouched).
 */
export function createMeshtelInterceptor(embedding: MeshtelEmbedding, options: MeshtelInterceptorOptions = {}): Dispatcher.DispatcherComposeInterceptor {
  assertEmbedding(embedding, 'createMeshtelInterceptor');
  const { exchange, tracer, logger } = embedding;
  const inMeshOnly = options.inMeshOnly === true;
  // From now on the fastify plugin hands each request's trace headers to the calls made while handling it.
  readInboundTraceContext();

  return (dispatch) => (opts, handler) => {
    let wrapped: Handler = handler;
    let dispatchOpts = opts;
    try {
      const origin = typeof opts.origin === 'string' ? parseOrigin(opts.origin) : opts.origin;
      const headers = toHeaderObject(opts.headers);
      const authority = firstHeader(headers.host) ?? origin?.host ?? '';
      const method = opts.method ?? 'GET';
      const path = opts.path ?? '/';
      // Request bytes as the app wrote them (before our MX and trace headers), host included.
      const requestBytes =
        Buffer.byteLength(`${method} ${path} HTTP/1.1\r\n`) +
        h1HeaderLineBytes(headers) +
        (headers.host === undefined ? Buffer.byteLength(`host: ${authority}\r\n`) : 0) +
        2 +
        bodyBytes(opts.body, headers);
      const service = embedding.resolveService(authority);
      const mx = !inMeshOnly || service !== null;
      // Trace context of the inbound request being handled, unless the app propagated its own.
      const inbound = inboundTraceContext.getStore();
      if (inbound !== undefined) for (const [k, v] of Object.entries(inbound)) if (headers[k] === undefined) headers[k] = v;
      const port = origin?.port ? Number(origin.port) : origin?.protocol === 'https:' ? 443 : 80;
      const span = tracer.startSpan(headers as Record<string, string | string[] | undefined>, {
        kind: 'client',
        method,
        url: `${origin?.protocol ?? 'http:'}//${authority}${path}`,
        authority,
        protocol: 'HTTP/1.1',
        port,
        ...(service ? { serviceHost: service.host } : {}),
      });
      span.inject(headers as Record<string, string | string[] | undefined>);
      if (mx) exchange.injectRequest(headers, nodeHeaderSetter);
      dispatchOpts = { ...opts, headers: headers as Record<string, string | string[]> };
      wrapped = new OutboundHandler(handler, {
        embedding,
        start: performance.now(),
        span,
        service,
        authority,
        method,
        path,
        port,
        requestBytes,
        requestHeaders: headers,
        mx,
      });
    } catch (err) {
      logger.warnOnce('embed-outbound', 'meshtel interceptor failed; request sent without telemetry', { err });
    }
    return dispatch(dispatchOpts, wrapped);
  };
}

interface OutboundContext {
  readonly embedding: MeshtelEmbedding;
  readonly start: number;
  readonly span: HopSpan;
  readonly service: ServiceInfo | null;
  readonly authority: string;
  readonly method: string;
  readonly path: string;
  readonly port: number;
  readonly requestBytes: number;
  readonly requestHeaders: NodeHeaders;
  readonly mx: boolean;
}

/** Wraps the caller's handler (any undici handler style: DecoratorHandler adapts legacy ones). */
class OutboundHandler implements Handler {
  readonly #inner: RequiredHandler;
  readonly #ctx: OutboundContext;
  #status = 0;
  #responseBytes = 0;
  #responseHeaders: NodeHeaders | undefined;
  #peer: PeerMetadata | null = null;
  #unknown: UnknownPeerReason | undefined;
  #done = false;

  constructor(handler: Handler, ctx: OutboundContext) {
    this.#inner = new DecoratorHandler(handler) as unknown as RequiredHandler;
    this.#ctx = ctx;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.#inner.onRequestStart(controller, context);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: NodeHeaders, statusMessage?: string): void {
    try {
      // 1xx informational responses are not the response.
      if (statusCode >= 200) {
        this.#status = statusCode;
        if (this.#ctx.mx) {
          const extract = this.#ctx.embedding.exchange.extractResponse(headers, nodeHeaderGetter, nodeHeaderRemover);
          if (extract.result.ok) this.#peer = extract.result.peer;
          else this.#unknown = extract.result.reason;
        } else {
          this.#unknown = 'mx_disabled';
        }
        this.#responseHeaders = headers;
        this.#responseBytes += Buffer.byteLength(`HTTP/1.1 ${statusCode} ${statusMessage ?? ''}\r\n`) + h1HeaderLineBytes(headers) + 2;
      }
    } catch (err) {
      this.#ctx.embedding.logger.warnOnce('embed-outbound-response', 'reading response MX failed', { err });
    }
    return this.#inner.onResponseStart(controller, statusCode, headers as never, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#responseBytes += chunk.length;
    return this.#inner.onResponseData(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: NodeHeaders): void {
    const grpc = firstHeader(trailers?.['grpc-status']) ?? firstHeader(this.#responseHeaders?.['grpc-status']);
    this.#record(0, grpc);
    return this.#inner.onResponseEnd(controller, trailers as never);
  }

  onResponseError(controller: Controller, err: Error): void {
    this.#record(clientErrorFlags(err), undefined);
    return this.#inner.onResponseError(controller, err);
  }

  #record(flags: number, grpcStatus: string | undefined): void {
    if (this.#done) return;
    this.#done = true;
    const c = this.#ctx;
    try {
      const responseCode = clientResponseCode(this.#status, flags);
      const special = c.service === null ? ('PassthroughCluster' as const) : undefined;
      const cluster = outboundClusterOf(c.service, c.port, special);
      const attrs: HttpStreamAttributes = {
        reporter: 'source',
        peer: this.#peer,
        ...(this.#peer === null && this.#unknown !== undefined ? { peerUnknownReason: this.#unknown } : {}),
        peerPrincipal: '',
        localPrincipal: '',
        service: c.service,
        // A host that is no mesh service goes where an outbound sidecar's ALLOW_ANY passthrough sends it.
        ...(special !== undefined ? { specialCluster: special } : {}),
        clusterName: cluster,
        routeName: routeNameOf(cluster),
        authority: c.authority,
        protocol: requestProtocolOf(firstHeader(c.requestHeaders['content-type'])),
        responseCode,
        ...(grpcStatus !== undefined ? { grpcStatus } : {}),
        responseFlags: flags,
        durationMs: performance.now() - c.start,
        requestBytes: c.requestBytes,
        responseBytes: this.#responseBytes,
        method: c.method,
        path: c.path,
        requestHeaders: c.requestHeaders as Record<string, string | string[] | undefined>,
        ...(this.#responseHeaders ? { responseHeaders: this.#responseHeaders as Record<string, string | string[] | undefined> } : {}),
        ...(c.span.sampled ? { traceId: c.span.traceId } : {}),
      };
      c.embedding.stats.recordHttp(attrs);
      if (tapChannel.hasSubscribers) publishHttpTap(c.embedding.metadata, attrs);
      if (this.#peer === null && this.#unknown !== undefined) c.embedding.stats.recordPeerUnknown(this.#unknown, 'source');
      c.span.end(spanEndOf(attrs, cluster));
    } catch (err) {
      c.embedding.logger.warnOnce('embed-record-outbound', 'recording an outbound request failed', { err });
    }
  }
}

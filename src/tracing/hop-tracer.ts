/**
 * One span per request per hop, as Envoy's HTTP connection manager creates it (istio-telemetry-v2 spec §5),
 * written against `@opentelemetry/api` only. Whoever owns the tracer provider is not this module's business:
 * the sidecar's NodeSDK (node-sdk.ts), a private provider per proxy (tracer.ts), or the application's own
 * provider in the embedding ({@link createApiTracing}): libraries use the API, applications configure the SDK.
 *
 * Per request, `startSpan`:
 * 1. generates `x-request-id` when absent (Envoy does so for every request it sees without one);
 * 2. applies Envoy's trace decision to character 14 of the id (`9` sampled, `a` forced, `b` client);
 * 3. takes the parent: the active OTel context when the app already has a span there (embedding), else the
 *    W3C / B3 headers; the caller's sampled flag wins when it made a decision, as Envoy's tracers do,
 *    otherwise the request-id decision applies;
 * 4. starts the span with that decision in its context ({@link ENVOY_DECISION_KEY}) for the sampler to read
 *    (sampler.ts). Unsampled spans are non-recording: a trace id and span id to propagate, nothing recorded.
 * `end` writes Envoy's and Istio's tags on recording spans only and ends the span.
 *
 * Hand-written on purpose: the x-request-id decision and the Envoy/Istio tag set are Envoy behaviour with no
 * OTel equivalent (an instrumentation library would name spans and attributes after OTel's HTTP conventions;
 * Istio's dashboards and Jaeger views expect Envoy's).
 */
import { SpanKind, TraceFlags, context as otelContext, createContextKey, isSpanContextValid, trace } from '@opentelemetry/api';
import type { Context, Span, Tracer, TracerProvider } from '@opentelemetry/api';
import { silentLogger } from '../core/logger.js';
import type { Logger } from '../core/logger.js';
import { resolveHopTracingConfig } from './config.js';
import type { HopTracingConfig, HopTracingOptions } from './config.js';
import { PassthroughHopSpan, ensureRequestId, ensureRequestIdSafe, header } from './noop.js';
import { createTracePropagation } from './propagation.js';
import type { ExtractedParent, TracePropagation } from './propagation.js';
import { X_CLIENT_TRACE_ID, X_ENVOY_FORCE_TRACE, X_REQUEST_ID, applyTraceDecision, getTraceReason } from './request-id.js';
import {
  COMPONENT_PROXY,
  TAG,
  USER_AGENT,
  X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER,
  addPeerTags,
  buildIstioServiceTags,
  spanName,
  truncateUrlPath,
} from './tags.js';
import type { HeaderBag, HopSpan, HopTracer, SpanEndInfo, SpanStartInfo } from './types.js';

/** Instrumentation scope of meshtel's spans. */
export const TRACER_NAME = 'meshtel';

/**
 * Context key carrying the Envoy decision made in `startSpan` (true: sample) to a sampler that honours it
 * (sampler.ts). `createContextKey` is `Symbol.for`, so the key is the same in every copy of the API package.
 */
export const ENVOY_DECISION_KEY = createContextKey('meshtel.tracing.envoy-decision');

/** Where a hop tracer's finished spans are accounted, when meshtel owns the export pipeline. */
export interface HopSpanAccounting {
  /** A sampled span was ended and handed to the processor. */
  queued(count: number): void;
  /** A span could not be started or ended (counted as `internal_error`). */
  internalError(count: number): void;
}

/** What {@link createHopTracer} builds a tracer from. */
export interface HopTracerParts {
  readonly config: HopTracingConfig;
  /** The OTel tracer spans are started with. */
  readonly tracer: Tracer;
  /** Envoy node id, the `node_id` tag. */
  readonly nodeId: string;
  readonly local: HopTracingOptions['local'];
  readonly logger: Logger;
  /**
   * Take an active OTel span as the parent (the embedding: the app's own HTTP span, or meshtel's server span
   * around the handler). A proxy leaves it off: its hops are separate requests, whatever the context holds.
   */
  readonly activeParent: boolean;
  /** Present when meshtel owns the span processor (sidecar, demo): ended spans are counted until reported. */
  readonly accounting?: HopSpanAccounting;
  /** Stop the pipeline (flush, bounded); the tracer starts only unsampled spans afterwards. */
  readonly shutdown: () => Promise<void>;
}

/** State shared by all spans of one tracer, built once. */
interface TracerState {
  readonly tracer: Tracer;
  readonly propagation: TracePropagation;
  readonly istioTags: boolean;
  /** Tags every sampled span carries (component, node_id, zone, istio.*), merged into each span's attributes. */
  readonly constantTags: Readonly<Record<string, string>>;
  readonly logger: Logger;
  readonly accounting: HopSpanAccounting | undefined;
}

class MeshtelHopSpan implements HopSpan {
  readonly sampled: boolean;
  readonly traceId: string;
  private ended = false;
  // Only sampled, recording spans keep what `end` needs for tags.
  private readonly start: SpanStartInfo | undefined;
  private readonly userAgent: string | undefined;
  private readonly clientTraceId: string | undefined;
  private readonly downstreamCluster: string | undefined;

  constructor(
    private readonly state: TracerState,
    private readonly span: Span,
    private readonly parentContext: Context,
    private readonly parent: ExtractedParent,
    private readonly requestId: string,
    start: SpanStartInfo,
    headers: HeaderBag,
  ) {
    const sc = span.spanContext();
    // What the provider decided: ours follows the Envoy decision, an app's sampler may not.
    this.sampled = (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
    this.traceId = sc.traceId;
    // Tags only on sampled spans (callers end the others with a shared UNSAMPLED_SPAN_END, src/record/span.ts).
    if (this.sampled && span.isRecording()) {
      this.start = start;
      this.userAgent = header(headers, USER_AGENT);
      this.clientTraceId = header(headers, X_CLIENT_TRACE_ID);
      this.downstreamCluster = header(headers, X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER);
    }
  }

  /** Built on demand: only the embedding runs code inside the hop; a proxy never asks. */
  get context(): Context {
    return trace.setSpan(this.parentContext, this.span);
  }

  inject(headers: HeaderBag): void {
    try {
      headers[X_REQUEST_ID] = this.requestId;
      const sc = this.span.spanContext();
      // A non-recording span of the no-op API (no SDK in the app) carries the parent's context, or none: then the
      // request goes on with what it brought, as a library without an SDK must behave.
      if (isSpanContextValid(sc)) this.state.propagation.inject(sc, this.parent, headers);
    } catch (err) {
      this.state.logger.warnOnce('tracing-inject', 'trace context injection failed', { err });
    }
  }

  end(info: SpanEndInfo): void {
    if (this.ended) return;
    this.ended = true;
    if (this.start === undefined) {
      // Non-recording: nothing to tag, but the span is still ended for the provider's bookkeeping.
      this.span.end();
      return;
    }
    try {
      const s = this.start;
      // Envoy writes every tag as a string (http_tracer_impl.cc); so do we, so OTLP and Jaeger show the same values.
      // Copied key by key, not with `{ ...constantTags }`: on Node 20 every property added to an object made by
      // spread costs microseconds (V8 clone maps), and ~15 are added below (measured in bench/tracing.bench.ts).
      const attrs: Record<string, string> = {};
      const constant = this.state.constantTags;
      for (const k in constant) attrs[k] = constant[k]!;
      attrs[TAG.GUID_X_REQUEST_ID] = this.requestId;
      attrs[TAG.HTTP_URL] = truncateUrlPath(s.url);
      attrs[TAG.HTTP_METHOD] = s.method;
      attrs[TAG.DOWNSTREAM_CLUSTER] = this.downstreamCluster || '-';
      attrs[TAG.USER_AGENT] = this.userAgent || '-';
      attrs[TAG.HTTP_PROTOCOL] = s.protocol;
      if (s.peerAddress) attrs[TAG.PEER_ADDRESS] = s.peerAddress;
      if (this.clientTraceId) attrs[TAG.GUID_X_CLIENT_TRACE_ID] = this.clientTraceId;
      attrs[TAG.REQUEST_SIZE] = String(info.requestSize);
      attrs[TAG.RESPONSE_SIZE] = String(info.responseSize);
      if (info.upstreamCluster) {
        attrs[TAG.UPSTREAM_CLUSTER] = info.upstreamCluster;
        attrs[TAG.UPSTREAM_CLUSTER_NAME] = info.upstreamCluster;
      }
      if (info.upstreamAddress) attrs[TAG.UPSTREAM_ADDRESS] = info.upstreamAddress;
      attrs[TAG.HTTP_STATUS_CODE] = String(info.statusCode);
      attrs[TAG.RESPONSE_FLAGS] = info.responseFlags || '-';
      // setCommonTags: no response code or a 5xx is an error; addGrpcResponseTags: a non-OK gRPC status too.
      let error = info.statusCode === 0 || (info.statusCode >= 500 && info.statusCode < 600);
      if (info.grpcStatus !== undefined && info.grpcStatus !== '') {
        attrs[TAG.GRPC_STATUS_CODE] = info.grpcStatus;
        if (info.grpcStatus !== '0') error = true;
      }
      if (error) attrs[TAG.ERROR] = 'true';
      if (this.state.istioTags && info.peer) {
        addPeerTags(attrs, s.kind === 'server' ? 'istio.source_' : 'istio.destination_', info.peer);
      }
      this.span.setAttributes(attrs);
      this.span.end();
      if (this.sampled) this.state.accounting?.queued(1);
    } catch (err) {
      this.state.accounting?.internalError(1);
      this.state.logger.warnOnce('tracing-end', 'ending a span failed', { err });
    }
  }
}

/** The active span's context as a parent, when there is a valid one. */
function activeParentOf(active: Context): ExtractedParent | undefined {
  const sc = trace.getSpanContext(active);
  if (sc === undefined || !isSpanContextValid(sc)) return undefined;
  return { context: active, hasParent: true, sampled: (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED, parentSpanId: sc.spanId, debug: false };
}

/** Build a hop tracer from its parts (see {@link HopTracerParts}); per request it only reads headers and starts a span. */
export function createHopTracer(parts: HopTracerParts): HopTracer {
  const { config, logger, local } = parts;
  const state: TracerState = {
    tracer: parts.tracer,
    propagation: createTracePropagation(config.propagation),
    istioTags: config.istioTags,
    constantTags: Object.freeze({
      [TAG.COMPONENT]: COMPONENT_PROXY,
      [TAG.NODE_ID]: parts.nodeId,
      [TAG.ZONE]: local.zone,
      ...(config.istioTags ? buildIstioServiceTags(local) : {}),
    }),
    logger,
    accounting: parts.accounting,
  };
  const numerator = config.samplingNumerator;
  const activeParent = parts.activeParent;
  let closed = false;

  return {
    startSpan(headers: HeaderBag, info: SpanStartInfo): HopSpan {
      let requestId = '';
      try {
        requestId = ensureRequestId(headers);
        const marked = applyTraceDecision(
          requestId,
          header(headers, X_CLIENT_TRACE_ID) !== undefined,
          header(headers, X_ENVOY_FORCE_TRACE) !== undefined,
          numerator,
        );
        if (marked !== requestId) {
          headers[X_REQUEST_ID] = marked;
          requestId = marked;
        }
        const parent = (activeParent ? activeParentOf(otelContext.active()) : undefined) ?? state.propagation.extract(headers);
        // Envoy's tracers keep the caller's sampled flag (opentelemetry/tracer.cc: "Respect the previous span's
        // sampled flag"); the request-id reason decides only when the caller made no decision.
        const sampled = !closed && (parent.sampled ?? getTraceReason(requestId) !== 'not_traceable');
        const parentContext = parent.context;
        const span = state.tracer.startSpan(
          spanName(info.serviceHost, info.authority, info.port),
          { kind: info.kind === 'server' ? SpanKind.SERVER : SpanKind.CLIENT },
          parentContext.setValue(ENVOY_DECISION_KEY, sampled),
        );
        return new MeshtelHopSpan(state, span, parentContext, parent, requestId, info, headers);
      } catch (err) {
        // Never throw into the proxy: count, log once, carry on untraced.
        state.accounting?.internalError(1);
        logger.warnOnce('tracing-start', 'starting a span failed', { err });
        return new PassthroughHopSpan(requestId || ensureRequestIdSafe(headers));
      }
    },
    async shutdown(): Promise<void> {
      if (closed) return;
      closed = true;
      await parts.shutdown();
    },
  };
}

/** Options of {@link createApiTracing}. */
export interface ApiTracingOptions extends HopTracingOptions {
  /**
   * The application's tracer provider. Default: the global one of `@opentelemetry/api`, looked up through its
   * proxy at the time of use, so a NodeSDK started after meshtel still receives meshtel's spans.
   */
  tracerProvider?: TracerProvider;
}

/**
 * The embedding's tracing: meshtel's spans go through the application's own tracer provider (NodeSDK,
 * @fastify/otel's setup, a BasicTracerProvider...) via `@opentelemetry/api`, so they appear inside the app's
 * traces, with the app's resource, sampler, processors and exporters. meshtel creates and registers no provider.
 * Without an SDK in the app the API is a no-op: no spans, the incoming trace context is passed through.
 *
 * The app's sampler decides. To follow Istio's x-request-id decision for meshtel's spans, give the SDK
 * `createEnvoySampler(fallback)` (sampler.ts). Export accounting (`meshtel_spans_*`) belongs to the app's
 * pipeline here, not to meshtel.
 */
export function createApiTracing(options: ApiTracingOptions): HopTracer {
  const config = resolveHopTracingConfig(options);
  const provider = options.tracerProvider ?? trace.getTracerProvider();
  return createHopTracer({
    config,
    tracer: provider.getTracer(TRACER_NAME),
    nodeId: options.nodeId,
    local: options.local,
    logger: (options.logger ?? silentLogger).child({ component: 'tracing' }),
    activeParent: true,
    shutdown: () => Promise.resolve(),
  });
}

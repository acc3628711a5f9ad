/**
 * The tracing stage: one span per request per hop, as Envoy's HTTP connection manager creates it
 * (istio-telemetry-v2 spec §5), recorded with the OpenTelemetry SDK (@opentelemetry/sdk-trace-base
 * BasicTracerProvider + BatchSpanProcessor) and exported by OTLP/HTTP-protobuf, Jaeger or console.
 *
 * Per request, `startSpan`:
 * 1. generates `x-request-id` when absent (Envoy does so for every request it sees without one);
 * 2. applies Envoy's trace decision to character 14 of the id (`9` sampled, `a` forced, `b` client);
 * 3. extracts the parent (W3C / B3) and honours the caller's sampled flag when it made a decision,
 *    as Envoy's tracers do; otherwise the request-id decision applies;
 * 4. starts an OTel span whose sampler returns that decision. Unsampled spans are the SDK's
 *    non-recording spans: a trace id and span id to propagate, nothing recorded.
 * `end` writes Envoy's and Istio's tags on sampled spans only and ends the span; the BatchSpanProcessor
 * queues it (bounded, drops counted) and exports in the background, never on the request path.
 */
import { SpanKind, createContextKey } from '@opentelemetry/api';
import type { Attributes, Context, Link, Span, Tracer } from '@opentelemetry/api';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SamplingDecision } from '@opentelemetry/sdk-trace-base';
import type { BufferConfig, Sampler, SamplingResult, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { silentLogger } from '../core/logger.js';
import type { Logger } from '../core/logger.js';
import { resolveTracingConfig } from './config.js';
import type { TracingConfig, TracingOptions } from './config.js';
import { createSpanExporter, withExportDeadline } from './exporters.js';
import { createTracePropagation } from './propagation.js';
import type { ExtractedParent, TracePropagation } from './propagation.js';
import { X_CLIENT_TRACE_ID, X_ENVOY_FORCE_TRACE, X_REQUEST_ID, applyTraceDecision, getTraceReason } from './request-id.js';
import { createSpanCountingMeterProvider, createSpanMetrics } from './span-metrics.js';
import type { SpanMetrics } from './span-metrics.js';
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
import { PassthroughHopSpan, ensureRequestId, ensureRequestIdSafe, header } from './noop.js';

export { createNoopTracing } from './noop.js';

/** Instrumentation scope of meshtel's spans. */
export const TRACER_NAME = 'meshtel';

/** Context key carrying the decision made in `startSpan` to the sampler. */
const DECISION_KEY = createContextKey('meshtel.tracing.sampled');
const SAMPLE: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED });
const DROP: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD });

/**
 * The SDK sampler: it only reads the decision `startSpan` already made (Envoy's request-id decision, or
 * the upstream flag), so OTel's sampler hook and Envoy's rules cannot disagree.
 */
class EnvoyDecisionSampler implements Sampler {
  shouldSample(context: Context, _traceId: string, _name: string, _kind: SpanKind, _attrs: Attributes, _links: Link[]): SamplingResult {
    return context.getValue(DECISION_KEY) === true ? SAMPLE : DROP;
  }
  toString(): string {
    return 'EnvoyDecisionSampler';
  }
}

/** State shared by all spans of one tracer, built once. */
interface TracerState {
  readonly tracer: Tracer;
  readonly propagation: TracePropagation;
  readonly config: TracingConfig;
  /** Tags every sampled span carries (component, node_id, zone, istio.*), merged into each span's attributes. */
  readonly constantTags: Readonly<Record<string, string>>;
  readonly metrics: SpanMetrics;
  readonly logger: Logger;
  /** A span processor exports (exporter is not `none`): ended sampled spans are pending until it reports them. */
  readonly exporting: boolean;
}

class MeshtelHopSpan implements HopSpan {
  readonly sampled: boolean;
  readonly traceId: string;
  private ended = false;
  // Only sampled spans keep what `end` needs for tags.
  private readonly start: SpanStartInfo | undefined;
  private readonly userAgent: string | undefined;
  private readonly clientTraceId: string | undefined;
  private readonly downstreamCluster: string | undefined;

  constructor(
    private readonly state: TracerState,
    private readonly span: Span,
    private readonly parent: ExtractedParent,
    private readonly requestId: string,
    sampled: boolean,
    start: SpanStartInfo,
    headers: HeaderBag,
  ) {
    this.sampled = sampled;
    this.traceId = span.spanContext().traceId;
    if (sampled) {
      this.start = start;
      this.userAgent = header(headers, USER_AGENT);
      this.clientTraceId = header(headers, X_CLIENT_TRACE_ID);
      this.downstreamCluster = header(headers, X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER);
    }
  }

  inject(headers: HeaderBag): void {
    try {
      headers[X_REQUEST_ID] = this.requestId;
      this.state.propagation.inject(this.span.spanContext(), this.parent, headers);
    } catch (err) {
      this.state.logger.warnOnce('tracing-inject', 'trace context injection failed', { err });
    }
  }

  end(info: SpanEndInfo): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.sampled || this.start === undefined) return;
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
      if (this.state.config.istioTags && info.peer) {
        addPeerTags(attrs, s.kind === 'server' ? 'istio.source_' : 'istio.destination_', info.peer);
      }
      this.span.setAttributes(attrs);
      this.span.end();
      if (this.state.exporting) this.state.metrics.queued(1);
    } catch (err) {
      this.state.metrics.dropped('internal_error', 1);
      this.state.logger.warnOnce('tracing-end', 'ending a span failed', { err });
    }
  }
}

/**
 * Create the tracing stage. Validates options and environment once (`MESHTEL_ERR_INVALID_TRACING`),
 * builds the provider, exporter and propagators; per request it only reads headers and starts a span.
 */
export function createTracing(options: TracingOptions): HopTracer {
  const config = resolveTracingConfig(options);
  const logger = (options.logger ?? silentLogger).child({ component: 'tracing' });
  const metrics = createSpanMetrics(options.registry, logger);
  const exporter = createSpanExporter(config);

  const spanProcessors: SpanProcessor[] = [];
  if (exporter !== null) {
    const bufferConfig: BufferConfig & { selfObsMeterProvider: ReturnType<typeof createSpanCountingMeterProvider> } = {
      maxQueueSize: config.maxQueueSize,
      maxExportBatchSize: config.maxExportBatchSize,
      scheduledDelayMillis: config.scheduledDelayMillis,
      exportTimeoutMillis: config.exportTimeoutMillis,
      // The processor's own drop/export accounting, routed to our counters (span-metrics.ts).
      selfObsMeterProvider: createSpanCountingMeterProvider(metrics),
    };
    spanProcessors.push(new BatchSpanProcessor(withExportDeadline(exporter, config.exportTimeoutMillis), bufferConfig));
  }
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': config.serviceName })),
    sampler: new EnvoyDecisionSampler(),
    spanProcessors,
  });

  const local = options.local;
  const state: TracerState = {
    tracer: provider.getTracer(TRACER_NAME),
    propagation: createTracePropagation(config.propagation),
    config,
    constantTags: Object.freeze({
      [TAG.COMPONENT]: COMPONENT_PROXY,
      [TAG.NODE_ID]: options.nodeId,
      [TAG.ZONE]: local.zone,
      ...(config.istioTags ? buildIstioServiceTags(local) : {}),
    }),
    metrics,
    logger,
    exporting: spanProcessors.length > 0,
  };
  const numerator = config.samplingNumerator;
  let closed = false;

  logger.debug('tracing started', {
    exporter: typeof config.exporter === 'string' ? config.exporter : 'custom',
    endpoint: config.endpoint,
    samplingPercent: config.samplingPercent,
    propagation: config.propagation,
  });

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
        const parent = state.propagation.extract(headers);
        // Envoy's tracers keep the caller's sampled flag (opentelemetry/tracer.cc: "Respect the previous span's
        // sampled flag"); the request-id reason decides only when the caller made no decision.
        const sampled = !closed && (parent.sampled ?? getTraceReason(requestId) !== 'not_traceable');
        const span = state.tracer.startSpan(
          spanName(info.serviceHost, info.authority, info.port),
          { kind: info.kind === 'server' ? SpanKind.SERVER : SpanKind.CLIENT },
          parent.context.setValue(DECISION_KEY, sampled),
        );
        return new MeshtelHopSpan(state, span, parent, requestId, sampled, info, headers);
      } catch (err) {
        // Never throw into the proxy: count, log once, carry on untraced.
        metrics.dropped('internal_error', 1);
        logger.warnOnce('tracing-start', 'starting a span failed', { err });
        return new PassthroughHopSpan(requestId || ensureRequestIdSafe(headers));
      }
    },
    async shutdown(): Promise<void> {
      if (closed) return;
      closed = true;
      const drained = provider.shutdown().then(
        () => true,
        (err: unknown) => {
          // The last flush failed (backend down); those spans are already counted as export_failed. Shutting
          // down must still succeed so the proxy can exit.
          logger.warn('tracing shutdown: final export failed', { err });
          return true;
        },
      );
      // Bound the drain: with the backend down the processor's final export waits for the OTLP timeout and its
      // retries. What is still pending at the deadline is counted as dropped and the rest is left to die with
      // the process (the provider keeps shutting down in the background, its late reports ignored).
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), config.shutdownTimeoutMillis);
      });
      const inTime = await Promise.race([drained, deadline]);
      clearTimeout(timer);
      if (!inTime) {
        const dropped = metrics.abandonPending('shutdown_timeout');
        logger.warn('tracing shutdown: drain timed out, pending spans dropped', { timeoutMs: config.shutdownTimeoutMillis, dropped });
      }
    },
  };
}

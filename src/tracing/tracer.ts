/**
 * meshtel-owned span pipelines: the exporter named by the configuration behind a BatchSpanProcessor whose
 * outcomes are counted in `meshtel_spans_*` (span-metrics.ts), a sampler that carries Envoy's decision
 * (sampler.ts), and a shutdown drain bounded by `shutdownTimeoutMillis`.
 *
 * {@link createTracing} puts the pipeline in a private BasicTracerProvider: for processes that run several
 * proxies, each with its own resource (the demo's six sidecars), and for tests. The sidecar process, which is
 * an application, configures the global SDK with NodeSDK instead (node-sdk.ts). The embedding uses neither:
 * its spans go through the app's provider (hop-tracer.ts `createApiTracing`).
 */
import { getNumberFromEnv } from '@opentelemetry/core';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { BufferConfig, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { MeterProvider } from '@opentelemetry/api';
import { silentLogger } from '../core/logger.js';
import type { Logger } from '../core/logger.js';
import { defaultServiceName, resolveTracingConfig } from './config.js';
import type { TracingConfig, TracingOptions } from './config.js';
import { createSpanExporter, withExportDeadline } from './exporters.js';
import { TRACER_NAME, createHopTracer } from './hop-tracer.js';
import type { HopSpanAccounting } from './hop-tracer.js';
import { createEnvoySampler } from './sampler.js';
import { createSpanCountingMeterProvider, createSpanMetrics } from './span-metrics.js';
import type { SpanMetrics } from './span-metrics.js';
import type { HopTracer } from './types.js';

export { createNoopTracing } from './noop.js';
export { TRACER_NAME } from './hop-tracer.js';

/** The export side of a meshtel-owned pipeline. */
export interface SpanPipeline {
  readonly config: TracingConfig;
  /** The BatchSpanProcessor, or none for the `none` exporter (spans are still sampled, tagged and propagated). */
  readonly processors: SpanProcessor[];
  readonly metrics: SpanMetrics;
  /** What the hop tracer reports ended and failed spans to. */
  readonly accounting: HopSpanAccounting;
  readonly logger: Logger;
}

/** Validate `options` and build the exporter and processor (nothing is started or registered). */
/** The one debug line saying which pipeline a tracer provider (private or NodeSDK's) was started with. */
export function logTracingStarted(pipeline: SpanPipeline, message: string): void {
  const { config, logger } = pipeline;
  logger.debug(message, {
    exporter: typeof config.exporter === 'string' ? config.exporter : 'custom',
    endpoint: config.endpoint,
    samplingPercent: config.samplingPercent,
    propagation: config.propagation,
  });
}

export function createSpanPipeline(options: TracingOptions): SpanPipeline {
  const config = resolveTracingConfig(options);
  const logger = (options.logger ?? silentLogger).child({ component: 'tracing' });
  const metrics = createSpanMetrics(options.registry, logger);
  const exporter = createSpanExporter(config);
  const processors: SpanProcessor[] = [];
  if (exporter !== null) {
    // Unset values are left to the processor, which reads OTEL_BSP_* (sdk-trace-base BatchSpanProcessor).
    const bufferConfig: BufferConfig & { selfObsMeterProvider: MeterProvider } = {
      ...(config.maxQueueSize !== undefined ? { maxQueueSize: config.maxQueueSize } : {}),
      ...(config.maxExportBatchSize !== undefined ? { maxExportBatchSize: config.maxExportBatchSize } : {}),
      ...(config.scheduledDelayMillis !== undefined ? { scheduledDelayMillis: config.scheduledDelayMillis } : {}),
      ...(config.exportTimeoutMillis !== undefined ? { exportTimeoutMillis: config.exportTimeoutMillis } : {}),
      // The processor's own drop/export accounting, routed to our counters (span-metrics.ts).
      selfObsMeterProvider: createSpanCountingMeterProvider(metrics),
    };
    // The same timeout the processor applies (its own env fallback, same helper), so the deadline wrapper and the
    // processor give up together.
    const exportTimeout = config.exportTimeoutMillis ?? getNumberFromEnv('OTEL_BSP_EXPORT_TIMEOUT') ?? 30_000;
    processors.push(new BatchSpanProcessor(withExportDeadline(exporter, exportTimeout), bufferConfig));
  }
  const exporting = processors.length > 0;
  return {
    config,
    processors,
    metrics,
    accounting: {
      queued: (n) => {
        if (exporting) metrics.queued(n);
      },
      internalError: (n) => metrics.dropped('internal_error', n),
    },
    logger,
  };
}

/**
 * Run `shutdown` (the provider's, which flushes the processor) for at most the pipeline's drain bound. What is
 * still pending at the deadline is counted as dropped (`shutdown_timeout`) and left to die with the process
 * (the provider keeps shutting down in the background, its late reports ignored). Never rejects.
 */
export async function boundedShutdown(pipeline: SpanPipeline, shutdown: () => Promise<unknown>): Promise<void> {
  const { logger, metrics } = pipeline;
  const timeoutMs = pipeline.config.shutdownTimeoutMillis;
  const drained = Promise.resolve()
    .then(shutdown)
    .then(
      () => true,
      (err: unknown) => {
        // The last flush failed (backend down); those spans are already counted as export_failed. Shutting
        // down must still succeed so the proxy can exit.
        logger.warn('tracing shutdown: final export failed', { err });
        return true;
      },
    );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const inTime = await Promise.race([drained, deadline]);
  clearTimeout(timer);
  if (!inTime) {
    const dropped = metrics.abandonPending('shutdown_timeout');
    logger.warn('tracing shutdown: drain timed out, pending spans dropped', { timeoutMs, dropped });
  }
}

/**
 * The resource of a meshtel proxy: the SDK's defaults, Istio's `service.name` (`<canonical service>.<namespace>`),
 * then what `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` say (the SDK's env detector), then an explicit
 * `serviceName`.
 */
export function proxyResource(options: Pick<TracingOptions, 'local'>, config: TracingConfig): Resource {
  let resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': defaultServiceName(options.local) }))
    .merge(detectResources({ detectors: [envDetector] }));
  if (config.serviceName !== undefined) resource = resource.merge(resourceFromAttributes({ 'service.name': config.serviceName }));
  return resource;
}

/**
 * A proxy's tracing in a private tracer provider (nothing registered globally). Validates options once
 * (`MESHTEL_ERR_INVALID_TRACING`); per request it only reads headers and starts a span.
 */
export function createTracing(options: TracingOptions): HopTracer {
  const pipeline = createSpanPipeline(options);
  const { config, logger } = pipeline;
  const provider = new BasicTracerProvider({
    resource: proxyResource(options, config),
    sampler: createEnvoySampler(),
    spanProcessors: pipeline.processors,
  });
  logTracingStarted(pipeline, 'tracing started');
  return createHopTracer({
    config,
    tracer: provider.getTracer(TRACER_NAME),
    nodeId: options.nodeId,
    local: options.local,
    logger,
    activeParent: false,
    accounting: pipeline.accounting,
    shutdown: () => boundedShutdown(pipeline, () => provider.shutdown()),
  });
}

/**
 * The sidecar's tracing: the sidecar is an application, so it configures the OpenTelemetry SDK the way OTel
 * intends, with `NodeSDK` (@opentelemetry/sdk-node). The SDK registers the global tracer provider, context
 * manager and propagator, detects the resource (env, process, host: `OTEL_SERVICE_NAME`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_NODE_RESOURCE_DETECTORS`), applies `OTEL_SDK_DISABLED`, `OTEL_LOG_LEVEL` and
 * the span limits, and its exporters and processor read their own `OTEL_*` variables.
 *
 * meshtel supplies only what is Envoy's: the sampler that carries the x-request-id decision (sampler.ts), the
 * Envoy/Istio span shape (hop-tracer.ts), and its counted, bounded span processor (tracer.ts), so
 * `meshtel_spans_*` and the shutdown drain bound hold for the sidecar too.
 *
 * Imported by the CLI only when tracing is on: a sidecar without tracing never loads the SDK.
 */
import { trace } from '@opentelemetry/api';
import { getBooleanFromEnv } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { MetricReader } from '@opentelemetry/sdk-metrics';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace';
import { TRACER_NAME, createHopTracer } from './hop-tracer.js';
import { createEnvoySampler } from './sampler.js';
import { boundedShutdown, createSpanPipeline, logTracingStarted, proxyResource } from './tracer.js';
import { createNoopTracing } from './noop.js';
import type { TracingOptions } from './config.js';
import type { HopTracer } from './types.js';

/** Options of {@link startNodeSdkTracing}. */
export interface NodeSdkTracingOptions extends TracingOptions {
  /**
   * Metric readers for the same SDK (the OTLP metrics push, src/stats/otlp-push.ts). Default none: NodeSDK would
   * otherwise start an OTLP metrics exporter of its own (its `OTEL_METRICS_EXPORTER` default), which the proxy
   * does not feed.
   */
  metricReaders?: MetricReader[];
}

/**
 * Configure and start the process's NodeSDK for the sidecar and return the hop tracer that records through it.
 * Throws `MESHTEL_ERR_INVALID_TRACING` for bad options, before anything is registered. Call once per process.
 */
export function startNodeSdkTracing(options: NodeSdkTracingOptions): HopTracer {
  const pipeline = createSpanPipeline(options);
  const { config, logger } = pipeline;
  if (getBooleanFromEnv('OTEL_SDK_DISABLED')) {
    logger.info('tracing disabled by OTEL_SDK_DISABLED');
    return createNoopTracing();
  }
  const sdk = new NodeSDK({
    // The Istio default service name under the detected resource: OTEL_SERVICE_NAME still overrides it.
    resource: proxyResource(options, { ...config, serviceName: undefined }),
    ...(config.serviceName !== undefined ? { serviceName: config.serviceName } : {}),
    sampler: createEnvoySampler(),
    // NodeSDK registers no provider without a processor; the `none` exporter still samples, tags and propagates.
    spanProcessors: pipeline.processors.length > 0 ? pipeline.processors : [new NoopSpanProcessor()],
    // The proxy instruments nothing else, and logs go to its own logger.
    instrumentations: [],
    metricReaders: options.metricReaders ?? [],
    logRecordProcessors: [],
  });
  sdk.start();
  logTracingStarted(pipeline, 'tracing started (NodeSDK)');
  return createHopTracer({
    config,
    // The global provider NodeSDK just registered.
    tracer: trace.getTracer(TRACER_NAME),
    nodeId: options.nodeId,
    local: options.local,
    logger,
    activeParent: false,
    accounting: pipeline.accounting,
    shutdown: () => boundedShutdown(pipeline, () => sdk.shutdown()),
  });
}

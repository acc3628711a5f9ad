/**
 * The tracing stage (`meshtel/tracing`). `createTracing` loads the OpenTelemetry SDK, so the package root does not
 * re-export it: an app without tracing never loads the SDK. Listed by name (STYLE.md §2).
 */
export type { HopTracer, HopSpan, SpanStartInfo, SpanEndInfo, HeaderBag } from './types.js';
export { createTracing } from './tracer.js';
export { createNoopTracing } from './noop.js';
export { createApiTracing, TRACER_NAME } from './hop-tracer.js';
export type { ApiTracingOptions } from './hop-tracer.js';
export { createEnvoySampler } from './sampler.js';
export type { TracingOptions, HopTracingOptions, TracingExporterName, PropagationFormat } from './config.js';
export { METRIC_SPANS_EXPORTED, METRIC_SPANS_DROPPED } from './span-metrics.js';
export type { SpanDropReason } from './span-metrics.js';

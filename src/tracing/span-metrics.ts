/**
 * Our own counters for the export path, fed by the BatchSpanProcessor's self-observability hook.
 *
 * The OTel BatchSpanProcessor (sdk-trace `BatchSpanProcessorBase`) already knows every outcome: it drops a
 * span when its queue is full (`dropSpans`) and learns the result of every export (`finishSpans`). It reports
 * both on the `otel.sdk.processor.span.processed` counter of the `selfObsMeterProvider` it is given, with
 * `error.type = queue_full` or the export error's name. We hand it a meter whose only live instrument is that
 * counter and route each `add()` to prom-client, so the counts are the processor's own, exact, and cost nothing
 * extra on the request path (the hook runs only when a span is dropped or a batch completes).
 */
import { createNoopMeter } from '@opentelemetry/api';
import type { Attributes, Counter as OtelCounter, Meter, MeterProvider, MetricOptions } from '@opentelemetry/api';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../core/logger.js';

/** Spans handed to the exporter and acknowledged by the backend. */
export const METRIC_SPANS_EXPORTED = 'meshtel_spans_exported_total';
/** Spans lost, by `reason`: `queue_full`, `export_failed`, `internal_error`, `shutdown_timeout`. */
export const METRIC_SPANS_DROPPED = 'meshtel_spans_dropped_total';

/**
 * Why a span was lost. `shutdown_timeout`: still queued or in flight when the bounded shutdown drain
 * (`shutdownTimeoutMillis`) ran out, typically because the backend is down.
 */
export type SpanDropReason = 'queue_full' | 'export_failed' | 'internal_error' | 'shutdown_timeout';

/** The processor's counter we listen to (OTel semantic conventions, `otel.sdk.processor.span.processed`). */
const OTEL_PROCESSED = 'otel.sdk.processor.span.processed';
const ATTR_ERROR_TYPE = 'error.type';
const QUEUE_FULL = 'queue_full';

/** Counters of one tracing pipeline. */
export interface SpanMetrics {
  exported(count: number): void;
  dropped(reason: SpanDropReason, count: number): void;
  /** A sampled span was handed to the processor; it is pending until exported or dropped. */
  queued(count: number): void;
  /**
   * Count every pending span as dropped with `reason` and ignore later reports: the processor may still
   * answer for those spans after the shutdown deadline, and each span must be counted exactly once.
   * Returns how many were dropped.
   */
  abandonPending(reason: SpanDropReason): number;
}

function counter(registry: Registry | undefined, name: string, help: string, labelNames: string[]): Counter<string> {
  // Two pipelines on one registry (tests, a restarted embedding) share the series instead of failing to register.
  const existing = registry?.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<string>;
  return new Counter({ name, help, labelNames, registers: registry ? [registry] : [] });
}

/** Create (or reuse, on `registry`) the span counters. Children are bound once so an increment does no label hashing. */
export function createSpanMetrics(registry: Registry | undefined, logger: Logger): SpanMetrics {
  const exported = counter(registry, METRIC_SPANS_EXPORTED, 'Sampled spans acknowledged by the tracing backend.', []);
  const dropped = counter(registry, METRIC_SPANS_DROPPED, 'Sampled spans lost before reaching the tracing backend, by reason.', ['reason']);
  const byReason = {
    queue_full: dropped.labels('queue_full'),
    export_failed: dropped.labels('export_failed'),
    internal_error: dropped.labels('internal_error'),
    shutdown_timeout: dropped.labels('shutdown_timeout'),
  };
  // Spans handed to the processor and not yet reported back (exported or dropped).
  let pending = 0;
  let sealed = false;
  // Publish every series at 0 from the start, so a rate() or an alert on drops has a series before the first drop.
  exported.inc(0);
  for (const child of Object.values(byReason)) child.inc(0);
  return {
    exported(count) {
      if (sealed) return;
      pending -= count;
      exported.inc(count);
    },
    dropped(reason, count) {
      if (sealed) return;
      // internal_error spans never reached the processor, so they were not pending.
      if (reason !== 'internal_error') pending -= count;
      byReason[reason].inc(count);
      logger.warnOnce(`tracing-drop-${reason}`, 'dropping spans', { reason, count, metric: METRIC_SPANS_DROPPED });
    },
    queued(count) {
      if (!sealed) pending += count;
    },
    abandonPending(reason) {
      if (sealed) return 0;
      const n = Math.max(0, pending);
      if (n > 0) {
        byReason[reason].inc(n);
        logger.warnOnce(`tracing-drop-${reason}`, 'dropping spans', { reason, count: n, metric: METRIC_SPANS_DROPPED });
      }
      pending = 0;
      sealed = true;
      return n;
    },
  };
}

/**
 * A MeterProvider for the BatchSpanProcessor's `selfObsMeterProvider` option that turns its
 * processed-span counter into {@link SpanMetrics} calls; every other instrument is a no-op.
 */
export function createSpanCountingMeterProvider(metrics: Pick<SpanMetrics, 'exported' | 'dropped'>): MeterProvider {
  const base = createNoopMeter();
  const processed: OtelCounter = {
    add(value: number, attributes?: Attributes) {
      const errorType = attributes?.[ATTR_ERROR_TYPE];
      if (errorType === undefined) metrics.exported(value);
      else metrics.dropped(errorType === QUEUE_FULL ? 'queue_full' : 'export_failed', value);
    },
  };
  const meter: Meter = Object.create(base) as Meter;
  meter.createCounter = (name: string, options?: MetricOptions) => (name === OTEL_PROCESSED ? processed : base.createCounter(name, options));
  return { getMeter: () => meter };
}

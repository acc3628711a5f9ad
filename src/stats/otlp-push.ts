/**
 * OTLP push of the same series the Prometheus endpoints serve (istio/istio#53567): `istio_*` from the recorder and
 * `meshtel_*` from the recorder and the prom-client registry, pushed over OTLP/HTTP protobuf on an interval,
 * cumulative, with start times and timestamps.
 *
 * Built the way the OpenTelemetry SDK intends: a `MetricProducer` (the SDK's hook for metrics that live outside
 * its instruments) feeds a `PeriodicExportingMetricReader` on a private `MeterProvider`, exporting through
 * `@opentelemetry/exporter-metrics-otlp-proto`, which reads `OTEL_EXPORTER_OTLP_METRICS_*` (endpoint, headers,
 * timeout, compression, certificates) itself. Nothing is registered globally.
 *
 * Hand-written here: the conversion of meshtel's series (plain numbers, series.ts) into OTLP points, because
 * they are not SDK instruments (the request path never touches OTel, perf-anchors §3a); and the wrapper that
 * splits large exports, bounds each by a deadline and counts the outcome in `meshtel_otlp_*` (the SDK counts
 * nothing a Prometheus alert can read). Classic histograms go out as OTLP histograms with Envoy's bounds; a
 * recorder with native histograms sends them as OTLP exponential histograms (same schema and buckets).
 *
 * Loaded only when the push is enabled (the sidecar's `--otlp-metrics`, the embedding's `otlpMetrics`).
 */
import { ValueType, diag } from '@opentelemetry/api';
import type { Attributes, HrTime } from '@opentelemetry/api';
import { ExportResultCode, getNumberFromEnv, getStringFromEnv, millisToHrTime } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { CollectionResult, MetricData, MetricProducer, PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import { ConfigError, quote } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { parseLabelString } from './exposition-parser.js';
import { readNativeHistogram } from './native-histogram.js';
import { MESHTEL_COLLECTOR } from './registry-bridge.js';
import { settleWithin } from '../core/deadline.js';
import { HistogramSeries } from './series.js';
import type { Family, Series , ScalarSeries } from './series.js';

/** Points pushed and acknowledged by the collector. */
export const METRIC_OTLP_POINTS_EXPORTED = 'meshtel_otlp_metric_points_exported_total';
/** Points of exports that failed or were abandoned, by `reason` (`export_failed`, `shutdown_timeout`). */
export const METRIC_OTLP_POINTS_DROPPED = 'meshtel_otlp_metric_points_dropped_total';
/** Export requests by `result` (`success`, `failed`). */
export const METRIC_OTLP_EXPORTS = 'meshtel_otlp_metric_exports_total';

/** Instrumentation scope of the pushed series. */
export const OTLP_SCOPE = 'meshtel';

/** Options of {@link startOtlpMetricsPush}. */
export interface OtlpMetricsPushOptions {
  /** The recorder's families (`IstioStats.families`). */
  readonly families: () => readonly Family[];
  /** prom-client registry whose own `meshtel_*` metrics are pushed too (meshtel's bridged families are skipped). */
  readonly registry?: Registry;
  /** Resource `service.name` (Istio's `<canonical service>.<namespace>`); `OTEL_SERVICE_NAME` overrides it. */
  readonly serviceName: string;
  /** Metrics URL; default `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics` (localhost:4318). A bare origin gets `/v1/metrics`. */
  readonly endpoint?: string;
  /** Push interval, ms; default `OTEL_METRIC_EXPORT_INTERVAL`, else 60000. */
  readonly intervalMillis?: number;
  /** Give up on one collection + export after this many ms; default `OTEL_METRIC_EXPORT_TIMEOUT`, else 30000 (at most the interval). */
  readonly exportTimeoutMillis?: number;
  /** Most data points per OTLP request (larger pushes are split); default 5000. */
  readonly maxPointsPerRequest?: number;
  /** Bound on the final push at shutdown, ms; default 2000. */
  readonly shutdownTimeoutMillis?: number;
  /** Registry for the `meshtel_otlp_*` counters; default `registry`. */
  readonly metricsRegistry?: Registry;
  /** The exporter (tests); default the OTLP/HTTP protobuf exporter. */
  readonly exporter?: PushMetricExporter;
  readonly logger?: Logger;
}

/** A running push. */
export interface OtlpMetricsPush {
  /** Collect and push now (also what the interval does). */
  flush(): Promise<void>;
  /** Push one last time (bounded by `shutdownTimeoutMillis`) and stop. Never rejects. */
  shutdown(): Promise<void>;
}

function invalid(field: string, value: unknown, why: string): ConfigError {
  return new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field} ${why}, got ${quote(value)}`, { field, value });
}

function check(value: number | undefined, field: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < min || value > max) throw invalid(field, value, `must be an integer between ${min} and ${max}`);
  return value;
}

function unitOf(name: string): string {
  if (name.endsWith('_milliseconds')) return 'ms';
  if (name.endsWith('_bytes')) return 'By';
  return '';
}

/** What a series was first seen with: its start time and its attributes (parsed once). */
interface SeriesState {
  readonly start: HrTime;
  readonly attributes: Attributes;
}

/**
 * The producer: converts the recorder's families and the registry's own metrics into cumulative OTLP data at
 * every collection. A series' start time is the collection before the one that first saw it (it was created in
 * between), or the process start for the first collection; a series the TTL sweep removed and the traffic
 * brought back is a new object, so it gets a new start time and the reset is visible downstream.
 */
export function createMeshtelMetricProducer(options: Pick<OtlpMetricsPushOptions, 'families' | 'registry'>): MetricProducer {
  const seen = new WeakMap<Series, SeriesState>();
  // prom-client hands out new value objects at every get(): its series are keyed by name and labels.
  const promSeen = new Map<string, HrTime>();
  // The first collection's series may have counted since the process started: that is their lower bound.
  let previous: HrTime = millisToHrTime(performance.timeOrigin);

  const stateOf = (s: Series): SeriesState => {
    let st = seen.get(s);
    if (st === undefined) {
      st = { start: previous, attributes: parseLabelString(s.labels) };
      seen.set(s, st);
    }
    return st;
  };

  return {
    async collect(): Promise<CollectionResult> {
      const now = millisToHrTime(Date.now());
      const metrics: MetricData[] = [];
      const errors: unknown[] = [];
      for (const f of options.families()) {
        const all: Series[] = [...f.series.values()];
        if (f.overflowSeries !== undefined) all.push(f.overflowSeries);
        const descriptor = { name: f.name, description: f.help, unit: unitOf(f.name), valueType: ValueType.DOUBLE };
        if (f.type === 'histogram') {
          const native = all.length > 0 && all.every((s) => s instanceof HistogramSeries && s.native !== undefined);
          if (native) {
            metrics.push({
              descriptor,
              aggregationTemporality: AggregationTemporality.CUMULATIVE,
              dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM,
              dataPoints: all.map((s) => {
                const h = s as HistogramSeries;
                const n = readNativeHistogram(h)!;
                const st = stateOf(s);
                // Prometheus bucket k is (base^(k-1), base^k]; OTLP index i is (base^i, base^(i+1)]: i = k - 1.
                return {
                  startTime: st.start,
                  endTime: now,
                  attributes: st.attributes,
                  value: {
                    count: n.count,
                    sum: n.sum,
                    scale: n.schema,
                    zeroCount: n.zeroCount,
                    positive: { offset: n.positive.offset - 1, bucketCounts: [...n.positive.counts] },
                    negative: { offset: n.negative.offset - 1, bucketCounts: [...n.negative.counts] },
                  },
                };
              }),
            });
          } else {
            metrics.push({
              descriptor,
              aggregationTemporality: AggregationTemporality.CUMULATIVE,
              dataPointType: DataPointType.HISTOGRAM,
              dataPoints: all.map((s) => {
                const h = s as HistogramSeries;
                const st = stateOf(s);
                return {
                  startTime: st.start,
                  endTime: now,
                  attributes: st.attributes,
                  value: { buckets: { boundaries: [...f.buckets], counts: Array.from(h.counts) }, sum: h.sum, count: h.count },
                };
              }),
            });
          }
        } else {
          const dataPoints = all.map((s) => {
            const st = stateOf(s);
            return { startTime: st.start, endTime: now, attributes: st.attributes, value: (s as ScalarSeries).value };
          });
          if (f.type === 'counter') {
            metrics.push({ descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, dataPoints, isMonotonic: true });
          } else {
            metrics.push({ descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints });
          }
        }
      }
      if (options.registry !== undefined) {
        for (const metric of options.registry.getMetricsAsArray() as unknown as ({ name: string; get(): Promise<unknown> } & Record<symbol, unknown>)[]) {
          // The recorder's families are bridged into the registry too: already converted above.
          if (metric[MESHTEL_COLLECTOR] === true || !metric.name.startsWith('meshtel_')) continue;
          try {
            const m = (await metric.get()) as { name: string; help: string; type: string; values: { value: number; labels: Record<string, string | number> }[] };
            if (m.type !== 'counter' && m.type !== 'gauge') continue;
            const dataPoints = m.values.map((v) => {
              const attributes: Attributes = {};
              for (const [k, val] of Object.entries(v.labels)) attributes[k] = String(val);
              const key = `${m.name}{${JSON.stringify(attributes)}}`;
              let start = promSeen.get(key);
              if (start === undefined) promSeen.set(key, (start = previous));
              return { startTime: start, endTime: now, attributes, value: v.value };
            });
            const descriptor = { name: m.name, description: m.help, unit: unitOf(m.name), valueType: ValueType.DOUBLE };
            metrics.push(
              m.type === 'counter'
                ? { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, dataPoints, isMonotonic: true }
                : { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints },
            );
          } catch (err) {
            errors.push(err);
          }
        }
      }
      previous = now;
      // The reader replaces this resource with its MeterProvider's; only the scope metrics are taken.
      return { resourceMetrics: { resource: defaultResource(), scopeMetrics: [{ scope: { name: OTLP_SCOPE }, metrics }] }, errors };
    },
  };
}

function pointsOf(m: MetricData): number {
  return m.dataPoints.length;
}

/** Split `rm` into requests of at most `max` points (a metric larger than `max` is split across requests too). */
export function splitResourceMetrics(rm: ResourceMetrics, max: number): ResourceMetrics[] {
  const out: ResourceMetrics[] = [];
  let current: MetricData[] = [];
  let currentScope = rm.scopeMetrics[0]?.scope ?? { name: OTLP_SCOPE };
  let n = 0;
  const flush = (): void => {
    if (current.length > 0) out.push({ resource: rm.resource, scopeMetrics: [{ scope: currentScope, metrics: current }] });
    current = [];
    n = 0;
  };
  for (const sm of rm.scopeMetrics) {
    if (sm.scope !== currentScope) flush();
    currentScope = sm.scope;
    for (const m of sm.metrics) {
      let rest = m.dataPoints as unknown[];
      while (rest.length > 0) {
        if (n >= max) flush();
        const take = rest.slice(0, max - n);
        rest = rest.slice(take.length);
        current.push({ ...m, dataPoints: take } as MetricData);
        n += take.length;
      }
    }
  }
  flush();
  return out;
}

/** Counters of one push pipeline (shared on a registry, as the span counters). */
function counters(registry: Registry | undefined): { exported: Counter<string>; dropped: Counter<string>; exports: Counter<string> } {
  const get = (name: string, help: string, labelNames: string[]): Counter<string> => {
    const existing = registry?.getSingleMetric(name);
    if (existing instanceof Counter) return existing as Counter<string>;
    return new Counter({ name, help, labelNames, registers: registry ? [registry] : [] });
  };
  const c = {
    exported: get(METRIC_OTLP_POINTS_EXPORTED, 'Metric data points pushed over OTLP and acknowledged by the collector.', []),
    dropped: get(METRIC_OTLP_POINTS_DROPPED, 'Metric data points of OTLP pushes that failed or were abandoned at shutdown, by reason.', ['reason']),
    exports: get(METRIC_OTLP_EXPORTS, 'OTLP metric export requests, by result.', ['result']),
  };
  // Every series at 0 from the start, so an alert on failures has a series before the first failure.
  c.exported.inc(0);
  c.dropped.labels('export_failed').inc(0);
  c.dropped.labels('shutdown_timeout').inc(0);
  c.exports.labels('success').inc(0);
  c.exports.labels('failed').inc(0);
  return c;
}

/**
 * The exporter as the reader sees it: each collection split into requests of at most `maxPoints`, sent one after
 * another, each reporting back within `deadlineMs` (an exporter that never answers counts as failed), every
 * request and point counted. Cumulative data loses nothing for good when a push fails: the next one carries it.
 */
function countedExporter(inner: PushMetricExporter, maxPoints: number, deadlineMs: number, c: ReturnType<typeof counters>, logger: Logger): PushMetricExporter & { abandon(): number } {
  let inFlight = 0;
  // After the shutdown deadline, what was in flight is counted once as shutdown_timeout and late answers are ignored.
  let sealed = false;
  const one = (rm: ResourceMetrics): Promise<ExportResult> =>
    new Promise((resolve) => {
      settleWithin<ExportResult>(deadlineMs, (answer) => inner.export(rm, answer), (error) => ({ code: ExportResultCode.FAILED, error }), resolve, `OTLP metric export timed out after ${deadlineMs} ms`);
    });
  return {
    export(metrics, done) {
      void (async () => {
        let firstError: Error | undefined;
        for (const rm of splitResourceMetrics(metrics, maxPoints)) {
          const points = rm.scopeMetrics.reduce((a, sm) => a + sm.metrics.reduce((b, m) => b + pointsOf(m), 0), 0);
          inFlight += points;
          const r = await one(rm);
          inFlight -= points;
          if (sealed) continue;
          if (r.code === ExportResultCode.SUCCESS) {
            c.exports.labels('success').inc();
            c.exported.inc(points);
          } else {
            c.exports.labels('failed').inc();
            c.dropped.labels('export_failed').inc(points);
            firstError ??= r.error ?? new Error('OTLP metric export failed');
            logger.warnOnce('otlp-metrics-export', 'OTLP metric push failed', { err: r.error, metric: METRIC_OTLP_POINTS_DROPPED });
          }
        }
        done(firstError === undefined ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: firstError });
      })();
    },
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
    ...(inner.selectAggregationTemporality ? { selectAggregationTemporality: inner.selectAggregationTemporality.bind(inner) } : {}),
    abandon: () => {
      sealed = true;
      return inFlight;
    },
  };
}

/**
 * Start pushing. Throws `MESHTEL_ERR_INVALID_CONFIG` for bad options (or a non-protobuf
 * `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`); export failures never throw, they are counted and logged once.
 */
export function startOtlpMetricsPush(options: OtlpMetricsPushOptions): OtlpMetricsPush {
  const logger = (options.logger ?? silentLogger).child({ component: 'otlp-metrics' });
  // Read here because the reader does not read them itself (NodeSDK's env setup does, and meshtel builds its own reader).
  const intervalMillis = check(options.intervalMillis, 'intervalMillis', 100, 86_400_000) ?? getNumberFromEnv('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000;
  const exportTimeoutMillis = Math.min(
    check(options.exportTimeoutMillis, 'exportTimeoutMillis', 1, 86_400_000) ?? getNumberFromEnv('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000,
    intervalMillis,
  );
  const maxPoints = check(options.maxPointsPerRequest, 'maxPointsPerRequest', 1, 1_000_000) ?? 5000;
  const shutdownTimeoutMillis = check(options.shutdownTimeoutMillis, 'shutdownTimeoutMillis', 0, 600_000) ?? 2000;
  const specific = getStringFromEnv('OTEL_EXPORTER_OTLP_METRICS_PROTOCOL');
  const protocol = specific ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL');
  if (options.exporter === undefined && protocol !== undefined && protocol !== 'http/protobuf') {
    throw invalid(specific !== undefined ? 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL', protocol, 'must be http/protobuf (the only OTLP transport meshtel ships)');
  }
  let url: string | undefined;
  if (options.endpoint !== undefined) {
    let u: URL;
    try {
      u = new URL(options.endpoint);
    } catch {
      throw invalid('endpoint', options.endpoint, 'must be an absolute http(s) URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid('endpoint', options.endpoint, 'must be an absolute http(s) URL');
    url = u.pathname === '/' ? `${u.origin}/v1/metrics` : u.href;
  }
  const c = counters(options.metricsRegistry ?? options.registry);
  const inner = options.exporter ?? new OTLPMetricExporter(url !== undefined ? { url } : {});
  const exporter = countedExporter(inner, maxPoints, exportTimeoutMillis, c, logger);
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: intervalMillis,
    exportTimeoutMillis,
    metricProducers: [createMeshtelMetricProducer(options)],
  });
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': options.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new MeterProvider({ resource, readers: [reader] });
  logger.debug('OTLP metrics push started', { endpoint: url ?? '(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)', intervalMillis });
  let closed = false;
  return {
    flush: () => reader.forceFlush().catch((err: unknown) => diag.debug('meshtel OTLP metrics flush failed', err)),
    async shutdown() {
      if (closed) return;
      closed = true;
      let timer: NodeJS.Timeout | undefined;
      const done = provider.shutdown().then(
        () => true,
        (err: unknown) => {
          logger.warn('OTLP metrics push: final export failed', { err });
          return true;
        },
      );
      const inTime = await Promise.race([done, new Promise<false>((r) => (timer = setTimeout(() => r(false), shutdownTimeoutMillis)))]);
      clearTimeout(timer);
      if (!inTime) {
        const n = exporter.abandon();
        if (n > 0) c.dropped.labels('shutdown_timeout').inc(n);
        logger.warn('OTLP metrics push: final export timed out', { timeoutMs: shutdownTimeoutMillis, dropped: n });
      }
    },
  };
}

/**
 * Makes meshtel's families visible through a prom-client `Registry` (so `registry.metrics()` and
 * `registry.getMetricsAsJSON()` include them and users can merge with their app's registry), without
 * prom-client ever seeing the request path: each family is registered as a collector object whose
 * `get()` converts the plain-number series into prom-client's value shape at scrape time.
 *
 * This path costs what prom-client costs (one string per line, joined); for 10k+ label sets use the
 * streaming renderer in `exposition.ts`.
 */
import type { Registry, RegistryContentType } from 'prom-client';
import { ConfigError } from '../core/errors.js';
import { HistogramSeries, ScalarSeries, type Exemplar, type Family, type Series } from './series.js';
import { formatLe } from './definitions.js';
import { parseLabelString } from './exposition-parser.js';

/** prom-client's value entry (`MetricValue` / `MetricValueWithName`). */
interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
  /** Printed by prom-client in OpenMetrics registries only. */
  exemplar?: { labelSet: Record<string, string>; value: number; timestamp: number };
}

function exemplarOf(e: Exemplar | undefined): Pick<PromValue, 'exemplar'> {
  return e === undefined ? {} : { exemplar: { labelSet: { trace_id: e.traceId }, value: e.value, timestamp: e.timestamp } };
}

/** Marker on collectors created here, so the renderer can tell them from the app's metrics. */
export const MESHTEL_COLLECTOR = Symbol.for('meshtel.collector');

function values(f: Family): PromValue[] {
  const out: PromValue[] = [];
  const all: Series[] = [...f.series.values()];
  if (f.overflowSeries !== undefined) all.push(f.overflowSeries);
  for (const s of all) {
    const labels = parseLabelString(s.labels);
    if (s instanceof HistogramSeries) {
      let cum = 0;
      for (let i = 0; i < f.buckets.length; i++) {
        cum += s.counts[i] as number;
        out.push({ metricName: `${f.name}_bucket`, labels: { ...labels, le: formatLe(f.buckets[i] as number) }, value: cum, ...exemplarOf(s.exemplars?.[i]) });
      }
      out.push({ metricName: `${f.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: s.count, ...exemplarOf(s.exemplars?.[f.buckets.length]) });
      out.push({ metricName: `${f.name}_sum`, labels, value: s.sum });
      out.push({ metricName: `${f.name}_count`, labels, value: s.count });
    } else if (s instanceof ScalarSeries) {
      out.push({ labels, value: s.value, ...(f.type === 'counter' ? exemplarOf(s.exemplar) : {}) });
    }
  }
  return out;
}

/**
 * Register one collector per family in `registry`. A name already registered by something else is
 * `MESHTEL_ERR_METRIC_CONFLICT`. `reset(name)` is called by `registry.resetMetrics()`.
 */
export function createRegistryCollectors(
  registry: Registry<RegistryContentType>,
  families: () => readonly Family[],
  reset: (name: string) => void,
): void {
  for (const fam of families()) {
    const famName = fam.name;
    // prom-client renames counters in OpenMetrics mode by assigning `metric.name`; keep ours stable
    // (the getter ignores the write and `get()` reports the right name for the mode).
    let current = famName;
    const collector = {
      [MESHTEL_COLLECTOR]: true,
      get name(): string {
        return current;
      },
      set name(v: string) {
        current = v;
      },
      help: fam.help,
      type: fam.type,
      aggregator: 'sum' as const,
      labelNames: [] as string[],
      get: async () => {
        const f = families().find((x) => x.name === famName) ?? fam;
        return { name: current, help: fam.help, type: fam.type, aggregator: 'sum' as const, values: values(f) };
      },
      // registry.resetMetrics(): drop this family's series, as prom-client resets its own metrics.
      reset: () => reset(famName),
    };
    const existing = registry.getSingleMetric(famName);
    if (existing !== undefined) {
      throw new ConfigError('MESHTEL_ERR_METRIC_CONFLICT', `metric ${famName} is already registered in the prom-client registry`, {
        field: 'registry',
        value: famName,
      });
    }
    registry.registerMetric(collector as unknown as Parameters<Registry['registerMetric']>[0]);
  }
}

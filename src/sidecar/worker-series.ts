/**
 * How the workers of `meshtel sidecar --concurrency N` publish their series to the primary, which serves one page
 * with exact totals over all of them (issue 16).
 *
 * A worker answers each scrape with a {@link SeriesSnapshot}: the recorder's numbers packed in one Float64Array
 * (a series id, then its value, or its sum, count and per-bucket counts), copied from the plain-number series the
 * request path updates, with no text rendered or parsed on either side. A series' label string and its family's
 * name, help and buckets cross the channel once, the first time the series (the family) appears; later snapshots
 * carry its id only. IPC messages between a live worker and the primary arrive in order, so the primary applies
 * every snapshot it receives (a late one too) and the ids never go out of step. A series the worker no longer has
 * (TTL sweep) is absent from its next snapshot and the primary forgets it. The prom-client part of a worker's
 * registry (process metrics, meshtel_* refusal counters...: a few dozen series) is sent as prom-client's own
 * `get()` values and merged with prom-client's `AggregatorRegistry.aggregate`, which applies each metric's own
 * aggregator.
 *
 * Unlike prom-client's cluster mode (prometheus/client_js#628), no worker serialises the istio_* series to JSON
 * objects per scrape and the primary builds no prom-client metric per series: it adds numbers into Family objects
 * that the stats stage's renderer writes in whatever format the scraper negotiated (text, OpenMetrics, protobuf).
 * Not carried: exemplars and native histogram buckets (classic buckets, sums and counts are exact).
 */
import { AggregatorRegistry, Registry } from 'prom-client';
import type { MetricObjectWithValues, MetricValue, RegistryContentType } from 'prom-client';
import { MESHTEL_COLLECTOR, createRegistryCollectors } from '../stats/registry-bridge.js';
import { Family, HistogramSeries, ScalarSeries } from '../stats/series.js';
import type { Series } from '../stats/series.js';

/** A family as first announced by a worker: the fields of its {@link Family} a primary rebuilds it from. */
export type FamilyHead = Readonly<Pick<Family, 'name' | 'type' | 'help' | 'buckets' | 'emptyBraces'>>;

/** A series as first announced by a worker: its family (index into the worker's announced families) and labels. */
export interface SeriesHead {
  readonly family: number;
  readonly id: number;
  readonly labels: string;
  readonly overflow: boolean;
}

/** One worker's answer to a scrape. */
export interface SeriesSnapshot {
  /** Families announced for the first time, in order (their indexes continue the worker's earlier ones). */
  readonly families: readonly FamilyHead[];
  /** Series announced for the first time. */
  readonly series: readonly SeriesHead[];
  /** Every live series: id, then value (counter, gauge) or sum, count and the per-bucket counts (histogram). */
  readonly values: Float64Array;
  /** The worker registry's prom-client metrics (not meshtel's families), as their `get()` returns them. */
  readonly metrics: readonly MetricObjectWithValues<MetricValue<string>>[];
}

/**
 * In a worker: a function that snapshots `families()` (the recorder's, none with telemetry off) and the other
 * metrics of `registry`, remembering which families and series the primary has already been told about.
 */
export function createSeriesPublisher(families: (() => readonly Family[]) | undefined, registry: Registry): () => Promise<SeriesSnapshot> {
  const familyIds = new Map<Family, number>();
  // Keyed by the series object: a series the TTL sweep dropped and the recorder made again is a new series.
  const seriesIds = new WeakMap<Series, number>();
  let nextId = 1;
  return async () => {
    const fams = families?.() ?? [];
    const newFamilies: FamilyHead[] = [];
    const newSeries: SeriesHead[] = [];
    let length = 0;
    for (const f of fams) {
      const n = f.series.size + (f.overflowSeries !== undefined ? 1 : 0);
      length += n * (f.type === 'histogram' ? 4 + f.buckets.length : 2);
    }
    const values = new Float64Array(length);
    let o = 0;
    for (const f of fams) {
      let fi = familyIds.get(f);
      if (fi === undefined) {
        fi = familyIds.size;
        familyIds.set(f, fi);
        newFamilies.push({ name: f.name, type: f.type, help: f.help, buckets: [...f.buckets], emptyBraces: f.emptyBraces });
      }
      const put = (s: Series): void => {
        let id = seriesIds.get(s);
        if (id === undefined) {
          id = nextId++;
          seriesIds.set(s, id);
          newSeries.push({ family: fi, id, labels: s.labels, overflow: s.overflow });
        }
        values[o++] = id;
        if (s instanceof HistogramSeries) {
          values[o++] = s.sum;
          values[o++] = s.count;
          values.set(s.counts, o);
          o += s.counts.length;
        } else values[o++] = s.value;
      };
      for (const s of f.series.values()) put(s);
      if (f.overflowSeries !== undefined) put(f.overflowSeries);
    }
    const metrics: MetricObjectWithValues<MetricValue<string>>[] = [];
    for (const m of registry.getMetricsAsArray() as unknown as ({ get(): Promise<MetricObjectWithValues<MetricValue<string>>> } & Record<symbol, unknown>)[]) {
      if (m[MESHTEL_COLLECTOR] === true) continue;
      const got = await m.get();
      // prom-client omits start times from an aggregate (they differ per worker); the sidecar's is its first worker's.
      metrics.push(MERGE_MIN.test(got.name) ? { ...got, aggregator: 'min' } : got);
    }
    return { families: newFamilies, series: newSeries, values: values.subarray(0, o), metrics };
  };
}

/** Gauges that are one process's fact rather than a share of the total: merged by min or max, not summed. */
const MERGE_MIN = /_start_time_seconds$/;
const MERGE_MAX = /^(istio_build|meshtel_series_budget_limit_bytes)$/;

interface WorkerState {
  readonly families: FamilyHead[];
  readonly series: Map<number, SeriesHead>;
  values: Float64Array;
  metrics: readonly MetricObjectWithValues<MetricValue<string>>[];
}

/** The merged view of all workers, as one scrape renders it. */
export interface MergedSeries {
  /** The families summed over the workers, in the order they were first announced. */
  readonly families: readonly Family[];
  /** The workers' prom-client metrics aggregated, `own` merged in, and `families` visible through it (admin /stats). */
  readonly registry: Registry<RegistryContentType>;
}

/** In the primary: the latest snapshot of every worker, merged on demand. */
export interface SeriesMerger {
  /** Apply a worker's snapshot (in the order received). */
  apply(worker: number, snapshot: SeriesSnapshot): void;
  /** Forget a worker (it exited; a replacement starts from zero, as a restarted Envoy does). */
  drop(worker: number): void;
  /** Merge the latest snapshots, with the primary's own registry. */
  merge(own: Registry<RegistryContentType>): MergedSeries;
}

/** Create the primary's merger. */
export function createSeriesMerger(): SeriesMerger {
  const workers = new Map<number, WorkerState>();
  // One Family per name for the primary's lifetime; its series are rebuilt by each merge.
  const shells = new Map<string, Family>();
  const shellOf = (h: FamilyHead): Family => {
    let f = shells.get(h.name);
    if (f === undefined) {
      f = new Family(h.name, h.type, h.help, Number.MAX_SAFE_INTEGER, h.buckets);
      f.emptyBraces = h.emptyBraces;
      shells.set(h.name, f);
    }
    return f;
  };
  return {
    apply(worker, snapshot) {
      let w = workers.get(worker);
      if (w === undefined) {
        w = { families: [], series: new Map(), values: new Float64Array(0), metrics: [] };
        workers.set(worker, w);
      }
      w.families.push(...snapshot.families);
      for (const s of snapshot.series) w.series.set(s.id, s);
      // Series absent from this snapshot are gone in the worker: forget their labels.
      const live = new Set<number>();
      const v = snapshot.values;
      for (let o = 0; o < v.length; ) {
        const id = v[o] as number;
        const head = w.series.get(id);
        if (head === undefined) throw new Error(`worker ${worker} sent values for unannounced series ${id}`);
        live.add(id);
        const fam = w.families[head.family] as FamilyHead;
        o += fam.type === 'histogram' ? 4 + fam.buckets.length : 2;
      }
      if (live.size !== w.series.size) for (const id of w.series.keys()) if (!live.has(id)) w.series.delete(id);
      w.values = v;
      w.metrics = snapshot.metrics;
    },
    drop(worker) {
      workers.delete(worker);
    },
    merge(own) {
      for (const f of shells.values()) f.clear();
      const order: Family[] = [];
      const seen = new Set<Family>();
      for (const w of workers.values()) {
        for (const h of w.families) {
          const f = shellOf(h);
          if (!seen.has(f)) {
            seen.add(f);
            order.push(f);
          }
        }
        const v = w.values;
        for (let o = 0; o < v.length; ) {
          const head = w.series.get(v[o++] as number) as SeriesHead;
          const h = w.families[head.family] as FamilyHead;
          const f = shellOf(h);
          let s: Series | undefined = head.overflow ? f.overflowSeries : f.series.get(head.labels);
          const fresh = s === undefined;
          if (s === undefined) {
            s = h.type === 'histogram' ? new HistogramSeries(head.labels, h.buckets.length, 0, head.overflow) : new ScalarSeries(head.labels, 0, head.overflow);
            if (head.overflow) f.overflowSeries = s;
            else f.series.set(head.labels, s);
          }
          if (s instanceof HistogramSeries) {
            s.sum += v[o++] as number;
            s.count += v[o++] as number;
            for (let i = 0; i < s.counts.length; i++) s.counts[i] = (s.counts[i] as number) + (v[o++] as number);
          } else {
            const x = v[o++] as number;
            if (fresh) s.value = x;
            else if (h.type === 'gauge' && MERGE_MIN.test(h.name)) s.value = Math.min(s.value, x);
            else if (h.type === 'gauge' && MERGE_MAX.test(h.name)) s.value = Math.max(s.value, x);
            else s.value += x;
          }
        }
      }
      const aggregated = AggregatorRegistry.aggregate<RegistryContentType>([...workers.values()].map((w) => w.metrics));
      const registry = Registry.merge([aggregated as Registry, own as Registry]) as Registry<RegistryContentType>;
      createRegistryCollectors(registry, () => order, () => {});
      return { families: order, registry };
    },
  };
}

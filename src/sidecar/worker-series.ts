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
 * Native buckets travel in the same array (schema, zero count, then each sign's window) and the primary merges them
 * as one process would hold them (`NativeHistogram.merge`), so a protobuf page is exact too. Exemplars (a counter's,
 * each classic bucket's, a native histogram's bounded set) are strings: a worker sends one only when it changed
 * since its last snapshot; the primary keeps each worker's latest and shows, per counter or bucket, the most recent
 * over the workers, and per native histogram the set client_golang's rule keeps from all the workers' sets fed
 * oldest first (one process would have kept a set from the same candidates, in arrival order).
 */
import { AggregatorRegistry, Registry } from 'prom-client';
import type { MetricObjectWithValues, MetricValue, RegistryContentType } from 'prom-client';
import { MESHTEL_COLLECTOR, createRegistryCollectors } from '../stats/registry-bridge.js';
import { Family, HistogramSeries, ScalarSeries } from '../stats/series.js';
import type { Exemplar, Series } from '../stats/series.js';
import { NativeHistogramConfig, type NativeHistogramOptions } from '../stats/native-histogram.js';

/** A family as first announced by a worker: the fields of its {@link Family} a primary rebuilds it from, and its
 * native-histogram settings when its series carry native buckets. */
export type FamilyHead = Readonly<Pick<Family, 'name' | 'type' | 'help' | 'buckets' | 'emptyBraces'>> & {
  readonly native?: NativeHistogramOptions;
};

/** Where an exemplar update belongs: a classic bucket slot (0..buckets), a counter, or a native histogram's set. */
export const EXEMPLAR_COUNTER = -1;
export const EXEMPLAR_NATIVE = -2;

/** An exemplar that changed since the worker's previous snapshot: for a slot, the exemplar; for native, the whole set. */
export interface ExemplarUpdate {
  readonly id: number;
  readonly slot: number;
  readonly exemplars: readonly Exemplar[];
}

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
  /**
   * Every live series: id, then value (counter, gauge) or sum, count and the per-bucket counts (histogram), then
   * for a family with native buckets: schema, zero count, positive window start and length, negative window start
   * and length, the positive counts, the negative counts.
   */
  readonly values: Float64Array;
  /** Exemplars that changed since the previous snapshot. */
  readonly exemplars: readonly ExemplarUpdate[];
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
  // What each series' exemplars were at the last snapshot (compared by identity: the recorder replaces, never edits).
  const sent = new WeakMap<Series, (Exemplar | undefined)[]>();
  let nextId = 1;
  return async () => {
    const fams = families?.() ?? [];
    const newFamilies: FamilyHead[] = [];
    const newSeries: SeriesHead[] = [];
    const exemplars: ExemplarUpdate[] = [];
    let length = 0;
    for (const f of fams) {
      const n = f.series.size + (f.overflowSeries !== undefined ? 1 : 0);
      length += n * (f.type === 'histogram' ? 4 + f.buckets.length : 2);
      if (f.native !== undefined) {
        length += n * NATIVE_FIXED;
        for (const s of f.series.values()) length += nativeLength(s);
        if (f.overflowSeries !== undefined) length += nativeLength(f.overflowSeries);
      }
    }
    const values = new Float64Array(length);
    let o = 0;
    for (const f of fams) {
      let fi = familyIds.get(f);
      if (fi === undefined) {
        fi = familyIds.size;
        familyIds.set(f, fi);
        const c = f.native;
        const native = c === undefined ? {} : { native: c.options() };
        newFamilies.push({ name: f.name, type: f.type, help: f.help, buckets: [...f.buckets], emptyBraces: f.emptyBraces, ...native });
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
          const n = s.native;
          if (n !== undefined) {
            values[o++] = n.schema;
            values[o++] = n.zeroCount;
            values[o++] = n.posLo;
            values[o++] = n.pos.length;
            values[o++] = n.negLo;
            values[o++] = n.neg.length;
            values.set(n.pos, o);
            o += n.pos.length;
            values.set(n.neg, o);
            o += n.neg.length;
          }
        } else values[o++] = s.value;
        changedExemplars(s, id, sent, exemplars);
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
    return { families: newFamilies, series: newSeries, values: values.subarray(0, o), exemplars, metrics };
  };
}

/** Numbers of a native part before its windows: schema, zero count, two window starts and lengths. */
const NATIVE_FIXED = 6;

function nativeLength(s: Series): number {
  return s instanceof HistogramSeries && s.native !== undefined ? s.native.pos.length + s.native.neg.length : 0;
}

/**
 * Push the exemplars of `s` that differ from the last snapshot's. `last` holds, per series, the counter's exemplar
 * (index 0) or each classic slot's, then the native set's members after a marker of their count.
 */
function changedExemplars(s: Series, id: number, sent: WeakMap<Series, (Exemplar | undefined)[]>, out: ExemplarUpdate[]): void {
  if (s instanceof ScalarSeries) {
    if (s.exemplar === undefined) return;
    const last = sent.get(s);
    if (last?.[0] === s.exemplar) return;
    sent.set(s, [s.exemplar]);
    out.push({ id, slot: EXEMPLAR_COUNTER, exemplars: [s.exemplar] });
    return;
  }
  const classic = s.exemplars;
  const native = s.native?.exemplars;
  if (classic === undefined && native === undefined) return;
  let last = sent.get(s);
  if (last === undefined) {
    last = new Array<Exemplar | undefined>(s.counts.length).fill(undefined);
    sent.set(s, last);
  }
  const slots = classic?.length ?? 0;
  for (let i = 0; i < slots; i++) {
    const e = classic?.[i];
    if (e !== undefined && last[i] !== e) {
      last[i] = e;
      out.push({ id, slot: i, exemplars: [e] });
    }
  }
  if (native === undefined) return;
  // The native set after the classic slots (their count is fixed per family, so the offset is too).
  const base = s.counts.length;
  let same = last.length === base + native.length;
  for (let i = 0; same && i < native.length; i++) same = last[base + i] === native[i];
  if (same) return;
  last.length = base;
  last.push(...native);
  out.push({ id, slot: EXEMPLAR_NATIVE, exemplars: [...native] });
}

/** How many numbers a series takes in `values` from `o` (its id): fixed per family, plus the native windows. */
function stride(h: FamilyHead, v: Float64Array, o: number): number {
  if (h.type !== 'histogram') return 2;
  const fixed = 4 + h.buckets.length;
  if (h.native === undefined) return fixed;
  return fixed + NATIVE_FIXED + (v[o + fixed + 3] as number) + (v[o + fixed + 5] as number);
}

/** The more recent of two exemplars (the first when they tie). */
function later(a: Exemplar | undefined, b: Exemplar): Exemplar {
  return a === undefined || b.timestamp > a.timestamp ? b : a;
}

/** Gauges that are one process's fact rather than a share of the total: merged by min or max, not summed. */
const MERGE_MIN = /_start_time_seconds$/;
const MERGE_MAX = /^(istio_build|meshtel_series_budget_limit_bytes)$/;

/** A worker's latest exemplars of one series. */
interface SeriesExemplars {
  /** The counter's (index 0) or each classic bucket slot's. */
  readonly slots: (Exemplar | undefined)[];
  native: readonly Exemplar[];
}

interface WorkerState {
  readonly families: FamilyHead[];
  readonly series: Map<number, SeriesHead>;
  readonly exemplars: Map<number, SeriesExemplars>;
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
      // The workers validated these settings (each runs the same configuration).
      if (h.native !== undefined) f.native = new NativeHistogramConfig(h.native);
      shells.set(h.name, f);
    }
    return f;
  };
  const candidates = new Map<HistogramSeries, Exemplar[]>();
  return {
    apply(worker, snapshot) {
      let w = workers.get(worker);
      if (w === undefined) {
        w = { families: [], series: new Map(), exemplars: new Map(), values: new Float64Array(0), metrics: [] };
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
        o += stride(w.families[head.family] as FamilyHead, v, o);
      }
      if (live.size !== w.series.size) {
        for (const id of w.series.keys()) {
          if (!live.has(id)) {
            w.series.delete(id);
            w.exemplars.delete(id);
          }
        }
      }
      for (const u of snapshot.exemplars) {
        if (!w.series.has(u.id)) continue;
        let x = w.exemplars.get(u.id);
        if (x === undefined) {
          x = { slots: [], native: [] };
          w.exemplars.set(u.id, x);
        }
        if (u.slot === EXEMPLAR_NATIVE) x.native = u.exemplars;
        else x.slots[u.slot === EXEMPLAR_COUNTER ? 0 : u.slot] = u.exemplars[0];
      }
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
          const id = v[o++] as number;
          const head = w.series.get(id) as SeriesHead;
          const h = w.families[head.family] as FamilyHead;
          const f = shellOf(h);
          let s: Series | undefined = head.overflow ? f.overflowSeries : f.series.get(head.labels);
          const fresh = s === undefined;
          if (s === undefined) {
            s = h.type === 'histogram' ? new HistogramSeries(head.labels, h.buckets.length, 0, head.overflow, f.native, f) : new ScalarSeries(head.labels, 0, head.overflow);
            if (head.overflow) f.overflowSeries = s;
            else f.series.set(head.labels, s);
          }
          const ex = w.exemplars.get(id);
          if (s instanceof HistogramSeries) {
            s.sum += v[o++] as number;
            s.count += v[o++] as number;
            for (let i = 0; i < s.counts.length; i++) s.counts[i] = (s.counts[i] as number) + (v[o++] as number);
            if (h.native !== undefined) {
              const schema = v[o++] as number;
              const zero = v[o++] as number;
              const posLo = v[o++] as number;
              const posLen = v[o++] as number;
              const negLo = v[o++] as number;
              const negLen = v[o++] as number;
              const pos = v.subarray(o, o + posLen);
              const neg = v.subarray(o + posLen, o + posLen + negLen);
              o += posLen + negLen;
              s.native?.merge(schema, zero, posLo, pos, negLo, neg);
            }
            if (ex !== undefined) {
              for (let i = 0; i < ex.slots.length; i++) {
                const e = ex.slots[i];
                if (e === undefined) continue;
                s.exemplars ??= new Array<undefined>(s.counts.length);
                s.exemplars[i] = later(s.exemplars[i], e);
              }
              if (ex.native.length > 0 && s.native !== undefined) {
                let c = candidates.get(s);
                if (c === undefined) candidates.set(s, (c = []));
                c.push(...ex.native);
              }
            }
          } else {
            const x = v[o++] as number;
            if (fresh) s.value = x;
            else if (h.type === 'gauge' && MERGE_MIN.test(h.name)) s.value = Math.min(s.value, x);
            else if (h.type === 'gauge' && MERGE_MAX.test(h.name)) s.value = Math.max(s.value, x);
            else s.value += x;
            const e = ex?.slots[0];
            if (e !== undefined) s.exemplar = later(s.exemplar, e);
          }
        }
      }
      // Each native histogram's set, from every worker's candidates, oldest first.
      for (const [s, c] of candidates) {
        c.sort((a, b) => a.timestamp - b.timestamp);
        for (const e of c) s.native?.addExemplar(e);
      }
      candidates.clear();
      const aggregated = AggregatorRegistry.aggregate<RegistryContentType>([...workers.values()].map((w) => w.metrics));
      const registry = Registry.merge([aggregated as Registry, own as Registry]) as Registry<RegistryContentType>;
      createRegistryCollectors(registry, () => order, () => {});
      return { families: order, registry };
    },
  };
}

/**
 * The storage behind every metric meshtel renders: plain objects with numbers, one per label set,
 * keyed by the rendered label string. The request path reaches a series through a cached reference
 * (see `series-cache.ts`) and only adds numbers; this module never hashes labels per call.
 *
 * Written by hand instead of prom-client's Counter/Histogram because prom-client hashes every label
 * set on every `inc()/observe()` (~6 µs with Istio's 25 labels, perf-anchors §3a).
 */

import { ConfigError } from '../core/errors.js';
import { MIN_SCHEMA, NO_EXPONENT, NativeHistogram, PACKED_SLOT_BITS, SMALL_VALUES, classicOctaves, classicSlot, type NativeHistogramConfig, type PackedTables } from './native-histogram.js';
import { protobufSeriesBound, protobufSeriesBytes, seriesCostShape, type SeriesBudget, type SeriesCostShape } from './series-budget.js';
import type { MetricType } from './definitions.js';

/** An exemplar: the trace id of one sampled observation (OpenMetrics only). */
export interface Exemplar {
  readonly traceId: string;
  readonly value: number;
  /** Seconds since the epoch, OpenMetrics timestamp. */
  readonly timestamp: number;
}

/** A counter or gauge value for one label set. */
export class ScalarSeries {
  /** Rendered labels without braces (`reporter="source",...`), escaped; `''` for none. */
  readonly labels: string;
  value = 0;
  /** TTL bookkeeping: the sweep epoch of the last update. */
  epoch = 0;
  /** True for the overflow series of a full metric. */
  readonly overflow: boolean;
  exemplar: Exemplar | undefined = undefined;
  /** Bytes this series holds in its family's {@link SeriesBudget}; 0 when unbudgeted. */
  charge = 0;
  /** True when the label set came from a plain-text peer (charged to the plain-text share). */
  plainText = false;
  /** The label pairs as protobuf (Metric field 1), encoded at the first protobuf scrape (protobuf-writer.ts). */
  pbLabels: Uint8Array | undefined = undefined;
  constructor(labels: string, epoch: number, overflow = false) {
    this.labels = labels;
    this.epoch = epoch;
    this.overflow = overflow;
  }
}

const NO_COUNTS = new Float64Array(0);

/** A histogram for one label set: per-bucket (non-cumulative) counts, sum and count. */
export class HistogramSeries {
  readonly labels: string;
  /** counts[i] = observations in (bound[i-1], bound[i]]; the last slot is (bound[n-1], +Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  epoch = 0;
  readonly overflow: boolean;
  /** Exemplar per bucket slot, allocated on the first exemplar. */
  exemplars: (Exemplar | undefined)[] | undefined = undefined;
  /** Native (sparse exponential) buckets of the same observations, when the family has them. */
  readonly native: NativeHistogram | undefined;
  /** The native part's key table, positive window and its first key, mirrored here for {@link observe} (SmallPath). */
  nKeys: Int32Array | undefined = undefined;
  nPos: Float64Array = NO_COUNTS;
  nPosLo = 0;
  /** Bytes this series holds in its family's {@link SeriesBudget}; 0 when unbudgeted. */
  charge = 0;
  /** True when the label set came from a plain-text peer (charged to the plain-text share). */
  plainText = false;
  /** The label pairs as protobuf (Metric field 1), encoded at the first protobuf scrape (protobuf-writer.ts). */
  pbLabels: Uint8Array | undefined = undefined;
  /** `packed` (the family) is required with `native`: the record path counts native buckets through its tables. */
  constructor(labels: string, buckets: number, epoch: number, overflow = false, native?: NativeHistogramConfig, packed?: PackedTables) {
    this.labels = labels;
    this.counts = new Float64Array(buckets + 1);
    this.epoch = epoch;
    this.overflow = overflow;
    this.native = native === undefined ? undefined : new NativeHistogram(native);
    if (this.native !== undefined && packed !== undefined) this.native.attach(this, packed);
  }
}

/** A series of either kind. */
export type Series = ScalarSeries | HistogramSeries;

/** The label set of the overflow series (documented in docs: one series per metric). */
export const OVERFLOW_LABELS = 'meshtel_overflow="true"';

/** Mask of the classic slot in a packed small-value entry. */
const SLOT_MASK = (1 << PACKED_SLOT_BITS) - 1;

/** One metric family: its series map, cap and overflow series. */
export class Family implements PackedTables {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** Histogram upper bounds (no +Inf). */
  readonly buckets: readonly number[];
  /** Bounds as a typed array for the bucket search. */
  readonly bounds: Float64Array;
  /**
   * Bucket index of every small integer value (0..SMALL_VALUES-1). Durations are whole ms and sizes
   * whole bytes, so most observations resolve with one array read instead of a scan over 19 bounds
   * (the scan was the largest cost of recordHttp in a CPU profile).
   */
  readonly smallIndex: Uint16Array;
  /** First bound of each binary octave, for series with native buckets (see `classicOctaves`). */
  readonly octaves: Uint16Array;
  /** Series by rendered label string. */
  readonly series = new Map<string, Series>();
  /** Maximum number of series; further label sets share {@link overflowSeries}. */
  readonly cap: number;
  overflowSeries: Series | undefined = undefined;
  /** Print `{}` for an empty label set, as Envoy does for custom metrics (`istio_get_calls{} 22`). */
  emptyBraces = false;
  /** Observations routed to the overflow series. */
  overflowCount = 0;
  /** Native-histogram configuration; series created while it is set carry native buckets too. */
  get native(): NativeHistogramConfig | undefined {
    return this.nativeConfig;
  }

  /**
   * Set at configuration time. Throws `MESHTEL_ERR_INVALID_BUCKETS` when a whole number below 8192 has a classic
   * slot the packed tables cannot hold (more than 2047 bounds below 8192).
   */
  set native(c: NativeHistogramConfig | undefined) {
    const top = this.smallIndex.length === 0 ? 0 : (this.smallIndex[SMALL_VALUES - 1] as number);
    if (c !== undefined && top > SLOT_MASK) {
      throw new ConfigError('MESHTEL_ERR_INVALID_BUCKETS', `buckets for ${this.name} with native histograms must have at most ${SLOT_MASK} bounds below ${SMALL_VALUES}, got ${top}`, {
        field: `buckets.${this.name}`,
        value: top,
      });
    }
    this.nativeConfig = c;
    this.packed.length = 0;
  }

  private nativeConfig: NativeHistogramConfig | undefined = undefined;
  /** Packed small-value tables by schema − MIN_SCHEMA, built when a series of the family first reaches that schema. */
  private readonly packed: (Int32Array | undefined)[] = [];

  /**
   * The packed table at `schema`: per whole number below 8192 its native key (the configuration's table) shifted
   * left by PACKED_SLOT_BITS, or'ed with its classic slot, so the record path reads both with one load.
   */
  packedAt(schema: number): Int32Array {
    let t = this.packed[schema - MIN_SCHEMA];
    if (t === undefined) {
      const keys = (this.nativeConfig as NativeHistogramConfig).smallKeysAt(schema);
      t = new Int32Array(SMALL_VALUES);
      for (let v = 0; v < SMALL_VALUES; v++) t[v] = ((keys[v] as number) << PACKED_SLOT_BITS) | (this.smallIndex.length === 0 ? 0 : (this.smallIndex[v] as number));
      this.packed[schema - MIN_SCHEMA] = t;
    }
    return t;
  }
  /** Series removed by the TTL sweep. */
  expiredCount = 0;
  /**
   * The page's byte budget this family's series are admitted against (istio_* and custom metrics);
   * undefined for self metrics, whose series count is fixed by their cap.
   */
  budget: SeriesBudget | undefined = undefined;
  /** Series of plain-text peers allowed in this family (a share of {@link cap}). */
  plainTextCap: number;
  /** Live series of plain-text peers. */
  plainTextCount = 0;
  /** Longest rendered form of a series of this family: `fixed + repeats × label bytes`. */
  readonly costShape: SeriesCostShape;

  constructor(name: string, type: MetricType, help: string, cap: number, buckets: readonly number[] = []) {
    this.name = name;
    this.type = type;
    this.help = help;
    this.cap = cap;
    this.plainTextCap = cap;
    this.costShape = seriesCostShape(name, type, buckets);
    this.buckets = buckets;
    this.bounds = Float64Array.from(buckets);
    this.octaves = buckets.length === 0 ? new Uint16Array(0) : classicOctaves(this.bounds);
    this.smallIndex = new Uint16Array(buckets.length === 0 ? 0 : SMALL_VALUES);
    for (let v = 0, i = 0; v < this.smallIndex.length; v++) {
      while (i < buckets.length && v > (buckets[i] as number)) i++;
      this.smallIndex[v] = i;
    }
  }

  /**
   * The series for `labels`, created when new; the overflow series when the family is full, or when
   * the page budget (or, for `plainText` label sets, the plain-text share) cannot take the new series.
   * Called when a label group is built, never per request on the cached path.
   */
  get(labels: string, epoch: number, plainText = false): Series {
    const s = this.series.get(labels);
    if (s !== undefined) return s;
    if (this.series.size >= this.cap) return this.overflow(epoch);
    let charge = 0;
    if (this.budget !== undefined) {
      if (plainText && this.plainTextCount >= this.plainTextCap) {
        this.budget.plainTextRefused++;
        return this.overflow(epoch);
      }
      // The longest of the text and the protobuf forms (series-budget.ts).
      const labelBytes = Buffer.byteLength(labels);
      charge = this.costShape.fixed + this.costShape.repeats * labelBytes;
      if (charge < protobufSeriesBound(this.type, this.buckets.length, labelBytes, this.native)) {
        charge = Math.max(charge, protobufSeriesBytes(this.type, this.buckets.length, labels, this.native));
      }
      if (!this.budget.admit(charge, plainText)) return this.overflow(epoch);
    }
    const key = flatten(labels);
    const created = this.create(key, epoch, false);
    if (charge > 0) {
      created.charge = charge;
      created.plainText = plainText;
      if (plainText) this.plainTextCount++;
    }
    this.series.set(key, created);
    return created;
  }

  private overflow(epoch: number): Series {
    this.overflowSeries ??= this.create(OVERFLOW_LABELS, epoch, true);
    return this.overflowSeries;
  }

  /** Remove one series, giving back its budget. */
  private drop(key: string, s: Series): void {
    this.series.delete(key);
    if (s.charge > 0) {
      this.budget?.release(s.charge, s.plainText);
      if (s.plainText) this.plainTextCount--;
    }
  }

  /** Remove every series (prom-client `resetMetrics()`), giving back their budget. */
  clear(): void {
    for (const [k, s] of this.series) this.drop(k, s);
    this.overflowSeries = undefined;
  }

  private create(labels: string, epoch: number, overflow: boolean): Series {
    return this.type === 'histogram'
      ? new HistogramSeries(labels, this.buckets.length, epoch, overflow, this.nativeConfig, this)
      : new ScalarSeries(labels, epoch, overflow);
  }

  /** Remove series last updated before `minEpoch`; returns how many went. */
  expire(minEpoch: number): number {
    let n = 0;
    for (const [k, s] of this.series) {
      if (s.epoch < minEpoch) {
        this.drop(k, s);
        n++;
      }
    }
    if (this.overflowSeries !== undefined && this.overflowSeries.epoch < minEpoch) {
      this.overflowSeries = undefined;
      n++;
    }
    this.expiredCount += n;
    return n;
  }
}

/**
 * Flatten a string built by concatenation. V8 keeps `a + b + …` as a rope of cons cells (≈32 bytes
 * per piece); a label string of 25 labels is ~75 pieces. ToNumber flattens it in place (the
 * `flatstr` trick), so a stored label set costs its characters, not its concatenation history.
 */
function flatten(s: string): string {
  Number(s);
  return s;
}

/**
 * Add one observation to a histogram series; returns the bucket slot. Small integers use the
 * family's lookup table, other values a binary search (first bound >= value, Prometheus `le`).
 * A series with native buckets shares the work: the small-integer check (its key is one more table
 * read), and for other positive values the binary exponent its native key needs, which narrows the
 * classic search to the value's octave.
 */
export function observe(s: HistogramSeries, f: Family, value: number): number {
  let i: number;
  if (value >= 0 && value < SMALL_VALUES && (value | 0) === value) {
    // With native buckets, one read of the family's packed table gives the native key and the classic slot, and
    // the series' own mirror of the positive window is counted (no hop through s.native).
    const keys = s.nKeys;
    if (keys === undefined) i = f.smallIndex[value] as number;
    else {
      const e = keys[value] as number;
      i = e & SLOT_MASK;
      const key = e >> PACKED_SLOT_BITS;
      const c = s.nPos;
      // One unsigned compare: a key below the window wraps to a huge index.
      const j = (key - s.nPosLo) >>> 0;
      if (j < c.length) {
        const n = c[j] as number;
        c[j] = n + 1;
        if (n === 0) (s.native as NativeHistogram).newBucket();
      } else (s.native as NativeHistogram).smallMiss(key);
    }
  } else {
    const native = s.native;
    // A native key needs the value's binary exponent; the classic search then starts at that octave.
    const exp = native !== undefined ? native.observeOther(value) : NO_EXPONENT;
    if (exp !== NO_EXPONENT) i = classicSlot(f.bounds, f.octaves, value, exp);
    else {
      const bounds = f.bounds;
      let lo = 0;
      let hi = bounds.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (value > (bounds[mid] as number)) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
  }
  s.counts[i] = (s.counts[i] as number) + 1;
  s.sum += value;
  s.count += 1;
  return i;
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** Escape a label value for the Prometheus text and OpenMetrics formats: `\`, `"` and newline. */
export function escapeLabelValue(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Sanitise a tag name the way Envoy does for Prometheus (`[^a-zA-Z0-9_]` → `_`). */
export function sanitizeLabelName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/**
 * Prometheus native (sparse, exponential) histograms for the recorder's three histograms, kept beside
 * the classic buckets of the same series.
 *
 * Buckets follow Prometheus's exponential schemas (prometheus/client_golang `prometheus/histogram.go`,
 * `model/histogram` in prometheus/prometheus): with schema `s` the base is `2^(2^-s)` and bucket `k` holds
 * the observations in `(base^(k-1), base^k]`; observations with `|v| <= zeroThreshold` go to the zero
 * bucket. When a series has more populated buckets than `maxBuckets`, its resolution is halved (schema - 1,
 * merging bucket pairs `2j-1, 2j` into `j`) until it fits, as client_golang does for
 * `NativeHistogramMaxBucketNumber` (meshtel has no reset or zero-bucket widening strategy: halving alone
 * bounds memory, and a reset would lose counts a scrape has not seen yet).
 *
 * Record path: a whole-number observation below 8192 (durations are whole ms, sizes whole bytes) finds its
 * bucket key with one table read; others use the exponent bits of the float (frexp) and, for positive
 * schemas, a binary search over 2^s precomputed bounds, as client_golang does. Counts live in a dense
 * Float64Array window over the populated key range (grown when an observation falls outside it), so an
 * observation is a few number operations and no allocation.
 */
import { ConfigError, quote } from '../core/errors.js';

/** Options of the native histograms (`IstioStatsOptions.nativeHistograms`). */
export interface NativeHistogramOptions {
  /**
   * Resolution: schema `s` (−4..8) gives buckets growing by `2^(2^-s)`. Default 3 (factor 1.0905), the
   * schema client_golang picks for its customary `NativeHistogramBucketFactor: 1.1`: at most ~4.4% relative
   * error for a quantile, against up to 50% within Envoy's classic 1-2-5 buckets.
   */
  readonly schema?: number;
  /**
   * Observations with `|v| <= zeroThreshold` are counted in the zero bucket. Default 2^-128 (client_golang's
   * `DefNativeHistogramZeroThreshold`); the recorder's values are whole ms and bytes, so 0 is the only value
   * it ever holds.
   */
  readonly zeroThreshold?: number;
  /**
   * Most populated buckets per series before the resolution is halved; 0 = unbounded. Default 160
   * (milliseconds from 1 to 10^6 at schema 3 need 160).
   */
  readonly maxBuckets?: number;
}

/** Default schema, see {@link NativeHistogramOptions.schema}. */
export const DEFAULT_NATIVE_SCHEMA = 3;
/** Default zero threshold (client_golang `DefNativeHistogramZeroThreshold`). */
export const DEFAULT_NATIVE_ZERO_THRESHOLD = 2 ** -128;
/** Default bucket bound per series. */
export const DEFAULT_NATIVE_MAX_BUCKETS = 160;
/** Lowest and highest schema Prometheus accepts. */
const MIN_SCHEMA = -4;
const MAX_SCHEMA = 8;
/** Whole numbers below this find their key through the table. */
const SMALL_VALUES = 8192;
/** Key of the zero bucket in the small-value table (no real key is this small). */
const ZERO_KEY = -0x7fffffff;

/** Bucket boundaries within [0.5, 1) per positive schema: `bounds[j] = 2^(j/2^s) / 2`. */
const FRAC_BOUNDS: Float64Array[] = [];
for (let s = 0; s <= MAX_SCHEMA; s++) {
  const n = 1 << s;
  const b = new Float64Array(n);
  for (let j = 0; j < n; j++) b[j] = j === 0 ? 0.5 : 2 ** (j / n) / 2;
  FRAC_BOUNDS.push(b);
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** Little-endian hosts (every Node platform) keep the exponent in the high word. */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * The bucket key of a positive finite `v` at `schema` (client_golang `findBucket`: `frexp`, then a
 * search of the fraction among the schema's bounds, or a shift of the exponent for schemas <= 0).
 */
export function bucketKey(v: number, schema: number): number {
  // frexp: v = frac * 2^exp with frac in [0.5, 1).
  F64[0] = v;
  let e = (U32[HI] as number) >>> 20 & 0x7ff;
  let shift = 0;
  if (e === 0) {
    // Subnormal: scale into the normal range first.
    F64[0] = v * 2 ** 64;
    e = (U32[HI] as number) >>> 20 & 0x7ff;
    shift = 64;
  }
  const exp = e - 1022 - shift;
  U32[HI] = ((U32[HI] as number) & 0x800fffff) | (1022 << 20);
  const frac = F64[0] as number;
  if (schema > 0) {
    const bounds = FRAC_BOUNDS[schema] as Float64Array;
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((bounds[mid] as number) < frac) lo = mid + 1;
      else hi = mid;
    }
    return lo + (exp - 1) * bounds.length;
  }
  let key = frac === 0.5 ? exp - 1 : exp;
  const offset = (1 << -schema) - 1;
  key = (key + offset) >> -schema;
  return key;
}

/** Validated configuration of one family's native histograms, with its small-value key table. */
export class NativeHistogramConfig {
  readonly schema: number;
  readonly zeroThreshold: number;
  readonly maxBuckets: number;
  /** Key at `schema` of every whole number 0..8191 ({@link ZERO_KEY} for the zero bucket). */
  readonly smallKeys: Int32Array;

  constructor(o: NativeHistogramOptions = {}, field = 'nativeHistograms') {
    if (o === null || typeof o !== 'object') {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field} must be true, false or { schema, zeroThreshold, maxBuckets }, got ${quote(o)}`, { field, value: o });
    }
    const schema = o.schema ?? DEFAULT_NATIVE_SCHEMA;
    if (!Number.isInteger(schema) || schema < MIN_SCHEMA || schema > MAX_SCHEMA) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field}.schema must be an integer from -4 to 8, got ${quote(schema)}`, { field: `${field}.schema`, value: schema });
    }
    const zt = o.zeroThreshold ?? DEFAULT_NATIVE_ZERO_THRESHOLD;
    if (typeof zt !== 'number' || !Number.isFinite(zt) || zt < 0) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field}.zeroThreshold must be a finite number >= 0, got ${quote(zt)}`, { field: `${field}.zeroThreshold`, value: zt });
    }
    const max = o.maxBuckets ?? DEFAULT_NATIVE_MAX_BUCKETS;
    if (!Number.isInteger(max) || max < 0 || max > 100_000) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field}.maxBuckets must be an integer from 0 to 100000, got ${quote(max)}`, { field: `${field}.maxBuckets`, value: max });
    }
    this.schema = schema;
    this.zeroThreshold = zt;
    this.maxBuckets = max;
    this.smallKeys = new Int32Array(SMALL_VALUES);
    for (let v = 0; v < SMALL_VALUES; v++) this.smallKeys[v] = v <= zt ? ZERO_KEY : bucketKey(v, schema);
  }
}

/** Counts of one sign: a dense window over keys `lo .. lo + counts.length - 1`. */
class BucketWindow {
  lo = 0;
  counts: Float64Array = new Float64Array(0);
  /** Buckets with a non-zero count. */
  populated = 0;

  add(key: number): void {
    let i = key - this.lo;
    if (i < 0 || i >= this.counts.length) {
      this.grow(key);
      i = key - this.lo;
    }
    const c = this.counts[i] as number;
    if (c === 0) this.populated++;
    this.counts[i] = c + 1;
  }

  private grow(key: number): void {
    const old = this.counts;
    if (old.length === 0) {
      this.counts = new Float64Array(8);
      this.lo = key - 4;
      return;
    }
    const lo = Math.min(this.lo, key);
    const hi = Math.max(this.lo + old.length - 1, key);
    // Leave slack on the side that grew, so a drifting distribution does not reallocate per observation.
    const span = hi - lo + 1;
    const slack = Math.max(4, span >> 1);
    const newLo = key < this.lo ? lo - slack : lo;
    const next = new Float64Array(span + slack);
    next.set(old, this.lo - newLo);
    this.counts = next;
    this.lo = newLo;
  }

  /** Merge bucket pairs: key k becomes ceil(k / 2) (one schema lower). */
  halve(): void {
    const old = this.counts;
    if (old.length === 0) return;
    const lo = ((this.lo - 1) >> 1) + 1;
    const hi = ((this.lo + old.length - 2) >> 1) + 1;
    const next = new Float64Array(hi - lo + 1);
    let populated = 0;
    for (let i = 0; i < old.length; i++) {
      const c = old[i] as number;
      if (c === 0) continue;
      const j = ((this.lo + i - 1) >> 1) + 1 - lo;
      if (next[j] === 0) populated++;
      next[j] = (next[j] as number) + c;
    }
    this.counts = next;
    this.lo = lo;
    this.populated = populated;
  }

  /** Populated range as Prometheus spans and deltas, plus absolute counts from the first populated key. */
  read(): NativeBuckets {
    const c = this.counts;
    let first = 0;
    while (first < c.length && c[first] === 0) first++;
    let last = c.length - 1;
    while (last >= first && c[last] === 0) last--;
    if (first > last) return { offset: 0, counts: [], spans: [], deltas: [] };
    const counts = Array.from(c.subarray(first, last + 1));
    const spans: NativeSpan[] = [];
    const deltas: number[] = [];
    let prevKey = 0;
    let prevCount = 0;
    let span: { offset: number; length: number } | undefined;
    for (let i = first; i <= last; i++) {
      const v = c[i] as number;
      if (v === 0) continue;
      const key = this.lo + i;
      // Up to two empty buckets inside a span cost less than a new span (client_golang makes the same call).
      if (span !== undefined && key - prevKey <= 3) {
        for (let k = prevKey + 1; k < key; k++) {
          deltas.push(-prevCount);
          prevCount = 0;
          span.length++;
        }
        span.length++;
      } else {
        span = { offset: spans.length === 0 ? key : key - prevKey - 1, length: 1 };
        spans.push(span);
      }
      deltas.push(v - prevCount);
      prevCount = v;
      prevKey = key;
    }
    return { offset: this.lo + first, counts, spans, deltas };
  }
}

/** A span of consecutive buckets: `offset` is the gap to the previous span (the first span: its first key). */
export interface NativeSpan {
  readonly offset: number;
  readonly length: number;
}

/** The buckets of one sign, in both forms consumers use. */
export interface NativeBuckets {
  /** Key of `counts[0]` (Prometheus numbering: bucket k is `(base^(k-1), base^k]`; OTLP's index is k - 1). */
  readonly offset: number;
  /** Absolute count of every bucket from `offset` to the last populated one (zeros included). */
  readonly counts: readonly number[];
  /** Prometheus spans (client_model `BucketSpan`). */
  readonly spans: readonly NativeSpan[];
  /** Prometheus deltas: each bucket's count minus the previous one's (the first against 0). */
  readonly deltas: readonly number[];
}

/** A point-in-time read of one native histogram (what the protobuf exposition and the OTLP push send). */
export interface NativeHistogramSnapshot {
  /** Current schema (lower than configured after a resolution reduction). */
  readonly schema: number;
  readonly zeroThreshold: number;
  readonly zeroCount: number;
  /** Observations in total, the same as the classic `_count`. */
  readonly count: number;
  /** Sum of observations, the same as the classic `_sum`. */
  readonly sum: number;
  readonly positive: NativeBuckets;
  readonly negative: NativeBuckets;
}

/** The native buckets of one series. */
export class NativeHistogram {
  schema: number;
  zeroCount = 0;
  readonly positive = new BucketWindow();
  readonly negative = new BucketWindow();
  /** Times the resolution was halved. */
  reductions = 0;
  readonly config: NativeHistogramConfig;

  constructor(config: NativeHistogramConfig) {
    this.config = config;
    this.schema = config.schema;
  }

  /** Count one observation (the classic part counts `_sum` and `_count`). */
  observe(v: number): void {
    const cfg = this.config;
    let key: number;
    if (v >= 0 && v < SMALL_VALUES && (v | 0) === v) {
      key = cfg.smallKeys[v] as number;
      if (key === ZERO_KEY) {
        this.zeroCount++;
        return;
      }
      // The table is at the configured schema; after d halvings key k is ceil(k / 2^d).
      const d = cfg.schema - this.schema;
      if (d > 0) key = ((key - 1) >> d) + 1;
      this.positive.add(key);
    } else if (v > cfg.zeroThreshold) {
      this.positive.add(bucketKey(v, this.schema));
    } else if (v < -cfg.zeroThreshold) {
      this.negative.add(bucketKey(-v, this.schema));
    } else {
      // The zero bucket, and NaN (as client_golang counts it).
      this.zeroCount++;
      return;
    }
    if (cfg.maxBuckets > 0 && this.positive.populated + this.negative.populated > cfg.maxBuckets) this.reduce();
  }

  /** Halve the resolution until the populated buckets fit (or the coarsest schema is reached). */
  private reduce(): void {
    const max = this.config.maxBuckets;
    while (this.schema > MIN_SCHEMA && this.positive.populated + this.negative.populated > max) {
      this.positive.halve();
      this.negative.halve();
      this.schema--;
      this.reductions++;
    }
  }

  /** Buckets of both signs. */
  read(count: number, sum: number): NativeHistogramSnapshot {
    return {
      schema: this.schema,
      zeroThreshold: this.config.zeroThreshold,
      zeroCount: this.zeroCount,
      count,
      sum,
      positive: this.positive.read(),
      negative: this.negative.read(),
    };
  }
}

/** The native part of a series with native buckets, or undefined for a classic-only series. */
export function readNativeHistogram(series: { readonly native?: NativeHistogram | undefined; readonly count: number; readonly sum: number }): NativeHistogramSnapshot | undefined {
  return series.native?.read(series.count, series.sum);
}

/**
 * The native fields of a client_model `Histogram`. Prometheus 2.42 recognises a native histogram by a
 * positive zero threshold, a zero count or deltas (`isNativeHistogram` in `model/textparse/protobufparse.go`);
 * a zero threshold of 0 with no observation yet gets an empty span so newer readers see it as native too.
 */
export function nativeHistogramProto(n: NativeHistogram): {
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  positiveSpan: NativeSpan[];
  positiveDelta: number[];
  negativeSpan: NativeSpan[];
  negativeDelta: number[];
} {
  const pos = n.positive.read();
  const neg = n.negative.read();
  const positiveSpan = pos.spans.length === 0 && neg.spans.length === 0 && n.zeroCount === 0 ? [{ offset: 0, length: 0 }] : [...pos.spans];
  return {
    schema: n.schema,
    zeroThreshold: n.config.zeroThreshold,
    zeroCount: n.zeroCount,
    positiveSpan,
    positiveDelta: [...pos.deltas],
    negativeSpan: [...neg.spans],
    negativeDelta: [...neg.deltas],
  };
}

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
 * Record path (what an observation costs beside the classic buckets, bench/native-histograms.bench.ts): a
 * whole-number observation below 8192 (durations are whole ms, sizes whole bytes) finds its native key and its
 * classic slot with one read of its family's packed per-schema table (`Family.packedAt`) and counts into a
 * window the series object mirrors (SmallPath): no second table, no hop to this object (series.ts `observe`).
 * Other values take the frexp exponent and mantissa from the float's bits and place the fraction among
 * client_golang's bounds with one table read and a compare (no binary search, no `Math.log`); the exponent
 * also narrows the classic search to the value's octave. Counts live in dense Float64Array windows over the
 * populated key range, in the series object itself (grown when an observation falls outside): no Map, no
 * allocation per observation. NaN is in `_count` and `_sum` only, ±Inf one bucket past the largest
 * finite value, as in client_golang.
 *
 * Longer than most files (~570 lines) because the bucket storage, its reads, its merge across sidecar workers and
 * its exemplars work on the same private windows.
 */
import { ConfigError, quote } from '../core/errors.js';
import { LAST_EXP, NO_EXPONENT, bucketKey } from './native-histogram-keys.js';
import { DEFAULT_NATIVE_EXEMPLAR_TTL_MS, DEFAULT_NATIVE_MAX_EXEMPLARS, addNativeExemplar } from './native-exemplars.js';
import type { Exemplar } from './series.js';

export { NO_EXPONENT, bucketKey, classicOctaves, classicSlot } from './native-histogram-keys.js';

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
   * (milliseconds from 1 to 10^6 at schema 3 need 160). The exposition budget charges each native series for
   * this many buckets (at least the coarsest schema's 266), and with 0 for every key of the schema (33,572 at
   * schema 3), so an unbounded setting admits few series.
   */
  readonly maxBuckets?: number;
  /**
   * Most exemplars a series keeps for its native buckets (client_model `Histogram.exemplars`, protobuf only),
   * 0 for none. Default 10, client_golang's `NativeHistogramMaxExemplars`. The classic buckets keep their own.
   */
  readonly maxExemplars?: number;
  /**
   * Once {@link maxExemplars} are kept, the oldest gives way to a new one when it is older than this; otherwise the
   * older of the two closest in value does (see native-exemplars.ts). Default 300000 (5 min, client_golang's
   * `NativeHistogramExemplarTTL`); 0 makes the oldest always give way, as a negative TTL does in client_golang.
   */
  readonly exemplarTtlMs?: number;
}

/** Default schema, see {@link NativeHistogramOptions.schema}. */
export const DEFAULT_NATIVE_SCHEMA = 3;
/** Default zero threshold (client_golang `DefNativeHistogramZeroThreshold`). */
export const DEFAULT_NATIVE_ZERO_THRESHOLD = 2 ** -128;
/** Default bucket bound per series. */
export const DEFAULT_NATIVE_MAX_BUCKETS = 160;
/** Lowest and highest schema Prometheus accepts. */
export const MIN_SCHEMA = -4;
const MAX_SCHEMA = 8;
/**
 * Low bits of a packed small-value entry (`Family.packedAt`) that hold the classic slot; the key is the rest, so
 * the zero bucket's key (-2^20) lies below every real key (about -275,000 at the lowest, schema 8 at 2^-1074).
 */
export const PACKED_SLOT_BITS = 11;
/** Whole numbers below this find their key through the table. */
export const SMALL_VALUES = 8192;
/** Key of the zero bucket in the small-value table (no real key is this small). */
export const ZERO_KEY = -(1 << (31 - PACKED_SLOT_BITS));
/** Lowest key a count window may start at: the zero bucket's key stays outside every window. */
const MIN_WINDOW_KEY = ZERO_KEY + 1;

/** Validated configuration of one family's native histograms, with its small-value key table. */
export class NativeHistogramConfig {
  readonly schema: number;
  readonly zeroThreshold: number;
  readonly maxBuckets: number;
  readonly maxExemplars: number;
  /** See {@link NativeHistogramOptions.exemplarTtlMs}. */
  readonly exemplarTtlMs: number;
  /** Key at `schema` of every whole number 0..8191 ({@link ZERO_KEY} for the zero bucket). */
  readonly smallKeys: Int32Array;
  /**
   * Most buckets (both signs) one series can have populated: `maxBuckets`, or at the coarsest schema, where
   * halving stops, every key of it; with `maxBuckets: 0` every key of the configured schema. What the
   * exposition budget charges a native series for (series-budget.ts).
   */
  readonly maxPopulated: number;

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
    const maxEx = o.maxExemplars ?? DEFAULT_NATIVE_MAX_EXEMPLARS;
    if (!Number.isInteger(maxEx) || maxEx < 0 || maxEx > 1000) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field}.maxExemplars must be an integer from 0 to 1000, got ${quote(maxEx)}`, { field: `${field}.maxExemplars`, value: maxEx });
    }
    const ttl = o.exemplarTtlMs ?? DEFAULT_NATIVE_EXEMPLAR_TTL_MS;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field}.exemplarTtlMs must be a finite number >= 0, got ${quote(ttl)}`, { field: `${field}.exemplarTtlMs`, value: ttl });
    }
    this.schema = schema;
    this.zeroThreshold = zt;
    this.maxBuckets = max;
    this.maxExemplars = maxEx;
    this.exemplarTtlMs = ttl;
    // At the coarsest schema halving stops, so a series may hold every key of it; unbounded: every key of its own.
    const keysAt = (sc: number): number => 2 * (bucketKey(Infinity, sc) - bucketKey(Number.MIN_VALUE, sc) + 1);
    this.maxPopulated = max > 0 ? Math.max(max, keysAt(MIN_SCHEMA)) : keysAt(schema);
    this.smallKeys = keyTable(schema, zt);
    this.tables[schema - MIN_SCHEMA] = this.smallKeys;
  }

  /** Key tables by schema − MIN_SCHEMA, built when a series' resolution is first reduced to that schema. */
  private readonly tables: (Int32Array | undefined)[] = [];

  /** The validated settings as options (what a `--concurrency` worker announces, what a resolved sidecar config holds). */
  options(): NativeHistogramOptions {
    return { schema: this.schema, zeroThreshold: this.zeroThreshold, maxBuckets: this.maxBuckets, maxExemplars: this.maxExemplars, exemplarTtlMs: this.exemplarTtlMs };
  }

  /** The small-value key table at `schema` (shared by every series of this config at that schema). */
  smallKeysAt(schema: number): Int32Array {
    return (this.tables[schema - MIN_SCHEMA] ??= keyTable(schema, this.zeroThreshold));
  }
}

/** Key at `schema` of every whole number 0..8191 ({@link ZERO_KEY} for the zero bucket). */
function keyTable(schema: number, zeroThreshold: number): Int32Array {
  const t = new Int32Array(SMALL_VALUES);
  for (let v = 0; v < SMALL_VALUES; v++) t[v] = v <= zeroThreshold ? ZERO_KEY : bucketKey(v, schema);
  return t;
}

/** A dense window of bucket counts over keys `lo .. lo + counts.length - 1` (one sign of one series). */
interface Window {
  lo: number;
  counts: Float64Array;
}

const EMPTY = new Float64Array(0);

/**
 * A window that also holds `key`: slack is left on the side that grew, so a drifting distribution does not
 * reallocate per observation.
 */
function grown(lo: number, old: Float64Array, key: number): Window {
  if (old.length === 0) {
    const lo0 = Math.max(MIN_WINDOW_KEY, key - 4);
    return { lo: lo0, counts: new Float64Array(key - lo0 + 4) };
  }
  const newLo0 = Math.min(lo, key);
  const hi = Math.max(lo + old.length - 1, key);
  const span = hi - newLo0 + 1;
  const slack = Math.max(4, span >> 1);
  const newLo = key < lo ? Math.max(MIN_WINDOW_KEY, newLo0 - slack) : newLo0;
  const next = new Float64Array(span + slack);
  next.set(old, lo - newLo);
  return { lo: newLo, counts: next };
}

/** The key at one schema lower of bucket `key`: bucket k at schema s lies in bucket ceil(k / 2) at s − 1. */
function keyOneSchemaLower(key: number): number {
  return ((key - 1) >> 1) + 1;
}

/** One schema lower: key k becomes ceil(k / 2), merging bucket pairs `2j-1, 2j` into `j`. */
function halved(lo: number, old: Float64Array): Window & { populated: number } {
  if (old.length === 0) return { lo, counts: old, populated: 0 };
  const newLo = keyOneSchemaLower(lo);
  const hi = keyOneSchemaLower(lo + old.length - 1);
  const next = new Float64Array(hi - newLo + 1);
  let populated = 0;
  for (let i = 0; i < old.length; i++) {
    const c = old[i] as number;
    if (c === 0) continue;
    const j = keyOneSchemaLower(lo + i) - newLo;
    if (next[j] === 0) populated++;
    next[j] = (next[j] as number) + c;
  }
  return { lo: newLo, counts: next, populated };
}

/** Populated range as Prometheus spans and deltas, plus absolute counts from the first populated key. */
function readWindow(lo: number, c: Float64Array): NativeBuckets {
  let first = 0;
  while (first < c.length && c[first] === 0) first++;
  let last = c.length - 1;
  while (last >= first && c[last] === 0) last--;
  if (first > last) return { offset: 0, counts: [], spans: [], deltas: [] };
  const counts = Array.from(c.subarray(first, last + 1));
  const spans: NativeSpan[] = [];
  const deltas: number[] = [];
  forEachSpan(lo, c, first, last, (offset, length) => spans.push({ offset, length }), (d) => deltas.push(d));
  return { offset: lo + first, counts, spans, deltas };
}

/**
 * Walk the populated buckets `c[first..last]` as Prometheus spans and deltas, without allocating (the protobuf
 * writer calls it per series per scrape). Up to two empty buckets inside a span cost less than a new span
 * (client_golang makes the same call). Spans are reported before their deltas.
 */
export function forEachSpan(lo: number, c: Float64Array, first: number, last: number, span: (offset: number, length: number) => void, delta: (d: number) => void): void {
  // Pass 1: spans (their lengths are known only at their end); pass 2: deltas.
  let prevKey = 0;
  let open = false;
  let length = 0;
  let startOffset = 0;
  for (let i = first; i <= last; i++) {
    if (c[i] === 0) continue;
    const key = lo + i;
    if (open && key - prevKey <= 3) length += key - prevKey;
    else {
      if (open) span(startOffset, length);
      startOffset = open ? key - prevKey - 1 : key;
      open = true;
      length = 1;
    }
    prevKey = key;
  }
  if (open) span(startOffset, length);
  let prevCount = 0;
  prevKey = 0;
  let any = false;
  for (let i = first; i <= last; i++) {
    const v = c[i] as number;
    if (v === 0) continue;
    const key = lo + i;
    if (any && key - prevKey <= 3) {
      for (let k = prevKey + 1; k < key; k++) {
        delta(-prevCount);
        prevCount = 0;
      }
    }
    delta(v - prevCount);
    prevCount = v;
    prevKey = key;
    any = true;
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

/**
 * Where the record path reads a series' small-value state without going through its NativeHistogram (one
 * dependent load less per observation): the series object itself, kept in step by {@link NativeHistogram.sync}.
 */
export interface SmallPath {
  /**
   * The family's packed table of the current schema, `key << PACKED_SLOT_BITS | classicSlot` per whole number
   * below 8192: one read gives both (undefined on a series without native buckets).
   */
  nKeys: Int32Array | undefined;
  /** The positive count window and the key of its first slot. */
  nPos: Float64Array;
  nPosLo: number;
}

/** Where a series' packed small-value tables come from (its family, `Family.packedAt`). */
export interface PackedTables {
  packedAt(schema: number): Int32Array;
}

/**
 * The native buckets of one series. The counts of each sign are a dense window (`posLo`/`pos`,
 * `negLo`/`neg`) held in the series object itself: an observation reaches its counter without a Map, an
 * allocation or a second object.
 */
export class NativeHistogram {
  schema: number;
  zeroCount = 0;
  /** Key of `pos[0]`. */
  posLo = 0;
  /** Counts of the positive buckets from key {@link posLo} on. */
  pos: Float64Array = EMPTY;
  negLo = 0;
  neg: Float64Array = EMPTY;
  /** Buckets of either sign with a non-zero count. */
  populated = 0;
  /** Times the resolution was halved (configured schema − {@link schema}). */
  reductions = 0;
  /** Recent exemplars ordered by value, at most `config.maxExemplars` (created with the first one). */
  exemplars: Exemplar[] | undefined = undefined;
  readonly config: NativeHistogramConfig;
  /** Key of every whole number 0..8191 at the current {@link schema} (the config's shared table). */
  private keys: Int32Array;
  /** The series' copy of keys, pos and posLo for the record path (see {@link SmallPath}). */
  private mirror: SmallPath | undefined = undefined;
  private packed: PackedTables | undefined = undefined;
  /** `config.zeroThreshold`, held here so that {@link observeOther} reads it with one load. */
  private readonly zt: number;

  constructor(config: NativeHistogramConfig) {
    this.config = config;
    this.zt = config.zeroThreshold;
    this.schema = config.schema;
    this.keys = config.smallKeys;
  }

  /**
   * Count a whole number `0 <= v < 8192` (the caller checked, sharing the check with the classic bucket
   * search): one read of the key table of the current schema, one bounds check that also sends the zero
   * bucket's sentinel key (far below any window) to the slow path, one add.
   */
  observeSmall(v: number): void {
    const key = this.keys[v] as number;
    const c = this.pos;
    const i = key - this.posLo;
    if (i >= 0 && i < c.length) {
      const n = c[i] as number;
      c[i] = n + 1;
      if (n !== 0) return;
      this.newBucket();
    } else if (key === ZERO_KEY) this.zeroCount++;
    else this.addPositive(key);
  }

  /** Count any observation (the classic part counts `_sum` and `_count`). */
  observe(v: number): void {
    if (v >= 0 && v < SMALL_VALUES && (v | 0) === v) this.observeSmall(v);
    else void this.observeOther(v);
  }

  /**
   * Count an observation that is not a whole number below 8192 (the caller checked). Returns the frexp
   * exponent of a positive `v` above the zero threshold (for {@link classicSlot}), else {@link NO_EXPONENT}.
   */
  observeOther(v: number): number {
    const zt = this.zt;
    if (v > zt) {
      const key = bucketKey(v, this.schema);
      // Read before counting: a resolution reduction builds a key table with bucketKey, which overwrites it.
      const exp = LAST_EXP[0] as number;
      this.addPositive(key);
      return exp;
    }
    if (v < -zt) this.addNegative(bucketKey(-v, this.schema));
    // NaN is in `_count` and `_sum` but in no bucket, as client_golang leaves it.
    else if (v === v) this.zeroCount++;
    return NO_EXPONENT;
  }

  private addPositive(key: number): void {
    const c = this.pos;
    // One unsigned compare: a key below the window wraps to a huge index.
    const i = (key - this.posLo) >>> 0;
    if (i < c.length) {
      const n = c[i] as number;
      c[i] = n + 1;
      if (n !== 0) return;
    } else {
      const w = grown(this.posLo, c, key);
      this.posLo = w.lo;
      this.pos = w.counts;
      w.counts[key - w.lo] = 1;
      this.sync();
    }
    this.newBucket();
  }

  // addPositive's mirror on the negative window. Written twice on purpose: the windows are plain fields of this
  // object (no window object per sign, see the class comment), so each sign reads and writes its own fields.
  private addNegative(key: number): void {
    const c = this.neg;
    const i = key - this.negLo;
    if (i >= 0 && i < c.length) {
      const n = c[i] as number;
      c[i] = n + 1;
      if (n !== 0) return;
    } else {
      const w = grown(this.negLo, c, key);
      this.negLo = w.lo;
      this.neg = w.counts;
      w.counts[key - w.lo] = 1;
    }
    this.newBucket();
  }

  /** Keep `e` among the recent exemplars (client_golang's `addExemplar`; NaN observations keep none). */
  addExemplar(e: Exemplar): void {
    if (e.value !== e.value || this.config.maxExemplars === 0) return;
    addNativeExemplar((this.exemplars ??= []), e, this.config.maxExemplars, this.config.exemplarTtlMs / 1000);
  }

  /** Mirror keys, pos and posLo into `m` from now on (the series the record path reads them from). */
  attach(m: SmallPath, packed: PackedTables): void {
    this.mirror = m;
    this.packed = packed;
    this.sync();
  }

  /** Copy the record path's state to the mirror: after every change of keys, pos or posLo (all off the hot path). */
  private sync(): void {
    const m = this.mirror;
    if (m === undefined) return;
    m.nKeys = (this.packed as PackedTables).packedAt(this.schema);
    m.nPos = this.pos;
    m.nPosLo = this.posLo;
  }

  /** The record path's slow case for a whole number below 8192: its key is outside the window, or the zero bucket's. */
  smallMiss(key: number): void {
    if (key === ZERO_KEY) this.zeroCount++;
    else this.addPositive(key);
  }

  /** A bucket got its first observation: the only time the bucket bound can be crossed. */
  newBucket(): void {
    this.populated++;
    const max = this.config.maxBuckets;
    if (max > 0 && this.populated > max) this.reduce(max);
  }

  /** Halve the resolution until the populated buckets fit (or the coarsest schema is reached). */
  private reduce(max: number): void {
    while (this.schema > MIN_SCHEMA && this.populated > max) this.halve();
    this.keys = this.config.smallKeysAt(this.schema);
    this.sync();
  }

  /** One schema lower (the caller refreshes {@link keys}). */
  private halve(): void {
    const p = halved(this.posLo, this.pos);
    const n = halved(this.negLo, this.neg);
    this.posLo = p.lo;
    this.pos = p.counts;
    this.negLo = n.lo;
    this.neg = n.counts;
    this.populated = p.populated + n.populated;
    this.schema--;
    this.reductions++;
  }

  /**
   * Add another histogram's buckets of the same configuration (a sidecar worker's, `--concurrency N`): both are
   * brought to the lower of the two schemas (halving is exact, so that is what either would hold at it), the
   * counts added, then the resolution halved while more than `maxBuckets` are populated. The result is what one
   * process that saw both sets of observations holds: the bucket count only grows with more observations, so its
   * schema is the highest one, at or below both, at which the union fits.
   */
  merge(schema: number, zeroCount: number, posLo: number, pos: ArrayLike<number>, negLo: number, neg: ArrayLike<number>): void {
    while (this.schema > schema) this.halve();
    const down = schema - this.schema;
    this.zeroCount += zeroCount;
    for (let sign = 0; sign < 2; sign++) {
      const lo = sign === 0 ? posLo : negLo;
      const c = sign === 0 ? pos : neg;
      for (let i = 0; i < c.length; i++) {
        const n = c[i] as number;
        if (n === 0) continue;
        let key = lo + i;
        for (let d = 0; d < down; d++) key = keyOneSchemaLower(key);
        this.addCount(sign === 0, key, n);
      }
    }
    const max = this.config.maxBuckets;
    if (max > 0 && this.populated > max) this.reduce(max);
    else {
      this.keys = this.config.smallKeysAt(this.schema);
      this.sync();
    }
  }

  /** Add `n` to bucket `key` of one sign, counting a newly populated bucket (no reduction: the caller's). */
  private addCount(positive: boolean, key: number, n: number): void {
    let lo = positive ? this.posLo : this.negLo;
    let c = positive ? this.pos : this.neg;
    if (key < lo || key >= lo + c.length) {
      const w = grown(lo, c, key);
      lo = w.lo;
      c = w.counts;
      if (positive) {
        this.posLo = lo;
        this.pos = c;
      } else {
        this.negLo = lo;
        this.neg = c;
      }
    }
    const old = c[key - lo] as number;
    c[key - lo] = old + n;
    if (old === 0) this.populated++;
  }

  /** Buckets of both signs. */
  read(count: number, sum: number): NativeHistogramSnapshot {
    return {
      schema: this.schema,
      zeroThreshold: this.config.zeroThreshold,
      zeroCount: this.zeroCount,
      count,
      sum,
      positive: readWindow(this.posLo, this.pos),
      negative: readWindow(this.negLo, this.neg),
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
  const pos = readWindow(n.posLo, n.pos);
  const neg = readWindow(n.negLo, n.neg);
  const positiveSpan = n.config.zeroThreshold === 0 && pos.spans.length === 0 && neg.spans.length === 0 && n.zeroCount === 0 ? [{ offset: 0, length: 0 }] : [...pos.spans];
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

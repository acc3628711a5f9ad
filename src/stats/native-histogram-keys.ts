/**
 * Bucket keys of native histograms, the hot arithmetic of native-histogram.ts kept apart from the bucket
 * storage: client_golang's `frexp` + bound search done on the float's bits with lookup tables, and the
 * classic-slot search that reuses the exponent. Why tables and not `Math.log2`: the key must be
 * client_golang's to the last bit (a value exactly on a bound goes where client_golang and Prometheus put
 * it), and `log2` is neither exact nor cheaper.
 */
import { NATIVE_HISTOGRAM_BOUNDS } from './native-histogram-bounds.js';

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** Little-endian hosts (every Node platform) keep the exponent in the high word. */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const LO = 1 - HI;

/**
 * The bound search of one positive schema `s` (n = 2^s bounds) done with one table read and a compare of
 * mantissa bits instead of a binary search (whose unpredictable branches were most of the cost of a large
 * observation). Every fraction in [0.5, 1) has the same exponent, so its order is its mantissa's; the top
 * `s + 1` mantissa bits name one of 2n equal cells of [0.5, 1). Adjacent bounds are further apart than a
 * cell (ratio 2^(1/n) > 1 + 1/(2n)), so a cell holds at most one bound: `below[c]` counts the bounds under
 * the cell and `inHi[c]`/`inLo[c]` are the mantissa bits of the one inside it (inHi 2^20, above every
 * mantissa, when there is none). The number of bounds < frac, client_golang's
 * `sort.SearchFloat64s(bounds, frac)`, is then `below[c]` plus one if the cell's bound is below frac.
 */
interface BoundCells {
  readonly n: number;
  readonly shift: number;
  readonly below: Int32Array;
  readonly inHi: Int32Array;
  readonly inLo: Float64Array;
}

const CELLS: BoundCells[] = NATIVE_HISTOGRAM_BOUNDS.map((bounds, s) => {
  const bits = s + 1;
  const cells = 1 << bits;
  const below = new Int32Array(cells);
  const inHi = new Int32Array(cells).fill(0x100000);
  const inLo = new Float64Array(cells);
  for (let c = 0; c < cells; c++) {
    const lo = 0.5 + c / 2 ** (bits + 1);
    const hi = 0.5 + (c + 1) / 2 ** (bits + 1);
    below[c] = bounds.filter((b) => b < lo).length;
    const inside = bounds.filter((b) => b >= lo && b < hi);
    if (inside.length > 1) throw new Error(`native histogram schema ${s}: two bounds in one cell`);
    if (inside.length === 1) {
      F64[0] = inside[0] as number;
      inHi[c] = (U32[HI] as number) & 0xfffff;
      inLo[c] = U32[LO] as number;
    }
  }
  return { n: bounds.length, shift: 20 - bits, below, inHi, inLo };
});

/**
 * The bucket key of a positive `v` at `schema`, as client_golang computes it: `frexp` (read here from the
 * exponent and mantissa bits, never building the fraction), then the fraction's place among the schema's
 * bounds (see {@link BoundCells}), or a shift of the exponent for schemas <= 0. +Inf is counted one bucket
 * above the largest finite value's, as client_golang does.
 */
/**
 * The frexp exponent {@link bucketKey} computed last (read by `NativeHistogram.observeOther`); a typed
 * array slot rather than a module `let`, whose every read would check for the temporal dead zone.
 */
export const LAST_EXP = new Int32Array(1);

/** What `NativeHistogram.observeOther` returns when it computed no exponent. */
export const NO_EXPONENT = 0x7fffffff;
/** Lowest frexp exponent of a positive double (2^-1074 = 0.5 * 2^-1073). */
const MIN_EXP = -1073;
/** Highest frexp exponent of a finite double. */
const MAX_EXP = 1024;

/**
 * For classic bucket bounds, the index of the first bound >= 2^(exp-1) for every frexp exponent: a positive
 * value's classic bucket is then found from the exponent its native key already needed, with a compare per
 * classic bound inside the value's octave (one or two for Envoy's 1-2-5 bounds) instead of a binary search.
 */
export function classicOctaves(bounds: Float64Array): Uint16Array {
  const t = new Uint16Array(MAX_EXP - MIN_EXP + 1);
  let i = 0;
  for (let exp = MIN_EXP; exp <= MAX_EXP; exp++) {
    const edge = 2 ** (exp - 1);
    while (i < bounds.length && (bounds[i] as number) < edge) i++;
    t[exp - MIN_EXP] = i;
  }
  return t;
}

/**
 * The classic bucket slot of a positive `v` whose frexp exponent is `exp` (first bound >= v, Prometheus
 * `le`), through {@link classicOctaves}; the same slot as a binary search over `bounds`.
 */
export function classicSlot(bounds: Float64Array, octaves: Uint16Array, v: number, exp: number): number {
  let i = octaves[exp - MIN_EXP] as number;
  while (i < bounds.length && v > (bounds[i] as number)) i++;
  return i;
}

export function bucketKey(v: number, schema: number): number {
  // The common case alone (a normal double, positive schema), small enough for the record path to inline
  // with everything around it (V8's cumulative inlining budget); the rest in otherKey.
  F64[0] = v;
  const hi = U32[HI] as number;
  const e = (hi >>> 20) & 0x7ff;
  if (e === 0 || e === 0x7ff || schema <= 0) return otherKey(v, schema);
  // frexp's exponent: v = frac * 2^exp with frac in [0.5, 1).
  const exp = e - 1022;
  LAST_EXP[0] = exp;
  return cellKey(schema, exp, hi & 0xfffff, U32[LO] as number);
}

/** {@link bucketKey} of a subnormal or infinite `v`, or at a schema <= 0. */
function otherKey(v: number, schema: number): number {
  F64[0] = v;
  let hi = U32[HI] as number;
  let e = (hi >>> 20) & 0x7ff;
  let shift = 0;
  if (e === 0 || e === 0x7ff) {
    if (e === 0x7ff) return bucketKey(Number.MAX_VALUE, schema) + 1;
    // Subnormal: scale into the normal range first.
    F64[0] = v * 2 ** 64;
    hi = U32[HI] as number;
    e = (hi >>> 20) & 0x7ff;
    shift = 64;
  }
  const exp = e - 1022 - shift;
  LAST_EXP[0] = exp;
  const mHi = hi & 0xfffff;
  const mLo = U32[LO] as number;
  if (schema > 0) return cellKey(schema, exp, mHi, mLo);
  // frac === 0.5 exactly when the mantissa bits are all zero.
  const key = mHi === 0 && mLo === 0 ? exp - 1 : exp;
  return (key + (1 << -schema) - 1) >> -schema;
}

/** The key at a positive `schema` of frac * 2^exp, frac's mantissa bits being mHi:mLo (see {@link BoundCells}). */
function cellKey(schema: number, exp: number, mHi: number, mLo: number): number {
  const t = CELLS[schema] as BoundCells;
  const c = mHi >>> t.shift;
  // 1 when the cell's bound is below frac: the sign bit of bHi - mHi (both under 2^21), no data-dependent
  // branch (whether a value is above its cell's bound is a coin toss, and a mispredicted branch cost more than
  // the rest of the key); the low words decide only on the rare equal high bits.
  const d = (t.inHi[c] as number) - mHi;
  let above = d >>> 31;
  if (d === 0 && (t.inLo[c] as number) < mLo) above = 1;
  return (t.below[c] as number) + above + (exp - 1) * t.n;
}


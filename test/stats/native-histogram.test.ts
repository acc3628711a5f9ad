import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NativeHistogram, NativeHistogramConfig, bucketKey, nativeHistogramProto, readNativeHistogram, type NativeBuckets } from '../../src/stats/native-histogram.js';
import { NATIVE_HISTOGRAM_BOUNDS } from '../../src/stats/native-histogram-bounds.js';
import { DEFAULT_BUCKETS } from '../../src/stats/definitions.js';
import { Family, observe } from '../../src/stats/series.js';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import type { HistogramSeries } from '../../src/stats/series.js';
import { ISTIO_REQUEST_DURATION_MILLISECONDS } from '../../src/stats/definitions.js';
import { WEBAPP, outboundToCatalog } from './fixtures.js';

/** Bucket k at schema s is (2^((k-1)/2^s), 2^(k/2^s)]: the reference, away from bucket boundaries. */
const reference = (v: number, s: number): number => Math.ceil(Math.log2(v) * 2 ** s) + 0;

/** Absolute counts by key, rebuilt from Prometheus spans and deltas (how Prometheus reads them). */
function fromSpans(b: NativeBuckets): Map<number, number> {
  const out = new Map<number, number>();
  let key = 0;
  let count = 0;
  let d = 0;
  b.spans.forEach((span, i) => {
    key += i === 0 ? span.offset : span.offset + 1;
    for (let j = 0; j < span.length; j++, d++) {
      if (j > 0) key++;
      count += b.deltas[d] as number;
      if (count !== 0) out.set(key, count);
    }
  });
  return out;
}

/**
 * client_golang's key, computed the slow way: frexp by halving/doubling (exact for normal doubles), then
 * `sort.SearchFloat64s(nativeHistogramBounds[schema], frac) + (exp-1)*len` or the exponent shift.
 */
function goKey(v: number, schema: number): number {
  if (v === Infinity) return goKey(Number.MAX_VALUE, schema) + 1;
  let frac = v;
  let exp = 0;
  while (frac >= 1) {
    frac /= 2;
    exp++;
  }
  while (frac < 0.5) {
    frac *= 2;
    exp--;
  }
  if (schema > 0) {
    const bounds = NATIVE_HISTOGRAM_BOUNDS[schema] as readonly number[];
    const i = bounds.findIndex((b) => b >= frac);
    return (i < 0 ? bounds.length : i) + (exp - 1) * bounds.length;
  }
  const key = frac === 0.5 ? exp - 1 : exp;
  return (key + (1 << -schema) - 1) >> -schema;
}

/** The next double up (for boundary checks). */
function nextUp(v: number): number {
  const f = new Float64Array([v]);
  const b = new BigUint64Array(f.buffer);
  b[0] = (b[0] as bigint) + 1n;
  return f[0] as number;
}

describe('bucketKey()', () => {
  it("keys every one of client_golang's bucket bounds, and the double above it, as client_golang does, at every schema", () => {
    for (let s = 1; s <= 8; s++) {
      const bounds = NATIVE_HISTOGRAM_BOUNDS[s] as readonly number[];
      expect(bounds).toHaveLength(2 ** s);
      for (const [j, b] of bounds.entries()) {
        for (const e of [-1021, -20, 0, 1, 13, 52, 1000]) {
          const v = b * 2 ** e;
          // frexp(v) = (b, e): the search finds bound j itself.
          expect(bucketKey(v, s), `schema ${s} bound ${j} * 2^${e}`).toBe(j + (e - 1) * bounds.length);
          expect(bucketKey(nextUp(v), s)).toBe(goKey(nextUp(v), s));
        }
      }
    }
  });

  it('agrees with the slow frexp-and-search reference on arbitrary positive doubles, subnormals and +Inf', () => {
    fc.assert(
      fc.property(fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true }), fc.integer({ min: -4, max: 8 }), (v, s) => {
        expect(bucketKey(v, s)).toBe(goKey(v, s));
      }),
      { numRuns: 20_000 },
    );
    for (let s = -4; s <= 8; s++) {
      for (const v of [Number.MIN_VALUE, 2 ** -1060, 2 ** -1022, Number.MAX_VALUE, Infinity, 1, 8191, 8192, 8193, 2 ** 53]) expect(bucketKey(v, s), `${v} at ${s}`).toBe(goKey(v, s));
    }
    // client_golang's "+Inf observation" at schema 2: one bucket above MaxFloat64's (4096).
    expect(bucketKey(Infinity, 2)).toBe(4097);
  });


  it('puts every power of the base at the top of its own bucket (upper bounds are inclusive)', () => {
    for (let s = -4; s <= 8; s++) {
      for (const k of [-20, -1, 0, 1, 7, 8, 64]) {
        // base^k = 2^(k/2^s) is exact for whole powers of two only, and finite below 2^1024.
        const e = k / 2 ** s;
        if (!Number.isInteger(e) || Math.abs(e) > 1000) continue;
        expect(bucketKey(2 ** e, s), `schema ${s} value 2^${e}`).toBe(k);
        // Just above it is the next bucket.
        expect(bucketKey(2 ** e * (1 + 2 ** -40), s)).toBe(k + 1);
      }
    }
  });

  it('agrees with ceil(log2(v) * 2^schema) for values away from a boundary, every schema', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let s = -4; s <= 8; s++) {
      for (let i = 0; i < 2000; i++) {
        const v = 2 ** (rnd() * 80 - 40);
        const x = Math.log2(v) * 2 ** s;
        if (Math.abs(x - Math.round(x)) < 1e-6) continue;
        expect(bucketKey(v, s)).toBe(reference(v, s));
      }
    }
    // Subnormals.
    expect(bucketKey(2 ** -1070, 0)).toBe(-1070);
  });
});

describe('NativeHistogramConfig', () => {
  it.each([
    [{ schema: 9 }, 'nativeHistograms.schema'],
    [{ schema: 1.5 }, 'nativeHistograms.schema'],
    [{ zeroThreshold: -1 }, 'nativeHistograms.zeroThreshold'],
    [{ zeroThreshold: Number.NaN }, 'nativeHistograms.zeroThreshold'],
    [{ maxBuckets: -1 }, 'nativeHistograms.maxBuckets'],
    ['yes', 'nativeHistograms'],
  ])('refuses %j with MESHTEL_ERR_INVALID_CONFIG naming %s', (o, field) => {
    expect(() => new NativeHistogramConfig(o as never)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG', details: expect.objectContaining({ field }) }));
  });
});

describe('NativeHistogram', () => {
  it('counts whole numbers through the table exactly as bucketKey() keys them, at every schema', () => {
    for (let s = -4; s <= 8; s++) {
      const cfg = new NativeHistogramConfig({ schema: s, maxBuckets: 0 });
      const table = new NativeHistogram(cfg);
      for (let v = 1; v < 8192; v += 1 + (v >> 4)) table.observe(v);
      const byKey = new Map<number, number>();
      for (let v = 1; v < 8192; v += 1 + (v >> 4)) byKey.set(bucketKey(v, s), (byKey.get(bucketKey(v, s)) ?? 0) + 1);
      expect(fromSpans(table.read(0, 0).positive)).toEqual(byKey);
    }
  });

  it('counts 0 and values within the zero threshold in the zero bucket, negatives in negative buckets', () => {
    const h = new NativeHistogram(new NativeHistogramConfig({ zeroThreshold: 0.5 }));
    for (const v of [0, 0.25, -0.5, 0.5000001, -3]) h.observe(v);
    const r = h.read(5, 0);
    expect(r.zeroCount).toBe(3);
    expect(fromSpans(r.positive)).toEqual(new Map([[bucketKey(0.5000001, 3), 1]]));
    expect(fromSpans(r.negative)).toEqual(new Map([[bucketKey(3, 3), 1]]));
  });

  it('halves the resolution when more buckets are populated than maxBuckets, keeping every count', () => {
    const h = new NativeHistogram(new NativeHistogramConfig({ schema: 3, maxBuckets: 20 }));
    const values: number[] = [];
    for (let v = 1; v <= 1_000_000; v = Math.ceil(v * 1.07)) values.push(v);
    for (const v of values) h.observe(v);
    const r = h.read(values.length, 0);
    expect(r.schema).toBeLessThan(3);
    const counts = fromSpans(r.positive);
    expect(counts.size).toBeLessThanOrEqual(20);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(values.length);
    // Every value is in the bucket its key at the reduced schema names.
    const expected = new Map<number, number>();
    for (const v of values) expected.set(bucketKey(v, r.schema), (expected.get(bucketKey(v, r.schema)) ?? 0) + 1);
    expect(counts).toEqual(expected);
    // Observations after the reduction land at the reduced schema too (table path and float path).
    h.observe(3);
    h.observe(3.5);
    const after = fromSpans(h.read(0, 0).positive);
    expect(after.get(bucketKey(3, r.schema))).toBe((expected.get(bucketKey(3, r.schema)) ?? 0) + 1 + (bucketKey(3.5, r.schema) === bucketKey(3, r.schema) ? 1 : 0));
  });

  it('writes spans with short gaps filled and long gaps as new spans, and marks an empty histogram native', () => {
    const h = new NativeHistogram(new NativeHistogramConfig({ schema: 0 }));
    for (const v of [1, 1, 4, 1024]) h.observe(v); // keys 0, 0, 2, 10
    const r = h.read(4, 0);
    expect(r.positive.spans).toEqual([
      { offset: 0, length: 3 },
      { offset: 7, length: 1 },
    ]);
    expect(r.positive.deltas).toEqual([2, -2, 1, 0]);
    expect(r.positive.offset).toBe(0);
    expect(r.positive.counts).toEqual([2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    const empty = nativeHistogramProto(new NativeHistogram(new NativeHistogramConfig({ zeroThreshold: 0 })));
    expect(empty.positiveSpan).toEqual([{ offset: 0, length: 0 }]);
  });
});

/**
 * Scenarios of client_golang's TestNativeHistogram (prometheus/client_golang `prometheus/histogram_test.go`,
 * commit 89c60c05) that meshtel's options express (schema, zero threshold, bucket bound by halving; not the
 * zero-bucket widening or reset strategies). Factor 1.1 is schema 3, 1.2 schema 2, 4 schema -1, 17 schema -2.
 */
const GO_SCENARIOS: readonly {
  name: string;
  observations: readonly number[];
  schema: number;
  zeroThreshold?: number;
  maxBuckets?: number;
  want: { schema: number; zeroThreshold: number; zeroCount: number; positiveSpan: [number, number][]; positiveDelta: number[]; negativeSpan: [number, number][]; negativeDelta: number[] };
}[] = [
  { name: 'no observations', observations: [], schema: 3, want: { schema: 3, zeroThreshold: 2.938735877055719e-39, zeroCount: 0, positiveSpan: [], positiveDelta: [], negativeSpan: [], negativeDelta: [] } },
  { name: 'no observations and zero threshold of zero resulting in no-op span', observations: [], schema: 3, zeroThreshold: 0, want: { schema: 3, zeroThreshold: 0, zeroCount: 0, positiveSpan: [[0, 0]], positiveDelta: [], negativeSpan: [], negativeDelta: [] } },
  { name: 'factor 1.1 results in schema 3', observations: [0, 1, 2, 3], schema: 3, want: { schema: 3, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 1], [7, 1], [4, 1]], positiveDelta: [1, 0, 0], negativeSpan: [], negativeDelta: [] } },
  { name: 'factor 1.2 results in schema 2', observations: [0, 1, 1.2, 1.4, 1.8, 2], schema: 2, want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5]], positiveDelta: [1, -1, 2, -2, 2], negativeSpan: [], negativeDelta: [] } },
  {
    name: 'factor 4 results in schema -1',
    observations: [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33],
    schema: -1,
    want: { schema: -1, zeroThreshold: 2.938735877055719e-39, zeroCount: 0, positiveSpan: [[-2, 6]], positiveDelta: [2, 0, 0, 2, -1, -2], negativeSpan: [], negativeDelta: [] },
  },
  {
    name: 'factor 17 results in schema -2',
    observations: [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33],
    schema: -2,
    want: { schema: -2, zeroThreshold: 2.938735877055719e-39, zeroCount: 0, positiveSpan: [[-1, 4]], positiveDelta: [2, 2, 3, -6], negativeSpan: [], negativeDelta: [] },
  },
  { name: 'negative buckets', observations: [0, -1, -1.2, -1.4, -1.8, -2], schema: 2, want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [], positiveDelta: [], negativeSpan: [[0, 5]], negativeDelta: [1, -1, 2, -2, 2] } },
  {
    name: 'negative and positive buckets',
    observations: [0, -1, -1.2, -1.4, -1.8, -2, 1, 1.2, 1.4, 1.8, 2],
    schema: 2,
    want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5]], positiveDelta: [1, -1, 2, -2, 2], negativeSpan: [[0, 5]], negativeDelta: [1, -1, 2, -2, 2] },
  },
  {
    name: 'wide zero bucket',
    observations: [0, -1, -1.2, -1.4, -1.8, -2, 1, 1.2, 1.4, 1.8, 2],
    schema: 2,
    zeroThreshold: 1.4,
    want: { schema: 2, zeroThreshold: 1.4, zeroCount: 7, positiveSpan: [[4, 1]], positiveDelta: [2], negativeSpan: [[4, 1]], negativeDelta: [2] },
  },
  { name: 'NaN observation', observations: [0, 1, 1.2, 1.4, 1.8, 2, NaN], schema: 2, want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5]], positiveDelta: [1, -1, 2, -2, 2], negativeSpan: [], negativeDelta: [] } },
  {
    name: '+Inf observation',
    observations: [0, 1, 1.2, 1.4, 1.8, 2, Infinity],
    schema: 2,
    want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5], [4092, 1]], positiveDelta: [1, -1, 2, -2, 2, -1], negativeSpan: [], negativeDelta: [] },
  },
  {
    name: '-Inf observation',
    observations: [0, 1, 1.2, 1.4, 1.8, 2, -Infinity],
    schema: 2,
    want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5]], positiveDelta: [1, -1, 2, -2, 2], negativeSpan: [[4097, 1]], negativeDelta: [1] },
  },
  {
    name: 'limited buckets but nothing triggered',
    observations: [0, 1, 1.2, 1.4, 1.8, 2],
    schema: 2,
    maxBuckets: 4,
    want: { schema: 2, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5]], positiveDelta: [1, -1, 2, -2, 2], negativeSpan: [], negativeDelta: [] },
  },
  {
    name: 'buckets limited by halving resolution',
    observations: [0, 1, 1.1, 1.2, 1.4, 1.8, 2, 3],
    schema: 2,
    maxBuckets: 4,
    want: { schema: 1, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [[0, 5]], positiveDelta: [1, 2, -1, -2, 1], negativeSpan: [], negativeDelta: [] },
  },
  {
    name: 'buckets limited by halving resolution, negative observations',
    observations: [0, -1, -1.1, -1.2, -1.4, -1.8, -2, -3],
    schema: 2,
    maxBuckets: 4,
    want: { schema: 1, zeroThreshold: 2.938735877055719e-39, zeroCount: 1, positiveSpan: [], positiveDelta: [], negativeSpan: [[0, 5]], negativeDelta: [1, 2, -1, -2, 1] },
  },
];

describe("client_golang's TestNativeHistogram scenarios", () => {
  const asWant = (n: NativeHistogram): unknown => {
    const p = nativeHistogramProto(n);
    return {
      schema: p.schema,
      zeroThreshold: p.zeroThreshold,
      zeroCount: p.zeroCount,
      positiveSpan: p.positiveSpan.map((x) => [x.offset, x.length]),
      positiveDelta: p.positiveDelta,
      negativeSpan: p.negativeSpan.map((x) => [x.offset, x.length]),
      negativeDelta: p.negativeDelta,
    };
  };

  it.each(GO_SCENARIOS)('$name', (sc) => {
    const cfg = new NativeHistogramConfig({ schema: sc.schema, zeroThreshold: sc.zeroThreshold ?? 2 ** -128, maxBuckets: sc.maxBuckets ?? 0 });
    const alone = new NativeHistogram(cfg);
    for (const v of sc.observations) alone.observe(v);
    expect(asWant(alone)).toEqual(sc.want);
    // The recorder's path: the classic slot and the native key found together (observe() in series.ts).
    const f = new Family('h', 'histogram', 'h', 10, DEFAULT_BUCKETS);
    f.native = cfg;
    const s = f.get('a="b"', 0) as HistogramSeries;
    for (const v of sc.observations) observe(s, f, v);
    expect(asWant(s.native as NativeHistogram)).toEqual(sc.want);
    expect(s.count).toBe(sc.observations.length);
  });
});

describe('observe() with native buckets', () => {
  it('puts every value in the same classic slot as a series without native buckets (the shared exponent path)', () => {
    for (const buckets of [DEFAULT_BUCKETS, [0.001, 0.5, 1, 3, 7.5, 1024, 4096.5, 1e9]]) {
      const classic = new Family('c', 'histogram', 'c', 10, buckets);
      const both = new Family('n', 'histogram', 'n', 10, buckets);
      both.native = new NativeHistogramConfig({ maxBuckets: 0 });
      const c = classic.get('', 0) as HistogramSeries;
      const n = both.get('', 0) as HistogramSeries;
      const edge = buckets.flatMap((b) => [b, nextUp(b), -b]);
      for (const v of edge) expect(observe(n, both, v), `${v}`).toBe(observe(c, classic, v));
      fc.assert(
        fc.property(fc.oneof(fc.double({ noNaN: false }), fc.integer({ min: -10, max: 5_000_000 }), fc.double({ min: 0, max: 1e7, noNaN: true })), (v) => {
          expect(observe(n, both, v)).toBe(observe(c, classic, v));
        }),
        { numRuns: 20_000 },
      );
      expect([...n.counts]).toEqual([...c.counts]);
    }
  });

  it('refuses native buckets on a family with more than 2047 classic bounds below 8192 (its slots do not fit the packed table)', () => {
    const wide = new Family('w', 'histogram', 'w', 10, Array.from({ length: 2048 }, (_, i) => i + 1));
    let err: unknown;
    try {
      wide.native = new NativeHistogramConfig({});
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).toBe('MESHTEL_ERR_INVALID_BUCKETS');
    expect(wide.native).toBeUndefined();
    const fits = new Family('f', 'histogram', 'f', 10, Array.from({ length: 2047 }, (_, i) => i + 1));
    fits.native = new NativeHistogramConfig({});
    const s = fits.get('', 0) as HistogramSeries;
    expect(observe(s, fits, 2047)).toBe(2046);
    expect(observe(s, fits, 2048)).toBe(2047);
  });

  it('keeps the classic slot right when the observation halves the resolution (the reduction builds a key table)', () => {
    const classic = new Family('c', 'histogram', 'c', 10, DEFAULT_BUCKETS);
    const both = new Family('n', 'histogram', 'n', 10, DEFAULT_BUCKETS);
    both.native = new NativeHistogramConfig({ schema: 8, maxBuckets: 4 });
    const c = classic.get('', 0) as HistogramSeries;
    const n = both.get('', 0) as HistogramSeries;
    // Each value a fresh bucket, fractional and below 4096 (the table's last key has a higher exponent than theirs),
    // so every few take the fractional path into a reduction.
    for (let i = 0; i < 30; i++) {
      const v = 0.0013 * 1.6 ** i;
      expect(observe(n, both, v), `${v}`).toBe(observe(c, classic, v));
    }
    expect(n.native?.reductions).toBeGreaterThan(5);
    expect([...n.counts]).toEqual([...c.counts]);
  });
});

describe('IstioStats nativeHistograms', () => {
  let stats: IstioStats | undefined;
  afterEach(() => stats?.close());

  const durationSeries = (s: IstioStats): HistogramSeries[] =>
    [...(s.families().find((f) => f.name === ISTIO_REQUEST_DURATION_MILLISECONDS)?.series.values() ?? [])] as HistogramSeries[];

  it('is off by default', () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    stats.recordHttp(outboundToCatalog());
    expect(readNativeHistogram(durationSeries(stats)[0] as HistogramSeries)).toBeUndefined();
  });

  it('records the same observations as the classic buckets, with count and sum shared', () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, nativeHistograms: { schema: 2 } });
    for (const d of [0, 1, 3, 3, 250, 9000.7]) stats.recordHttp(outboundToCatalog({ durationMs: d }));
    const n = readNativeHistogram(durationSeries(stats)[0] as HistogramSeries);
    expect(n).toMatchObject({ schema: 2, zeroCount: 1, count: 6, sum: 0 + 1 + 3 + 3 + 250 + 9000 });
    expect(fromSpans(n?.positive as NativeBuckets)).toEqual(
      new Map([
        [bucketKey(1, 2), 1],
        [bucketKey(3, 2), 2],
        [bucketKey(250, 2), 1],
        [bucketKey(9000, 2), 1],
      ]),
    );
    for (const name of ['istio_request_bytes', 'istio_response_bytes']) {
      const s = [...(stats.families().find((f) => f.name === name)?.series.values() ?? [])][0] as HistogramSeries;
      expect(readNativeHistogram(s)?.count).toBe(6);
    }
  });

  it('refuses a bad option at construction', () => {
    expect(() => createIstioStats({ local: WEBAPP, nativeHistograms: { schema: -5 } })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
  });
});

describe('NativeHistogram against a reference model (property)', () => {
  /** The straightforward model: a Map of key → count per sign, keys by the slow frexp-and-search reference. */
  class Model {
    schema: number;
    zero = 0;
    count = 0;
    sum = 0;
    readonly pos = new Map<number, number>();
    readonly neg = new Map<number, number>();
    constructor(
      schema: number,
      readonly zt: number,
      readonly max: number,
    ) {
      this.schema = schema;
    }
    observe(v: number): void {
      this.count++;
      this.sum += v;
      if (v !== v) return;
      if (Math.abs(v) <= this.zt) this.zero++;
      else {
        const m = v > 0 ? this.pos : this.neg;
        const k = goKey(Math.abs(v), this.schema);
        m.set(k, (m.get(k) ?? 0) + 1);
      }
      // NativeHistogramMaxBucketNumber as meshtel applies it: halving until the populated buckets fit, at the
      // observation that crossed the bound (client_golang halves once per observation while over it, so its
      // state can stay over the bound until the next observations; once they come the two agree).
      while (this.max > 0 && this.pos.size + this.neg.size > this.max && this.schema > -4) {
        for (const m of [this.pos, this.neg]) {
          const halved = new Map<number, number>();
          for (const [k, c] of m) halved.set(Math.ceil(k / 2), (halved.get(Math.ceil(k / 2)) ?? 0) + c);
          m.clear();
          for (const [k, c] of halved) m.set(k, c);
        }
        this.schema--;
      }
    }
  }

  const value = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 9000 }) },
    { weight: 3, arbitrary: fc.double({ min: -1e6, max: 1e6, noNaN: true }) },
    { weight: 2, arbitrary: fc.double({ noNaN: false }) },
    { weight: 1, arbitrary: fc.constantFrom(0, -0, 1, 2, 0.5, Infinity, -Infinity, NaN, Number.MIN_VALUE, -Number.MAX_VALUE, 2 ** -128, 8191, 8192) },
  );

  it('has the count, sum, schema, zero bucket and buckets of the model for random sequences, reductions included', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -4, max: 8 }),
        fc.constantFrom(0, 2 ** -128, 1e-3, 1, 5),
        fc.constantFrom(0, 1, 2, 5, 12, 40),
        fc.array(value, { maxLength: 300 }),
        (schema, zeroThreshold, maxBuckets, values) => {
          const f = new Family('h', 'histogram', 'h', 10, DEFAULT_BUCKETS);
          f.native = new NativeHistogramConfig({ schema, zeroThreshold, maxBuckets });
          const s = f.get('', 0) as HistogramSeries;
          const model = new Model(schema, zeroThreshold, maxBuckets);
          for (const v of values) {
            observe(s, f, v);
            model.observe(v);
          }
          const got = readNativeHistogram(s);
          expect(got?.count).toBe(model.count);
          expect(got?.sum).toBe(model.sum);
          expect(got?.schema).toBe(model.schema);
          expect(got?.zeroCount).toBe(model.zero);
          expect(fromSpans(got?.positive as NativeBuckets)).toEqual(model.pos);
          expect(fromSpans(got?.negative as NativeBuckets)).toEqual(model.neg);
          expect(s.native?.populated).toBe(model.pos.size + model.neg.size);
        },
      ),
      { numRuns: 1500 },
    );
  });
});

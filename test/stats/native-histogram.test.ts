import { afterEach, describe, expect, it } from 'vitest';
import { NativeHistogram, NativeHistogramConfig, bucketKey, nativeHistogramProto, readNativeHistogram, type NativeBuckets } from '../../src/stats/native-histogram.js';
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

describe('bucketKey()', () => {
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

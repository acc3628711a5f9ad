/**
 * The native histogram's bounded exemplar set, replaying client_golang's TestNativeHistogramExemplar
 * (prometheus/client_golang `prometheus/histogram_test.go`, main at 89c60c0554699c74fa3d4eec472b98a3108905e3):
 * the same observations in the same order give the same exemplar values, in order.
 */
import { describe, expect, it } from 'vitest';
import { NativeHistogram, NativeHistogramConfig } from '../../src/stats/native-histogram.js';
import { addNativeExemplar } from '../../src/stats/native-exemplars.js';
import type { Exemplar } from '../../src/stats/series.js';
import { ConfigError } from '../../src/core/errors.js';

/** client_golang's `base := time.Now()`, in the exemplars' unit (seconds). */
const BASE = 1_700_000_000;
const ex = (value: number, timestamp: number): Exemplar => ({ traceId: 'a'.repeat(32), value, timestamp });
const values = (n: NativeHistogram): number[] => (n.exemplars ?? []).map((e) => e.value);

describe('NativeHistogram.addExemplar() (client_golang TestNativeHistogramExemplar)', () => {
  it('with NativeHistogramMaxExemplars 3 and a 10 s TTL: fills in value order, then the closest pair or the expired one gives way', () => {
    const n = new NativeHistogram(new NativeHistogramConfig({ maxExemplars: 3, exemplarTtlMs: 10_000 }));
    // "add exemplars to the limit"
    n.addExemplar(ex(1, BASE));
    n.addExemplar(ex(3, BASE + 0.001));
    n.addExemplar(ex(5, BASE + 0.002));
    expect(values(n)).toEqual([1, 3, 5]);
    // "remove exemplar in closest pair, the removed index equals to inserted index"
    n.addExemplar(ex(4, BASE + 0.002));
    expect(values(n)).toEqual([1, 3, 4]);
    // "remove exemplar in closest pair, the removed index is bigger than inserted index"
    n.addExemplar(ex(0, BASE + 0.002));
    expect(values(n)).toEqual([0, 1, 4]);
    // "remove exemplar with oldest timestamp, the removed index is smaller than inserted index" (now + 11 s)
    n.addExemplar(ex(6, BASE + 11));
    expect(values(n)).toEqual([0, 4, 6]);
  });

  it('with a negative TTL (meshtel: the set directly, ttl -1 s): the oldest always gives way', () => {
    const list: Exemplar[] = [];
    const add = (value: number, t: number): number[] => {
      addNativeExemplar(list, ex(value, t), 3, -1);
      return list.map((e) => e.value);
    };
    add(1, BASE);
    add(3, BASE + 0.001);
    expect(add(5, BASE + 0.002)).toEqual([1, 3, 5]);
    expect(add(4, BASE + 1)).toEqual([3, 4, 5]);
    expect(add(0, BASE + 2)).toEqual([0, 4, 5]);
    expect(add(3, BASE + 3)).toEqual([0, 3, 4]);
  });

  it('exemplarTtlMs 0 is that negative TTL for exemplars that are strictly newer', () => {
    const n = new NativeHistogram(new NativeHistogramConfig({ maxExemplars: 3, exemplarTtlMs: 0 }));
    for (const [v, t] of [[1, 0], [3, 0.001], [5, 0.002], [4, 1], [0, 2], [3, 3]] as const) n.addExemplar(ex(v, BASE + t));
    expect(values(n)).toEqual([0, 3, 4]);
  });

  it('keeps none with maxExemplars 0 (client_golang: a negative NativeHistogramMaxExemplars), and none for NaN', () => {
    const off = new NativeHistogram(new NativeHistogramConfig({ maxExemplars: 0 }));
    for (const v of [1, 3, 5]) off.addExemplar(ex(v, BASE));
    expect(off.exemplars).toBeUndefined();
    const on = new NativeHistogram(new NativeHistogramConfig({}));
    on.addExemplar(ex(NaN, BASE));
    expect(on.exemplars).toBeUndefined();
  });

  it('never holds more than maxExemplars (default 10), ordered by value, over a long random run', () => {
    const n = new NativeHistogram(new NativeHistogramConfig({}));
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      n.addExemplar(ex(seed % 10_000, BASE + i));
      const v = values(n);
      expect(v.length).toBe(Math.min(i + 1, 10));
      expect([...v].sort((a, b) => a - b)).toEqual(v);
    }
  });

  it.each([
    [{ maxExemplars: -1 }, 'nativeHistograms.maxExemplars'],
    [{ maxExemplars: 1.5 }, 'nativeHistograms.maxExemplars'],
    [{ exemplarTtlMs: -1 }, 'nativeHistograms.exemplarTtlMs'],
    [{ exemplarTtlMs: Infinity }, 'nativeHistograms.exemplarTtlMs'],
  ])('refuses %j at construction', (o, field) => {
    let err: unknown;
    try {
      new NativeHistogramConfig(o);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('MESHTEL_ERR_INVALID_CONFIG');
    expect((err as ConfigError).message).toContain(field);
  });
});

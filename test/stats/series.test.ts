/**
 * Series storage: bucket placement, escaping, caps.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Family, HistogramSeries, OVERFLOW_LABELS, escapeLabelValue, observe, sanitizeLabelName } from '../../src/stats/series.js';
import { DEFAULT_BUCKETS } from '../../src/stats/definitions.js';

/** Reference: the first bound >= value (Prometheus `le`), else +Inf. */
function naiveSlot(bounds: readonly number[], v: number): number {
  const i = bounds.findIndex((b) => v <= b);
  return i < 0 ? bounds.length : i;
}

describe('observe()', () => {
  const fam = new Family('h', 'histogram', 'h', 10, DEFAULT_BUCKETS);

  it.each([
    [0, 0],
    [0.5, 0],
    [0.7, 1],
    [1, 1],
    [2, 2],
    [5, 2],
    [8191, 12],
    [8192, 12],
    [10_001, 13],
    [3_600_000, 18],
    [3_600_001, 19],
    [-3, 0],
  ])('puts %d in slot %i (le = first bound >= value)', (v, slot) => {
    const s = new HistogramSeries('', DEFAULT_BUCKETS.length, 0);
    expect(observe(s, fam, v)).toBe(slot);
    expect(s.counts[slot]).toBe(1);
    expect(s.count).toBe(1);
    expect(s.sum).toBe(v);
  });

  it('agrees with a linear scan for any value and any bucket layout', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 30 }).map((a) => a.sort((x, y) => x - y)),
        fc.array(fc.oneof(fc.integer({ min: -5, max: 30_000 }), fc.double({ min: 0, max: 30_000, noNaN: true })), { maxLength: 50 }),
        (bounds, values) => {
          const f = new Family('h', 'histogram', 'h', 1, bounds);
          for (const v of values) {
            const s = new HistogramSeries('', bounds.length, 0);
            if (observe(s, f, v) !== naiveSlot(bounds, v)) return false;
          }
          return true;
        },
      ),
    );
  });
});

describe('Family', () => {
  it('returns one overflow series once the cap is reached', () => {
    const f = new Family('c', 'counter', 'c', 2);
    const a = f.get('a="1"', 0);
    f.get('a="2"', 0);
    const o1 = f.get('a="3"', 0);
    const o2 = f.get('a="4"', 0);
    expect(f.get('a="1"', 0)).toBe(a);
    expect(o1).toBe(o2);
    expect(o1.labels).toBe(OVERFLOW_LABELS);
    expect(o1.overflow).toBe(true);
    expect(f.series.size).toBe(2);
  });

  it('expires series last updated before the given epoch, overflow included', () => {
    const f = new Family('c', 'counter', 'c', 1);
    f.get('a="1"', 0);
    f.get('a="2"', 0);
    const kept = f.get('a="1"', 0);
    kept.epoch = 5;
    expect(f.expire(3)).toBe(1); // the overflow series (epoch 0)
    expect(f.series.size).toBe(1);
    expect(f.expiredCount).toBe(1);
  });
});

describe('escapeLabelValue() / sanitizeLabelName()', () => {
  it.each([
    ['plain', 'plain'],
    ['a\\b', 'a\\\\b'],
    ['say "hi"', 'say \\"hi\\"'],
    ['two\nlines', 'two\\nlines'],
    ['ünïcødé', 'ünïcødé'],
  ])('escapes %j as %j', (v, e) => {
    expect(escapeLabelValue(v)).toBe(e);
  });

  it.each([
    ['source_mesh_id', 'source_mesh_id'],
    ['x-user', 'x_user'],
    ['9lives', '_9lives'],
  ])('sanitises tag name %j to %j', (n, e) => {
    expect(sanitizeLabelName(n)).toBe(e);
  });
});

import { describe, expect, it } from 'vitest';
import { createPeerCache } from '../../src/exchange/peer-cache.js';
import type { FoundPeer } from '../../src/exchange/peer-cache.js';
import { decodeBaggage } from '../../src/metadata/baggage.js';
import { isMeshtelError } from '../../src/core/errors.js';

function peer(ns: string): FoundPeer {
  const r = decodeBaggage(`k8s.namespace.name=${ns}`);
  if (!r.ok) throw new Error('fixture');
  return r;
}

describe('PeerCache', () => {
  describe('.get() / .set()', () => {
    it('returns what was stored under an id and counts hits and misses', () => {
      const cache = createPeerCache();
      const p = peer('a');
      cache.set('client', p);
      expect(cache.get('client')).toBe(p);
      expect(cache.get('other')).toBeUndefined();
      expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 1, misses: 1, size: 1 });
    });

    it('never replaces an entry under the same id: the set is refused and counted (issue 11.4)', () => {
      const cache = createPeerCache({ maxEntries: 2 });
      expect(cache.set('a', peer('1'), 'v1')).toBe(true);
      cache.set('b', peer('2'));
      expect(cache.set('a', peer('3'), 'v3')).toBe(false);
      expect(cache.evictions).toBe(0);
      expect(cache.refused).toBe(1);
      expect(cache.get('a')).toMatchObject({ peer: { namespace: '1' } });
      expect(cache.valueOf('a')).toBe('v1');
      expect(cache.valueOf('b')).toBeUndefined();
    });
  });

  describe('eviction', () => {
    it('evicts the oldest quarter when full, as Istio does at 500 entries (client0..999 e2e)', () => {
      const evicted: number[] = [];
      const cache = createPeerCache({ onEvict: (n) => evicted.push(n) });
      expect(cache.maxEntries).toBe(500);
      for (let i = 0; i < 500; i++) cache.set(`client${i}`, peer('ns'));
      expect(cache.size).toBe(500);
      expect(cache.evictions).toBe(0);
      cache.set('client500', peer('ns'));
      expect(evicted).toEqual([125]);
      expect(cache.evictions).toBe(125);
      expect(cache.size).toBe(376);
      expect(cache.get('client0')).toBeUndefined();
      expect(cache.get('client124')).toBeUndefined();
      expect(cache.get('client125')).toBeDefined();
      expect(cache.get('client500')).toBeDefined();
      for (let i = 501; i < 1000; i++) cache.set(`client${i}`, peer('ns'));
      expect(cache.size).toBeLessThanOrEqual(500);
      expect(cache.evictions).toBe(evicted.reduce((a, b) => a + b, 0));
      expect(cache.evictions + cache.size).toBe(1000);
    });

    it('evicts at least one entry for tiny caches', () => {
      const cache = createPeerCache({ maxEntries: 1 });
      cache.set('a', peer('1'));
      cache.set('b', peer('2'));
      expect(cache.size).toBe(1);
      expect(cache.evictions).toBe(1);
      expect(cache.get('b')).toBeDefined();
    });
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects maxEntries %s with MESHTEL_ERR_INVALID_CONFIG', (maxEntries) => {
    expect(() => createPeerCache({ maxEntries })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
    try {
      createPeerCache({ maxEntries });
    } catch (err) {
      expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_CONFIG')).toBe(true);
    }
  });

  it('.clear() empties the cache but keeps the counters', () => {
    const cache = createPeerCache();
    cache.set('a', peer('1'));
    cache.get('a');
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.hits).toBe(1);
  });
});

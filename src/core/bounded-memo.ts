/**
 * A memo for values that are cheap to recompute but built on every request (an undici origin string, a parsed
 * URL): the common case is a handful of keys for the life of the process, but the keys come from traffic
 * (passthrough hosts, any origin an app calls), so the map is bounded and simply starts over when full. A
 * restart costs one recomputation per key; an LRU would cost bookkeeping on every hit for no gain here.
 */

/** Memoised `compute(key)`, holding at most `max` entries. */
export interface BoundedMemo<K, V> {
  get(key: K): V;
  readonly size: number;
}

/** Create a {@link BoundedMemo}; `max` must be a positive integer. */
export function createBoundedMemo<K, V>(max: number, compute: (key: K) => V): BoundedMemo<K, V> {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`bounded memo size must be a positive integer, got ${String(max)}`);
  const map = new Map<K, V>();
  return {
    get(key: K): V {
      let v = map.get(key);
      if (v === undefined) {
        v = compute(key);
        if (map.size >= max) map.clear();
        map.set(key, v);
      }
      return v;
    },
    get size(): number {
      return map.size;
    },
  };
}

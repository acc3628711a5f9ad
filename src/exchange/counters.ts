/**
 * Self-metrics of the exchange filters as plain numbers (STYLE §8: free when nobody looks). The sidecar's
 * self-metrics read them at scrape time as `meshtel_peer_decodes_total` and `meshtel_peer_cache_conflicts_total`
 * (src/sidecar/self-metrics.ts); the request path does a property increment, never a prom-client call.
 * Unknown peers are not counted here: the recorder counts them per request and reporter in
 * `meshtel_peer_unknown_total{reason}`, the one place a reason is exported.
 */

/** Counters one exchange keeps. Mutated in place; read them, do not write them. */
export interface ExchangeCounters {
  /** Full decodes performed (cache misses that carried a value or frame): `meshtel_peer_decodes_total`. */
  decodes: number;
  /**
   * Requests whose id was cached with a different value: decoded for that request only, never stored
   * (`meshtel_peer_cache_conflicts_total`, issue 11.4: one forged value must not take over a peer's id).
   */
  cacheConflicts: number;
}

/** A zeroed set of counters. */
export function createExchangeCounters(): ExchangeCounters {
  return { decodes: 0, cacheConflicts: 0 };
}

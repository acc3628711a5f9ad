/**
 * Self-metrics of the exchange filters as plain numbers (STYLE §8: free when nobody looks). The stats
 * stage reads them at scrape time and exports `meshtel_peer_unknown_total{reason}` and friends; the request
 * path does a property increment, never a prom-client call.
 */
import type { UnknownPeerReason } from '../metadata/types.js';

/** Every {@link UnknownPeerReason}, in a stable order (for pre-creating metric series). */
export const UNKNOWN_PEER_REASONS: readonly UnknownPeerReason[] = Object.freeze([
  'no_header',
  'id_only',
  'bad_base64',
  'not_struct',
  'too_large',
  'too_deep',
  'bad_baggage',
  'not_mx',
  'bad_frame',
  'truncated',
  'mx_disabled',
  'no_peer_proxy',
]);

/** Counters one exchange keeps. Mutated in place; read them, do not write them. */
export interface ExchangeCounters {
  /** Peers found, by how: `headers` (decoded), `cache` (id hit, no decode), `baggage`, `frame` (TCP). */
  readonly found: { headers: number; cache: number; baggage: number; frame: number };
  /** Full decodes performed (cache misses that carried a value or frame). */
  decodes: number;
  /**
   * Requests whose id was cached with a different value: decoded for that request only, never stored
   * (`meshtel_peer_cache_conflicts_total`, issue 11.4: one forged value must not take over a peer's id).
   */
  cacheConflicts: number;
  /** Lookups that ended without a peer, by reason. */
  readonly unknown: Record<UnknownPeerReason, number>;
}

/** A zeroed set of counters, every reason present so exporters can iterate it. */
export function createExchangeCounters(): ExchangeCounters {
  const unknown = {} as Record<UnknownPeerReason, number>;
  for (const r of UNKNOWN_PEER_REASONS) unknown[r] = 0;
  return { found: { headers: 0, cache: 0, baggage: 0, frame: 0 }, decodes: 0, cacheConflicts: 0, unknown };
}

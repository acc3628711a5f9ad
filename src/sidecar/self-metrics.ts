/**
 * meshtel's own proxy metrics: the exchange and proxy keep plain numbers on the request path and these
 * prom-client metrics read them only when scraped (`collect()`), so they cost nothing unobserved
 * (STYLE.md §8). The meshtel Grafana dashboard and the `MeshtelSidecarDown` alert read them.
 */
import { Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { Registry } from 'prom-client';
import type { ExchangeCounters } from '../exchange/counters.js';
import type { PeerCache } from '../exchange/peer-cache.js';
import type { ProxyActivity } from './telemetry-contract.js';

/** What {@link registerSelfMetrics} reads. */
export interface SelfMetricsSources {
  /** The HTTP exchange's peer caches (one per direction), exported with a `direction` label. */
  readonly caches: { readonly inbound: PeerCache; readonly outbound: PeerCache };
  /** The HTTP and TCP exchanges' counters (decodes are summed). */
  readonly exchanges: readonly ExchangeCounters[];
  readonly activity: ProxyActivity;
}

/** Metric names registered here. */
export const SELF_METRICS = Object.freeze({
  CACHE_HITS: 'meshtel_peer_cache_hits_total',
  CACHE_MISSES: 'meshtel_peer_cache_misses_total',
  CACHE_EVICTIONS: 'meshtel_peer_cache_evictions_total',
  CACHE_ENTRIES: 'meshtel_peer_cache_entries',
  CACHE_CONFLICTS: 'meshtel_peer_cache_conflicts_total',
  PEER_DECODES: 'meshtel_peer_decodes_total',
  REQUESTS_ACTIVE: 'meshtel_proxy_requests_active',
});

/** Register the peer-cache, decode and in-flight metrics in `registry` (skipping names already there). */
export function registerSelfMetrics(registry: Registry, sources: SelfMetricsSources): void {
  const { caches, exchanges, activity } = sources;
  // Both directions' caches count as one, as the metric names predate the split (issue 11.4).
  const both = (read: (c: PeerCache) => number) => (): number => read(caches.inbound) + read(caches.outbound);
  // A counter mirrored from a plain number: reset and add the current total at scrape time.
  const mirror = (name: string, help: string, read: () => number): void => {
    if (registry.getSingleMetric(name) !== undefined) return;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  mirror(SELF_METRICS.CACHE_HITS, 'Peer lookups answered from the id-keyed peer cache without decoding.', both((c) => c.hits));
  mirror(SELF_METRICS.CACHE_MISSES, 'Peer lookups by id that missed the peer cache.', both((c) => c.misses));
  mirror(SELF_METRICS.CACHE_EVICTIONS, 'Peers evicted from the full peer cache (Istio evicts a quarter at 500 entries).', both((c) => c.evictions));
  mirror(
    SELF_METRICS.CACHE_CONFLICTS,
    'Requests whose peer id was cached with a different MX value: decoded for that request only, never stored.',
    () => exchanges.reduce((sum, c) => sum + c.cacheConflicts, 0),
  );
  mirror(SELF_METRICS.PEER_DECODES, 'Full decodes of peer metadata (MX header, baggage or TCP frame).', () =>
    exchanges.reduce((sum, c) => sum + c.decodes, 0),
  );
  const gauge = (name: string, help: string, read: () => number): void => {
    if (registry.getSingleMetric(name) !== undefined) return;
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge(SELF_METRICS.CACHE_ENTRIES, 'Peers currently held in the peer cache.', both((c) => c.size));
  gauge(SELF_METRICS.REQUESTS_ACTIVE, 'HTTP requests received by the proxy and not yet finished.', () => activity.active);
}

/**
 * prom-client's process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, ...) for the proxy overhead panels; skipped when the registry has them.
 */
export function registerProcessMetrics(registry: Registry): void {
  if (registry.getSingleMetric('process_cpu_seconds_total') !== undefined) return;
  collectDefaultMetrics({ register: registry });
}

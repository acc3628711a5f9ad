/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsExpiry` (release-1.29) replayed through the public
 * API: with `stats_eviction_interval: 1s` (testdata/bootstrap/stats_expiry.yaml.tmpl) one request is made, and 4 s
 * later the client has no `istio_requests_total` any more (driver.MissingStat) while `istio_build` is still exactly
 * istio_build.yaml. meshtel's equivalent of Envoy's eviction of unused stats is `seriesTtlMs`: a series not updated
 * for that long leaves memory and the exposition. The clock is the recorder's `now` and the sweep timer's ticks are
 * made by hand, so the 4 s pass instantly.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createIstioStats, renderMetricsToString } from '../../../src/index.js';
import { parseExposition } from '../../../src/stats/exposition-parser.js';
import { exchangePeers, expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

interface Files {
  clientNodeMetadata: { value: Record<string, unknown> };
  serverNodeMetadata: { value: Record<string, unknown> };
  istio_build: { value: MetricFamily };
}
const B = fixture<{ branches: Record<string, { commit: string; files: Files }> }>('stats-default.json').branches['release-1.29']!;
/** stats_expiry.yaml.tmpl: stats_eviction_interval 1s; the test sleeps 4 s before reading the stats. */
const EVICTION_MS = 1000;
const SLEEP_MS = 4000;

describe(`stats_plugin TestStatsExpiry (release-1.29@${B.commit.slice(0, 8)})`, () => {
  it('an idle istio_requests_total series is gone after the eviction interval; istio_build stays', async () => {
    const client = fromNodeMetadata(B.files.clientNodeMetadata.value);
    const server = fromNodeMetadata(B.files.serverNodeMetadata.value);
    const { upstream } = exchangePeers(client, server, { n: 1 });
    let now = 0;
    const stats = createIstioStats({ local: client, registry: new Registry(), seriesTtlMs: EVICTION_MS, now: () => now });
    try {
      stats.recordHttp({
        reporter: 'source',
        peer: upstream,
        peerPrincipal: '',
        localPrincipal: '',
        service: { host: 'server.default.svc.cluster.local', name: 'server', namespace: 'default' },
        authority: '127.0.0.1',
        protocol: 'http',
        responseCode: 200,
        responseFlags: 0,
        durationMs: 1,
        requestBytes: 13,
        responseBytes: 13,
      });
      const before = await renderMetricsToString(stats, 'text');
      expect(parseExposition(before).filter((s) => s.name === 'istio_requests_total')).toHaveLength(1);
      // The recorder's sweep timer ticks every max(250 ms, ttl / 4) while the test sleeps.
      for (now = 250; now <= SLEEP_MS; now += 250) stats.sweep();
      const after = await renderMetricsToString(stats, 'text');
      expect(parseExposition(after).filter((s) => s.name === 'istio_requests_total')).toEqual([]);
      expectExactStat(after, B.files.istio_build.value);
    } finally {
      stats.close();
    }
  });
});

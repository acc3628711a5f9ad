/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsDestinationServiceNamespacePrecedence`
 * (release-1.29) replayed through the public API: the client's cluster says the service lives in namespace `server`
 * (`istio.services[0]`) while the server workload, learned by MX, is in `default`. Istio takes
 * `destination_service_namespace` from the cluster metadata and `destination_workload_namespace` from the peer
 * (fixtures/stats-service-namespace.json; the node metadata is stats-default.json's).
 */
import { describe, it } from 'vitest';
import { Registry } from 'prom-client';
import { createIstioStats, renderMetricsToString } from '../../../src/index.js';
import type { ServiceInfo } from '../../../src/index.js';
import { exchangePeers, expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

interface PrecedenceFixture {
  commit: string;
  requestCount: number;
  files: { clusterMetadata: { value: ServiceInfo }; client_request_total_cluster_metadata_precedence: { value: MetricFamily } };
}
const F = fixture<PrecedenceFixture>('stats-service-namespace.json');
const NODES = fixture<{ branches: Record<string, { files: { clientNodeMetadata: { value: Record<string, unknown> }; serverNodeMetadata: { value: Record<string, unknown> } } }> }>(
  'stats-default.json',
).branches['release-1.29']!.files;

describe(`stats_plugin TestStatsDestinationServiceNamespacePrecedence (release-1.29@${F.commit.slice(0, 8)})`, () => {
  it('destination_service_namespace comes from the cluster metadata, the workload namespace from the peer', async () => {
    const client = fromNodeMetadata(NODES.clientNodeMetadata.value);
    const server = fromNodeMetadata(NODES.serverNodeMetadata.value);
    const { upstream } = exchangePeers(client, server, { n: F.requestCount });
    const stats = createIstioStats({ local: client, registry: new Registry() });
    try {
      for (let i = 0; i < F.requestCount; i++) {
        stats.recordHttp({
          reporter: 'source',
          peer: upstream,
          peerPrincipal: '',
          localPrincipal: '',
          service: F.files.clusterMetadata.value,
          authority: '127.0.0.1',
          protocol: 'http',
          responseCode: 200,
          responseFlags: 0,
          durationMs: 1,
          requestBytes: 100,
          responseBytes: 100,
        });
      }
      expectExactStat(await renderMetricsToString(stats, 'text'), F.files.client_request_total_cluster_metadata_precedence.value);
    } finally {
      stats.close();
    }
  });
});

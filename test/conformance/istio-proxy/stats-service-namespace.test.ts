/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsDestinationServiceNamespacePrecedence`
 * (release-1.29) replayed through the public API: the client's cluster says the service lives in namespace `server`
 * (`istio.services[0]`) while the server workload, learned by MX, is in `default`. Istio takes
 * `destination_service_namespace` from the cluster metadata and `destination_workload_namespace` from the peer
 * (fixtures/stats-service-namespace.json; the node metadata is stats-default.json's).
 */
import { describe, it } from 'vitest';
import type { ServiceInfo } from '../../../src/index.js';
import { DEFAULT_129, driverRequest, exchangePeers, expectExactStat, fixture, fromNodeMetadata, renderRecorded } from './support.js';
import type { MetricFamily } from './support.js';

interface PrecedenceFixture {
  commit: string;
  requestCount: number;
  files: { clusterMetadata: { value: ServiceInfo }; client_request_total_cluster_metadata_precedence: { value: MetricFamily } };
}
const F = fixture<PrecedenceFixture>('stats-service-namespace.json');
const NODES = DEFAULT_129;

describe(`stats_plugin TestStatsDestinationServiceNamespacePrecedence (release-1.29@${F.commit.slice(0, 8)})`, () => {
  it('destination_service_namespace comes from the cluster metadata, the workload namespace from the peer', async () => {
    const client = fromNodeMetadata(NODES.clientNodeMetadata.value);
    const server = fromNodeMetadata(NODES.serverNodeMetadata.value);
    const { upstream } = exchangePeers(client, server, { n: F.requestCount });
    const text = await renderRecorded({ local: client }, (stats) => {
      for (let i = 0; i < F.requestCount; i++) stats.recordHttp(driverRequest('source', upstream, { service: F.files.clusterMetadata.value }));
    });
    expectExactStat(text, F.files.client_request_total_cluster_metadata_precedence.value);
  });
});

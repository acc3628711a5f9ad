/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsEndpointLabels` (release-1.29) replayed through
 * the public API (fixtures/stats-endpoint-labels.json; client node metadata from stats-default.json): no metadata
 * exchange, so the client's upstream peer is the endpoint's `istio.workload` metadata, parsed by the codec the
 * sidecar's registry uses, and the service is the cluster's `istio.services[0]`.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createIstioStats, parseEndpointMetadata, renderMetricsToString } from '../../../src/index.js';
import type { ServiceInfo } from '../../../src/index.js';
import { expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

interface EndpointLabelsFixture {
  commit: string;
  requestCount: number;
  files: {
    clientBootstrap: { value: { service: ServiceInfo; endpointWorkload: string } };
    client_request_total_endpoint_labels: { value: MetricFamily };
  };
}
const F = fixture<EndpointLabelsFixture>('stats-endpoint-labels.json');
const CLIENT_NODE = fixture<{ branches: Record<string, { files: { clientNodeMetadata: { value: Record<string, unknown> } } }> }>('stats-default.json').branches['release-1.29']!
  .files.clientNodeMetadata.value;

describe(`stats_plugin TestStatsEndpointLabels (release-1.29@${F.commit.slice(0, 8)})`, () => {
  it('the client labels the destination from the endpoint metadata', async () => {
    const peer = parseEndpointMetadata(F.files.clientBootstrap.value.endpointWorkload);
    expect(peer).toBeDefined();
    const stats = createIstioStats({ local: fromNodeMetadata(CLIENT_NODE), registry: new Registry() });
    try {
      for (let i = 0; i < F.requestCount; i++) {
        stats.recordHttp({
          reporter: 'source',
          peer: peer!,
          peerPrincipal: '',
          localPrincipal: '',
          service: F.files.clientBootstrap.value.service,
          authority: '127.0.0.1',
          protocol: 'http',
          responseCode: 200,
          responseFlags: 0,
          durationMs: 1,
          requestBytes: 0,
          responseBytes: 0,
        });
      }
      expectExactStat(await renderMetricsToString(stats, 'text'), F.files.client_request_total_endpoint_labels.value);
    } finally {
      stats.close();
    }
  });
});

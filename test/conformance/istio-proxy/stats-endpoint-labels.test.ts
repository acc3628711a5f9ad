/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsEndpointLabels` (release-1.29) replayed through
 * the public API (fixtures/stats-endpoint-labels.json; client node metadata from stats-default.json): no metadata
 * exchange, so the client's upstream peer is the endpoint's `istio.workload` metadata, parsed by the codec the
 * sidecar's registry uses, and the service is the cluster's `istio.services[0]`.
 */
import { describe, expect, it } from 'vitest';
import { parseEndpointMetadata } from '../../../src/index.js';
import type { ServiceInfo } from '../../../src/index.js';
import { DEFAULT_129, driverRequest, expectExactStat, fixture, fromNodeMetadata, renderRecorded } from './support.js';
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
const CLIENT_NODE = DEFAULT_129.clientNodeMetadata.value;

describe(`stats_plugin TestStatsEndpointLabels (release-1.29@${F.commit.slice(0, 8)})`, () => {
  it('the client labels the destination from the endpoint metadata', async () => {
    const peer = parseEndpointMetadata(F.files.clientBootstrap.value.endpointWorkload);
    expect(peer).toBeDefined();
    const text = await renderRecorded({ local: fromNodeMetadata(CLIENT_NODE) }, (stats) => {
      for (let i = 0; i < F.requestCount; i++) stats.recordHttp(driverRequest('source', peer!, { service: F.files.clientBootstrap.value.service, requestBytes: 0, responseBytes: 0 }));
    });
    expectExactStat(text, F.files.client_request_total_endpoint_labels.value);
  });
});

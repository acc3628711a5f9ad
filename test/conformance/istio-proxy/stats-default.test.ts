/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsPayload/Default` replayed through the public API,
 * for each payload generation: release-1.23 (flat node), release-1.24 (reduced, also 1.25–1.28) and release-1.29.
 * The client's and the server's metadata are the upstream node metadata; each side sends its MX header in the
 * profile that branch's proxy sends, the other side decodes it, and 10 requests are recorded by both reporters.
 * Expected series: testdata/metric/{client,server}_request_total.yaml.tmpl and istio_build.yaml, resolved with
 * RequestCount=10 (fixtures/stats-default.json).
 */
import { describe, it } from 'vitest';
import type { PayloadProfile } from '../../../src/index.js';
import { driverRequest, exchangePeers, expectExactStat, fixture, fromNodeMetadata, renderRecorded } from './support.js';
import type { MetricFamily } from './support.js';

interface BranchFixture {
  readonly commit: string;
  readonly payloadProfile: PayloadProfile;
  readonly files: {
    readonly clientNodeMetadata: { readonly value: Record<string, unknown> };
    readonly serverNodeMetadata: { readonly value: Record<string, unknown> };
    readonly client_request_total: { readonly value: MetricFamily };
    readonly server_request_total: { readonly value: MetricFamily };
    readonly istio_build: { readonly value: MetricFamily };
  };
}
const FIXTURE = fixture<{ branches: Record<string, BranchFixture> }>('stats-default.json');

describe.each(Object.entries(FIXTURE.branches))('stats_plugin Default, %s payload', (branch, f) => {
  const client = fromNodeMetadata(f.files.clientNodeMetadata.value);
  const server = fromNodeMetadata(f.files.serverNodeMetadata.value);
  const profile = f.payloadProfile;

  it(`both reporters emit exactly Istio's istio_requests_total (${profile}, ${branch}@${f.commit.slice(0, 8)})`, async () => {
    const { upstream, downstream } = exchangePeers(client, server, { profile });
    const clientText = await renderRecorded({ local: client }, (s) => {
      for (let i = 0; i < 10; i++) s.recordHttp(driverRequest('source', upstream));
    });
    const serverText = await renderRecorded({ local: server }, (s) => {
      for (let i = 0; i < 10; i++) s.recordHttp(driverRequest('destination', downstream));
    });
    expectExactStat(clientText, f.files.client_request_total.value);
    expectExactStat(serverText, f.files.server_request_total.value);
  });

  it('istio_build carries the proxy tag (istio_build.yaml)', async () => {
    expectExactStat(await renderRecorded({ local: server }, () => undefined), f.files.istio_build.value);
  });
});

/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsPayload/UseHostHeader` and
 * `TestStatsPayload/DisableHostHeader` (release-1.29) replayed through the public API
 * (fixtures/stats-host-header.json; node metadata from stats-default.json). The client's cluster carries no
 * `istio.services`, so the destination service comes from the Host header (`127.0.0.1:<ClientPort>`) unless
 * `disable_host_header_fallback` (meshtel `disableHostHeaderFallback`) is set; then the client reports `unknown` and
 * the server, whose inbound cluster metadata is elided too, its own canonical service.
 */
import { describe, it } from 'vitest';
import type { PeerMetadata, Reporter, WorkloadMetadata } from '../../../src/index.js';
import { DEFAULT_129, driverRequest, exchangePeers, expectExactStat, fixture, fromNodeMetadata, renderRecorded } from './support.js';
import type { MetricFamily } from './support.js';

interface HostHeaderFixture {
  commit: string;
  requestCount: number;
  clientPort: number;
  files: Record<'host_header_fallback' | 'client_disable_host_header_fallback' | 'server_disable_host_header_fallback', { value: MetricFamily }>;
}
const F = fixture<HostHeaderFixture>('stats-host-header.json');
const NODES = DEFAULT_129;
const client = fromNodeMetadata(NODES.clientNodeMetadata.value);
const server = fromNodeMetadata(NODES.serverNodeMetadata.value);

/** `requestCount` requests recorded by one reporter with no cluster service, rendered as text. */
function record(local: WorkloadMetadata, reporter: Reporter, peer: PeerMetadata, disableHostHeaderFallback: boolean): Promise<string> {
  const attrs = driverRequest(reporter, peer, { service: null, authority: `127.0.0.1:${F.clientPort}` });
  return renderRecorded({ local, disableHostHeaderFallback }, (stats) => {
    for (let i = 0; i < F.requestCount; i++) stats.recordHttp(attrs);
  });
}

describe(`stats_plugin TestStatsPayload host header fallback (release-1.29@${F.commit.slice(0, 8)})`, () => {
  const { upstream, downstream } = exchangePeers(client, server, { n: F.requestCount });

  it('UseHostHeader: the client names the destination service after the Host header', async () => {
    expectExactStat(await record(client, 'source', upstream, false), F.files.host_header_fallback.value);
  });

  it('DisableHostHeader: the client says unknown, the server its own canonical service', async () => {
    expectExactStat(await record(client, 'source', upstream, true), F.files.client_disable_host_header_fallback.value);
    expectExactStat(await record(server, 'destination', downstream, true), F.files.server_disable_host_header_fallback.value);
  });
});

/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsGrpcStream` (release-1.29) replayed through the
 * public API (fixtures/stats-grpc-stream.json; node metadata from stats-default.json): one bidirectional stream,
 * message counters read while it is open (3 requests, 13 responses: what the sidecar's periodic report records,
 * istio_stats.cc onTimer) and after it closed (8 and 27). The client's stats config adds `configurable_metric_a =
 * xds.node.metadata.LABELS.version` to every metric, applied here as the Telemetry override istiod generates.
 */
import { describe, it } from 'vitest';
import { Registry } from 'prom-client';
import { createIstioStats, renderMetricsToString } from '../../../src/index.js';
import type { HttpStreamAttributes, IstioStats, PeerMetadata, Reporter } from '../../../src/index.js';
import { DEFAULT_129, driverRequest, exchangePeers, expectExactStat, fixture, fromNodeMetadata, telemetryOfPluginConfig } from './support.js';
import type { MetricFamily, StatsPluginConfig } from './support.js';

type Families = Record<'client_request_messages' | 'client_response_messages' | 'server_request_messages' | 'server_response_messages', { value: MetricFamily }>;
interface GrpcStreamFixture {
  commit: string;
  configs: { client: { value: StatsPluginConfig }; server: { value: StatsPluginConfig } };
  batches: number[][];
  steps: Array<{ families: Families }>;
}
const F = fixture<GrpcStreamFixture>('stats-grpc-stream.json');
const NODES = DEFAULT_129;
/** The stream's end-of-stream attributes: gRPC, no body bytes counted (the messages are what is measured). */
const attrs = (reporter: Reporter, peer: PeerMetadata): HttpStreamAttributes => driverRequest(reporter, peer, { protocol: 'grpc', requestBytes: 0, responseBytes: 0 });

describe(`stats_plugin TestStatsGrpcStream (release-1.29@${F.commit.slice(0, 8)})`, () => {
  it('message counters per batch, during the stream and after it closed, on both reporters', async () => {
    const client = fromNodeMetadata(NODES.clientNodeMetadata.value);
    const server = fromNodeMetadata(NODES.serverNodeMetadata.value);
    const { upstream, downstream } = exchangePeers(client, server, { n: 1 });
    const c = telemetryOfPluginConfig(F.configs.client.value, 'CLIENT');
    const s = telemetryOfPluginConfig(F.configs.server.value, 'SERVER');
    const clientStats = createIstioStats({ local: client, registry: new Registry(), telemetry: c.telemetry });
    const serverStats = createIstioStats({ local: server, registry: new Registry(), telemetry: s.telemetry });
    const sides: Array<[IstioStats, HttpStreamAttributes, 'client' | 'server']> = [
      [clientStats, attrs('source', upstream), 'client'],
      [serverStats, attrs('destination', downstream), 'server'],
    ];
    try {
      for (const [i, batch] of F.batches.entries()) {
        // Each request message n is answered with n response messages (the driver's gRPC backend).
        const responses = batch.reduce((sum, n) => sum + n, 0);
        for (const [stats, a] of sides) stats.recordGrpcMessages(a, batch.length, responses);
        const want = F.steps[i]!.families;
        for (const [stats, , side] of sides) {
          const text = await renderMetricsToString(stats, 'text');
          expectExactStat(text, want[`${side}_request_messages`].value);
          expectExactStat(text, want[`${side}_response_messages`].value);
        }
      }
    } finally {
      clientStats.close();
      serverStats.close();
    }
  });
});

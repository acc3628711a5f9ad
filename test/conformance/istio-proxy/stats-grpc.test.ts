/**
 * istio/proxy test/envoye2e/stats_plugin/stats_test.go `TestStatsGrpc` (release-1.29) replayed through the public
 * API (fixtures/stats-grpc.json; node metadata from stats-default.json): 10 unary calls answered with grpc-status 7
 * in the trailers and HTTP 200. Both reporters must say `request_protocol="grpc"`, `response_code="200"`,
 * `grpc_response_status="7"`, with the Default scenario's peer labels.
 */
import { describe, it } from 'vitest';
import type { PeerMetadata, Reporter, WorkloadMetadata } from '../../../src/index.js';
import { DEFAULT_129, driverRequest, exchangePeers, expectExactStat, fixture, fromNodeMetadata, renderRecorded } from './support.js';
import type { MetricFamily } from './support.js';

interface GrpcFixture {
  commit: string;
  requestCount: number;
  grpcStatus: string;
  files: Record<'client_request_total' | 'server_request_total', { value: MetricFamily }>;
}
const F = fixture<GrpcFixture>('stats-grpc.json');
const NODES = DEFAULT_129;
/** 10 unary calls recorded by one reporter, rendered as text. */
function record(local: WorkloadMetadata, reporter: Reporter, peer: PeerMetadata): Promise<string> {
  const attrs = driverRequest(reporter, peer, { protocol: 'grpc', grpcStatus: F.grpcStatus, requestBytes: 10, responseBytes: 10 });
  return renderRecorded({ local }, (stats) => {
    for (let i = 0; i < F.requestCount; i++) stats.recordHttp(attrs);
  });
}

describe(`stats_plugin TestStatsGrpc (release-1.29@${F.commit.slice(0, 8)})`, () => {
  it('both reporters emit exactly Istio\'s istio_requests_total for grpc-status 7', async () => {
    const client = fromNodeMetadata(NODES.clientNodeMetadata.value);
    const server = fromNodeMetadata(NODES.serverNodeMetadata.value);
    const { upstream, downstream } = exchangePeers(client, server, { n: F.requestCount });
    expectExactStat(await record(client, 'source', upstream), F.files.client_request_total.value);
    expectExactStat(await record(server, 'destination', downstream), F.files.server_request_total.value);
  });
});

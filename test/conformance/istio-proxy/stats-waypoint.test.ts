/**
 * Waypoint reporter scenarios of istio/proxy test/envoye2e/stats_plugin/stats_test.go (release-1.29) through the
 * public API (label derivation): `TestStatsServerWaypointProxy` (downstream peer from the client sidecar's MX
 * headers, upstream peer from workload discovery) and `TestStatsServerWaypointProxyCONNECT` with the backend's
 * metadata and with a mostly empty one (both peers from workload discovery, mTLS). The waypoint's istio_stats
 * is `reporter: SERVER_GATEWAY` (server_waypoint_proxy_config.yaml); its destination_* labels come from the upstream
 * workload and the cluster's service, `unknown` when empty. Data: fixtures/stats-waypoint.json.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createHttpMetadataExchange, createIstioStats, nodeHeaderGetter, nodeHeaderRemover, nodeHeaderSetter, renderMetricsToString } from '../../../src/index.js';
import type { HttpStreamAttributes, NodeHeaders, PeerMetadata } from '../../../src/index.js';
import { expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

interface Waypoint {
  commit: string;
  files: {
    server_waypoint_proxy_config: { value: { reporter: string } };
    server_waypoint_proxy_node_metadata: { value: Record<string, unknown> };
    server_waypoint_proxy_request_total: { value: MetricFamily };
    server_waypoint_proxy_connect_request_total: { value: MetricFamily };
    server_waypoint_proxy_connect_emptymeta_request_total: { value: MetricFamily };
  };
  workloadDiscovery: { values: Record<'BackendMetadata' | 'EmptyMetadata' | 'ProductPageMetadata', Record<string, string>> };
}
const W = fixture<Waypoint>('stats-waypoint.json');
const CLIENT_NODE = fixture<{ branches: Record<string, { files: { clientNodeMetadata: { value: Record<string, unknown> } } }> }>('stats-default.json')
  .branches['release-1.29']!.files.clientNodeMetadata.value;
const WAYPOINT = fromNodeMetadata({ NAME: 'waypoint', ...W.files.server_waypoint_proxy_node_metadata.value });
/** testdata/cluster/server.yaml.tmpl istio.services[0], the cluster the waypoint sends to. */
const SERVICE = { host: 'server.default.svc.cluster.local', name: 'server', namespace: 'default' };

/**
 * A workload-discovery entry (istio.workload.Workload) as istio/proxy's workload_discovery `convert` turns it into a
 * peer: app/version are the canonical name/revision, the identity is built from trust domain, namespace and service
 * account with the defaults cluster.local / default / default, the type defaults to deployment.
 */
function fromWorkloadDiscovery(w: Record<string, string>): PeerMetadata {
  const ns = w.namespace || 'default';
  return Object.freeze({
    name: w.name ?? '',
    namespace: ns,
    cluster: w.cluster_id ?? '',
    workload: w.workload_name ?? '',
    workloadType: 'deployment',
    canonicalService: w.canonical_name ?? '',
    canonicalRevision: w.canonical_revision ?? '',
    app: w.canonical_name ?? '',
    version: w.canonical_revision ?? '',
    identity: `spiffe://${w.trust_domain || 'cluster.local'}/ns/${ns}/sa/${w.service_account || 'default'}`,
    region: '',
    zone: '',
    labels: {},
  });
}

function attrs(peer: PeerMetadata | null, upstreamPeer: PeerMetadata | null, mtls: boolean): HttpStreamAttributes {
  return {
    reporter: 'waypoint',
    peer,
    upstreamPeer,
    // terminate_connect.yaml.tmpl: the client's certificate (testdata/certs) names sa/client.
    peerPrincipal: mtls ? 'spiffe://cluster.local/ns/default/sa/client' : '',
    localPrincipal: mtls ? 'spiffe://cluster.local/ns/default/sa/server' : '',
    service: SERVICE,
    authority: '127.0.0.1',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: 1,
    requestBytes: 0,
    responseBytes: 0,
  };
}

async function waypointSeries(a: HttpStreamAttributes): Promise<string> {
  // server_waypoint_proxy_config.yaml: reporter SERVER_GATEWAY, i.e. meshtel's reporter `waypoint`.
  expect(W.files.server_waypoint_proxy_config.value.reporter).toBe('SERVER_GATEWAY');
  const stats = createIstioStats({ local: WAYPOINT, registry: new Registry(), disableHostHeaderFallback: true });
  try {
    for (let i = 0; i < 10; i++) stats.recordHttp(a);
    return await renderMetricsToString(stats, 'text');
  } finally {
    stats.close();
  }
}

describe(`waypoint reporter (release-1.29@${W.commit.slice(0, 8)})`, () => {
  it('TestStatsServerWaypointProxy: source from MX, destination from the backend workload and its cluster', async () => {
    const client = fromNodeMetadata(CLIENT_NODE);
    const cx = createHttpMetadataExchange({ local: client, nodeId: 'client' });
    const wx = createHttpMetadataExchange({ local: WAYPOINT, nodeId: 'waypoint' });
    const req: NodeHeaders = {};
    cx.injectRequest(req, nodeHeaderSetter);
    const inbound = wx.extractRequest(req, nodeHeaderGetter, nodeHeaderRemover);
    if (!inbound.result.ok) throw new Error(inbound.result.reason);
    const backend = fromWorkloadDiscovery(W.workloadDiscovery.values.BackendMetadata);
    expectExactStat(await waypointSeries(attrs(inbound.result.peer, backend, false)), W.files.server_waypoint_proxy_request_total.value);
  });

  it('TestStatsServerWaypointProxyCONNECT/BackendMetadata: both peers from workload discovery, mTLS', async () => {
    const source = fromWorkloadDiscovery(W.workloadDiscovery.values.ProductPageMetadata);
    const backend = fromWorkloadDiscovery(W.workloadDiscovery.values.BackendMetadata);
    // The productpage entry has no canonical name, revision or cluster: unknown / latest / unknown, as upstream.
    expectExactStat(await waypointSeries(attrs(source, backend, true)), W.files.server_waypoint_proxy_connect_request_total.value);
  });

  it('TestStatsServerWaypointProxyCONNECT/EmptyMetadata: empty upstream fields are unknown, the revision too', async () => {
    const source = fromWorkloadDiscovery(W.workloadDiscovery.values.ProductPageMetadata);
    const empty = fromWorkloadDiscovery(W.workloadDiscovery.values.EmptyMetadata);
    expectExactStat(await waypointSeries(attrs(source, empty, true)), W.files.server_waypoint_proxy_connect_emptymeta_request_total.value);
  });
});

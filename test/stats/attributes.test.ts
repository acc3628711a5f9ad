/**
 * Envoy's attribute vocabulary in tag expressions (issue 10.2): `xds.*` and `filter_state.*_peer` values and their
 * absence as Envoy has them (envoy expr/context.cc, istio/proxy metadata_object.cc serializeAsProto), next to
 * meshtel's aliases.
 */
import { describe, expect, it } from 'vitest';
import { createScope } from '../../src/stats/attributes.js';
import { compileExpression } from '../../src/stats/expression.js';
import type { ConnectionAttributes, HttpStreamAttributes } from '../../src/stats/types.js';
import { CATALOG, CATALOG_SVC, INGRESS_GW, WEBAPP, peer } from './fixtures.js';

const outbound: ConnectionAttributes = {
  reporter: 'source',
  peer: CATALOG,
  peerPrincipal: '',
  localPrincipal: '',
  service: CATALOG_SVC,
  clusterName: 'outbound|80||catalog.istioinaction.svc.cluster.local',
  routeName: 'default',
};

/** An HTTP stream over `c` (the recorder's `recordHttp`). */
function stream(c: ConnectionAttributes): HttpStreamAttributes {
  return { ...c, authority: 'catalog', protocol: 'http', responseCode: 200, responseFlags: 0, durationMs: 1, requestBytes: 0, responseBytes: 0 };
}

/** `expr` on an HTTP stream over `c`. */
function ev(expr: string, c: ConnectionAttributes): string {
  return compileExpression(expr).evaluate(createScope(WEBAPP, c, stream(c), c.reporter));
}

/** `expr` on a TCP connection `c` (the recorder's `openTcp`: no stream). */
function evTcp(expr: string, c: ConnectionAttributes): string {
  return compileExpression(expr).evaluate(createScope(WEBAPP, c, undefined, c.reporter));
}

describe('Envoy attribute vocabulary', () => {
  it.each([
    ["xds.node.metadata['WORKLOAD_NAME']", 'webapp'],
    ['xds.node.metadata.LABELS.app', 'webapp'],
    ["xds.node.metadata['CLUSTER_ID']", 'Kubernetes'],
    ['xds.node.id', 'sidecar~10.0.0.1~webapp-7685bcb84-hp2kl.istioinaction~istioinaction.svc.cluster.local'],
    ['xds.cluster_name', 'outbound|80||catalog.istioinaction.svc.cluster.local'],
    ['xds.route_name', 'default'],
    ['xds.cluster_metadata.filter_metadata.istio.services[0].host', 'catalog.istioinaction.svc.cluster.local'],
    ['filter_state.upstream_peer.service', 'catalog'],
    ['filter_state.upstream_peer.type', 'deployment'],
    ["filter_state['upstream_peer'].workload", 'catalog'],
    ['filter_state.upstream_peer.name', 'catalog-6cf4b97d-7jnvx'],
    // meshtel's aliases
    ["node.metadata['NAMESPACE']", 'istioinaction'],
    ['upstream_peer.revision', 'v1'],
  ])('%s = %s on the client', (expr, want) => {
    expect(ev(expr, outbound)).toBe(want);
  });

  it('absent attributes and fields are unknown, as an Envoy evaluation error is', () => {
    // Client side: no downstream peer; empty peer fields are absent keys in the Struct, not "".
    expect(ev('filter_state.downstream_peer.app', outbound)).toBe('unknown');
    expect(ev('filter_state.upstream_peer.identity', outbound)).toBe('unknown');
    expect(ev("xds.node.metadata['OWNER']", outbound)).toBe('unknown');
    // The alias keeps '' for an absent field.
    expect(ev('upstream_peer.identity', outbound)).toBe('');
    // No cluster (no route, NR): neither cluster nor route attributes.
    const nr = { ...outbound, service: null, clusterName: '', routeName: undefined };
    expect(ev('xds.cluster_name', nr)).toBe('unknown');
    expect(ev('xds.route_name', nr)).toBe('unknown');
    expect(ev('xds.cluster_metadata.filter_metadata', nr)).toBe('unknown');
    // Passthrough: a cluster without istio metadata.
    const pt = { ...outbound, service: null, clusterName: 'PassthroughCluster', routeName: 'allow_any' };
    expect(ev('xds.cluster_name', pt)).toBe('PassthroughCluster');
    expect(ev('xds.cluster_metadata.filter_metadata.istio.services[0].name', pt)).toBe('unknown');
  });

  it('peer struct: name only with a cluster, type only when known, labels without the field labels', () => {
    const p = peer({
      name: 'pod-1',
      workload: 'w',
      workloadType: 'unknown',
      app: 'a',
      labels: { app: 'a', 'service.istio.io/canonical-name': 'a', role: 'db' },
    });
    const c: ConnectionAttributes = { reporter: 'destination', peer: p, peerPrincipal: '', localPrincipal: '', service: null };
    expect(ev('filter_state.downstream_peer.workload', c)).toBe('w');
    expect(ev('filter_state.downstream_peer.name', c)).toBe('unknown');
    expect(ev('filter_state.downstream_peer.type', c)).toBe('unknown');
    expect(ev("filter_state.downstream_peer.labels['role']", c)).toBe('db');
    expect(ev("filter_state.downstream_peer.labels['app']", c)).toBe('unknown');
    expect(ev('size(filter_state.downstream_peer.labels)', c)).toBe('1');
    expect(ev('filter_state.upstream_peer.app', c)).toBe('unknown');
  });

  it('waypoint: downstream and upstream peers both', () => {
    const c: ConnectionAttributes = { reporter: 'waypoint', peer: INGRESS_GW, upstreamPeer: CATALOG, peerPrincipal: '', localPrincipal: '', service: CATALOG_SVC };
    expect(ev('filter_state.downstream_peer.workload', c)).toBe('istio-ingressgateway');
    expect(ev('filter_state.upstream_peer.workload', c)).toBe('catalog');
  });

  // istio_stats.cc reportHelper: a TCP client reads its peer from the upstream connection's filter state (where the
  // upstream TCP MX filter writes it) but evaluates CEL on the downstream connection's, which has no upstream_peer
  // (istio/proxy TestTCPMXAdditionalLabels: client `role` = unknown). The TCP server's MX filter writes the
  // downstream connection's own filter state, so its downstream_peer is seen.
  it('TCP: no filter_state.upstream_peer on the client, downstream_peer on the server', () => {
    const role = peer({ workload: 'db', labels: { role: 'server' } });
    const client: ConnectionAttributes = { ...outbound, peer: role };
    expect(evTcp("filter_state.upstream_peer.labels['role']", client)).toBe('unknown');
    expect(evTcp('filter_state.upstream_peer.workload', client)).toBe('unknown');
    expect(ev("filter_state.upstream_peer.labels['role']", client)).toBe('server');
    // meshtel's alias still names the peer the labels come from.
    expect(evTcp('upstream_peer.workload', client)).toBe('db');
    const server: ConnectionAttributes = { reporter: 'destination', peer: peer({ workload: 'web', labels: { role: 'client' } }), peerPrincipal: '', localPrincipal: '', service: null };
    expect(evTcp("filter_state.downstream_peer.labels['role']", server)).toBe('client');
    expect(evTcp('filter_state.upstream_peer.workload', server)).toBe('unknown');
  });
});

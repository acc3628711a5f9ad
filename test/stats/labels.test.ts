/**
 * Per-reporter label derivation (spec §4 table; istio/proxy istio_stats.cc populatePeerInfo).
 */
import { describe, expect, it } from 'vitest';
import { derivePeerLabels, localLabelValues, namespaceFromSpiffe } from '../../src/stats/labels.js';
import { HTTP_LABELS } from '../../src/stats/definitions.js';
import type { ConnectionAttributes } from '../../src/stats/types.js';
import { CATALOG, CATALOG_SAN, CATALOG_SVC, EMPTY_PEER, INGRESS_GW, GW_SAN, WEBAPP, WEBAPP_SAN, WEBAPP_SVC, local, peer } from './fixtures.js';

const LOCAL = localLabelValues(WEBAPP);

function derive(a: Partial<ConnectionAttributes> & Pick<ConnectionAttributes, 'reporter'>, opts: { fallback?: boolean; authority?: string } = {}): Record<string, string> {
  const out = new Array<string>(25).fill('');
  const attrs: ConnectionAttributes = { peer: null, peerPrincipal: '', localPrincipal: '', service: null, ...a };
  derivePeerLabels(LOCAL, attrs, opts.fallback ?? false, opts.authority ?? '', out);
  const r: Record<string, string> = {};
  HTTP_LABELS.forEach((l, i) => {
    if (i < 20 || l === 'connection_security_policy') r[l] = out[i] as string;
  });
  return r;
}

describe('derivePeerLabels()', () => {
  describe('reporter=source (client sidecar, gateway)', () => {
    it('takes source_* from local metadata raw and destination_* from the peer', () => {
      const l = derive({ reporter: 'source', peer: CATALOG, peerPrincipal: CATALOG_SAN, localPrincipal: WEBAPP_SAN, service: CATALOG_SVC });
      expect(l).toMatchObject({
        reporter: 'source',
        source_workload: 'webapp',
        source_version: '',
        source_principal: WEBAPP_SAN,
        destination_workload: 'catalog',
        destination_principal: CATALOG_SAN,
        destination_service: 'catalog.istioinaction.svc.cluster.local',
        destination_service_name: 'catalog',
        destination_service_namespace: 'istioinaction',
        destination_canonical_revision: 'v1',
        connection_security_policy: 'unknown',
      });
    });

    it.each([
      ['no peer, no TLS, no service', {}, { destination_workload: 'unknown', destination_workload_namespace: 'unknown', destination_principal: 'unknown', destination_app: 'unknown', destination_version: 'unknown', destination_service: 'unknown', destination_canonical_service: 'unknown', destination_canonical_revision: 'latest', destination_service_name: 'unknown', destination_service_namespace: 'unknown', destination_cluster: 'unknown', source_principal: 'unknown' }],
      ['garbled peer (all fields empty)', { peer: EMPTY_PEER }, { destination_workload: 'unknown', destination_canonical_revision: 'latest', destination_cluster: 'unknown' }],
      ['peer IDENTITY without TLS', { peer: peer({ identity: 'spiffe://td/ns/a/sa/b' }) }, { destination_principal: 'spiffe://td/ns/a/sa/b' }],
      ['SAN namespace wins over peer namespace', { peer: peer({ namespace: 'peer-ns' }), peerPrincipal: 'spiffe://td/ns/san-ns/sa/x' }, { destination_workload_namespace: 'san-ns', destination_service_namespace: 'san-ns' }],
      ['peer namespace without SAN', { peer: peer({ namespace: 'peer-ns' }) }, { destination_workload_namespace: 'peer-ns', destination_service_namespace: 'peer-ns' }],
      ['service namespace wins for destination_service_namespace', { peer: peer({ namespace: 'peer-ns' }), service: CATALOG_SVC }, { destination_service_namespace: 'istioinaction', destination_workload_namespace: 'peer-ns' }],
      ['service without a name uses the first DNS label', { service: { host: 'reviews.default.svc.cluster.local', name: '', namespace: 'default' } }, { destination_service_name: 'reviews' }],
    ] as const)('%s', (_name, attrs, expected) => {
      expect(derive({ reporter: 'source', ...attrs })).toMatchObject(expected);
    });

    it.each([
      ['fallback on, no service: Host verbatim with port', { fallback: true, authority: 'foo:8080' }, {}, { destination_service: 'foo:8080', destination_service_name: 'foo:8080' }],
      ['fallback off, no service: unknown', { fallback: false, authority: 'foo:8080' }, {}, { destination_service: 'unknown', destination_service_name: 'unknown' }],
      ['fallback on, PassthroughCluster: host from Host, name = cluster', { fallback: true, authority: 'httpbin.org' }, { specialCluster: 'PassthroughCluster' }, { destination_service: 'httpbin.org', destination_service_name: 'PassthroughCluster' }],
      ['fallback off, BlackHoleCluster', { fallback: false, authority: 'x' }, { specialCluster: 'BlackHoleCluster' }, { destination_service: 'unknown', destination_service_name: 'BlackHoleCluster' }],
      ['fallback on, registry service wins', { fallback: true, authority: 'catalog:80' }, { service: CATALOG_SVC }, { destination_service: 'catalog.istioinaction.svc.cluster.local', destination_service_name: 'catalog' }],
    ] as const)('host-header fallback: %s', (_n, opts, attrs, expected) => {
      expect(derive({ reporter: 'source', ...attrs }, opts)).toMatchObject(expected);
    });
  });

  describe('reporter=destination (server sidecar)', () => {
    it('takes source_* from the peer and destination_* from local metadata raw', () => {
      const l = derive({ reporter: 'destination', peer: INGRESS_GW, peerPrincipal: GW_SAN, localPrincipal: WEBAPP_SAN, service: WEBAPP_SVC });
      expect(l).toMatchObject({
        source_workload: 'istio-ingressgateway',
        source_canonical_revision: 'latest',
        source_version: 'unknown',
        source_workload_namespace: 'istio-system',
        destination_workload: 'webapp',
        destination_version: '',
        destination_principal: WEBAPP_SAN,
        destination_service_namespace: 'istioinaction',
        connection_security_policy: 'mutual_tls',
      });
    });

    it.each([
      ['both SANs', GW_SAN, WEBAPP_SAN, 'mutual_tls'],
      ['peer SAN only', GW_SAN, '', 'none'],
      ['local SAN only', '', WEBAPP_SAN, 'none'],
      ['no TLS', '', '', 'none'],
    ])('connection_security_policy with %s is %s', (_n, peerPrincipal, localPrincipal, csp) => {
      expect(derive({ reporter: 'destination', peerPrincipal, localPrincipal }).connection_security_policy).toBe(csp);
    });

    it.each([
      ['no peer, no service', {}, { source_workload: 'unknown', source_canonical_service: 'unknown', source_canonical_revision: 'latest', source_workload_namespace: 'unknown', source_principal: 'unknown', source_cluster: 'unknown', destination_service: 'webapp', destination_service_name: 'webapp', destination_principal: 'unknown' }],
      ['InboundPassthroughCluster', { specialCluster: 'InboundPassthroughCluster' }, { destination_service: 'webapp', destination_service_name: 'InboundPassthroughCluster' }],
      ['SAN namespace without peer', { peerPrincipal: 'spiffe://cluster.local/ns/foo/sa/bar' }, { source_workload_namespace: 'foo', source_workload: 'unknown' }],
    ] as const)('%s', (_n, attrs, expected) => {
      expect(derive({ reporter: 'destination', ...attrs })).toMatchObject(expected);
    });

    it('never uses the Host header inbound', () => {
      expect(derive({ reporter: 'destination' }, { fallback: false, authority: 'webapp:80' }).destination_service).toBe('webapp');
    });
  });

  describe('reporter=waypoint', () => {
    it('takes source_* from the downstream peer and destination_* from the upstream peer', () => {
      const l = derive({
        reporter: 'waypoint',
        peer: INGRESS_GW,
        upstreamPeer: peer({ ...CATALOG, identity: CATALOG_SAN }),
        peerPrincipal: GW_SAN,
        localPrincipal: 'spiffe://cluster.local/ns/istioinaction/sa/waypoint',
        service: CATALOG_SVC,
      });
      expect(l).toMatchObject({
        reporter: 'waypoint',
        source_workload: 'istio-ingressgateway',
        destination_workload: 'catalog',
        destination_principal: CATALOG_SAN,
        destination_service: 'catalog.istioinaction.svc.cluster.local',
        destination_service_namespace: 'istioinaction',
        destination_cluster: 'Kubernetes',
        connection_security_policy: 'mutual_tls',
      });
    });

    it('falls back to unknown without an upstream peer', () => {
      expect(derive({ reporter: 'waypoint' })).toMatchObject({ destination_workload: 'unknown', destination_principal: 'unknown', destination_service: 'unknown', destination_canonical_revision: 'unknown' });
    });
  });
});

describe('localLabelValues()', () => {
  it('reads app/version from the raw pod labels, not app.kubernetes.io/* (spec §8.5)', () => {
    const l = localLabelValues(local({ app: 'from-k8s-name', version: 'v9', podLabels: { 'app.kubernetes.io/name': 'from-k8s-name', app: 'legacy' } }));
    expect(l.app).toBe('legacy');
    expect(l.version).toBe('');
  });

  it('uses the resolved app/version when no pod labels were loaded', () => {
    expect(localLabelValues(local({ app: 'a', version: 'v1' }))).toMatchObject({ app: 'a', version: 'v1' });
  });
});

describe('namespaceFromSpiffe()', () => {
  it.each([
    ['spiffe://cluster.local/ns/default/sa/bookinfo', 'default'],
    ['spiffe://td/ns/a-b/sa/x', 'a-b'],
    ['spiffe://td/ns/only', 'only'],
    ['spiffe://td/sa/x', ''],
    ['', ''],
  ])('%s → %j', (san, ns) => {
    expect(namespaceFromSpiffe(san)).toBe(ns);
  });
});

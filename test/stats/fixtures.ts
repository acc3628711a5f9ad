/**
 * Test fixtures for the stats stage: workloads from the real Istio 1.17.8 output in
 * test/fixtures/mx-vectors.json (#12–#14), built as plain objects satisfying the metadata interfaces.
 */
import type { PeerMetadata, WorkloadMetadata } from '../../src/metadata/types.js';
import type { HttpStreamAttributes } from '../../src/stats/types.js';

/** A peer with every field empty (a garbled MX header decodes to this). */
export const EMPTY_PEER: PeerMetadata = Object.freeze({
  name: '',
  namespace: '',
  cluster: '',
  workload: '',
  workloadType: 'unknown',
  canonicalService: '',
  canonicalRevision: '',
  app: '',
  version: '',
  identity: '',
  region: '',
  zone: '',
  labels: {},
});

/** Build a peer from a partial object. */
export function peer(p: Partial<PeerMetadata>): PeerMetadata {
  return Object.freeze({ ...EMPTY_PEER, ...p });
}

/** Build local metadata from a partial object. */
export function local(p: Partial<WorkloadMetadata>): WorkloadMetadata {
  return Object.freeze({
    ...EMPTY_PEER,
    owner: '',
    meshId: 'cluster.local',
    serviceAccount: 'default',
    trustDomain: 'cluster.local',
    instanceIps: ['10.0.0.1'],
    istioVersion: '1.17.8',
    proxyType: 'sidecar',
    podLabels: {},
    annotations: {},
    extra: {},
    ...p,
  });
}

/** The webapp pod of the blog (mx-vectors #12/#13): no `version` label. */
export const WEBAPP = local({
  name: 'webapp-7685bcb84-hp2kl',
  namespace: 'istioinaction',
  cluster: 'Kubernetes',
  workload: 'webapp',
  workloadType: 'deployment',
  canonicalService: 'webapp',
  canonicalRevision: 'latest',
  app: 'webapp',
  version: '',
  podLabels: { app: 'webapp', 'service.istio.io/canonical-name': 'webapp', 'service.istio.io/canonical-revision': 'latest' },
});

/** The ingress gateway as webapp's inbound sees it (no canonical revision, no version). */
export const INGRESS_GW = peer({
  name: 'istio-ingressgateway-6bb8fb6549-k4ldr',
  namespace: 'istio-system',
  cluster: 'Kubernetes',
  workload: 'istio-ingressgateway',
  workloadType: 'deployment',
  canonicalService: 'istio-ingressgateway',
  app: 'istio-ingressgateway',
});

/** catalog v1 as webapp's outbound sees it. */
export const CATALOG = peer({
  name: 'catalog-6cf4b97d-7jnvx',
  namespace: 'istioinaction',
  cluster: 'Kubernetes',
  workload: 'catalog',
  workloadType: 'deployment',
  canonicalService: 'catalog',
  canonicalRevision: 'v1',
  app: 'catalog',
  version: 'v1',
});

export const GW_SAN = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';
export const WEBAPP_SAN = 'spiffe://cluster.local/ns/istioinaction/sa/webapp';
export const CATALOG_SAN = 'spiffe://cluster.local/ns/istioinaction/sa/catalog';

export const WEBAPP_SVC = Object.freeze({ host: 'webapp.istioinaction.svc.cluster.local', name: 'webapp', namespace: 'istioinaction' });
export const CATALOG_SVC = Object.freeze({ host: 'catalog.istioinaction.svc.cluster.local', name: 'catalog', namespace: 'istioinaction' });

/** Inbound request on webapp from the gateway (mx-vectors #12). */
export function inboundFromGateway(over: Partial<HttpStreamAttributes> = {}): HttpStreamAttributes {
  return {
    reporter: 'destination',
    peer: INGRESS_GW,
    peerPrincipal: GW_SAN,
    localPrincipal: WEBAPP_SAN,
    service: WEBAPP_SVC,
    authority: 'webapp.istioinaction:80',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: 12.9,
    requestBytes: 800,
    responseBytes: 1500,
    ...over,
  };
}

/** Outbound request from webapp to catalog (mx-vectors #13). */
export function outboundToCatalog(over: Partial<HttpStreamAttributes> = {}): HttpStreamAttributes {
  return {
    reporter: 'source',
    peer: CATALOG,
    peerPrincipal: CATALOG_SAN,
    localPrincipal: WEBAPP_SAN,
    service: CATALOG_SVC,
    authority: 'catalog.istioinaction:80',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: 3,
    requestBytes: 300,
    responseBytes: 900,
    ...over,
  };
}

/** Parse `name{a="x",...} value` sample lines of an exposition into label objects. */
export function samples(text: string, name: string): { labels: Record<string, string>; value: string; line: string }[] {
  const out: { labels: Record<string, string>; value: string; line: string }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const open = line.indexOf('{');
    const close = line.lastIndexOf('} ');
    const labels: Record<string, string> = {};
    if (open > 0 && close > open) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let m: RegExpExecArray | null;
      const body = line.slice(open + 1, close);
      while ((m = re.exec(body)) !== null) labels[m[1] as string] = (m[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const rest = close > 0 ? line.slice(close + 2) : line.slice(name.length + 1);
    out.push({ labels, value: rest.split(' ')[0] as string, line });
  }
  return out;
}

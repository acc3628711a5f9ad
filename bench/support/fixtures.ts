/**
 * Identities shared by the benchmarks. The values are those of Istio's bookinfo productpage sidecar, so series,
 * span tags and headers have realistic sizes; bench/metadata.bench.ts builds its own with createWorkloadMetadata
 * because its headers must match the shared MX vectors byte for byte.
 */
import type { PeerMetadata, WorkloadMetadata } from '../../src/metadata/types.js';
import type { HttpStreamAttributes } from '../../src/stats/types.js';

/** This proxy in the stats and tracing benchmarks: productpage-v1 in `default`, cluster `Kubernetes`. */
export const PRODUCTPAGE: WorkloadMetadata = {
  name: 'productpage-v1-84975bc778-pxz2w',
  namespace: 'default',
  cluster: 'Kubernetes',
  workload: 'productpage-v1',
  workloadType: 'deployment',
  canonicalService: 'productpage',
  canonicalRevision: 'v1',
  app: 'productpage',
  version: 'v1',
  identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
  region: '',
  zone: '',
  labels: {},
  owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
  meshId: 'cluster.local',
  serviceAccount: 'bookinfo-productpage',
  trustDomain: 'cluster.local',
  instanceIps: ['10.52.0.34'],
  istioVersion: '1.29.0',
  proxyType: 'sidecar',
  podLabels: { app: 'productpage', version: 'v1' },
  annotations: {},
  extra: {},
};

/** The Envoy node id of {@link PRODUCTPAGE}'s sidecar. */
export const PRODUCTPAGE_NODE_ID = 'sidecar~10.52.0.34~productpage-v1-84975bc778-pxz2w.default~default.svc.cluster.local';

/** The i-th reviews peer of the recorder benchmarks (one label set per i). */
export function reviewsPeer(i: number): PeerMetadata {
  return {
    name: `reviews-v1-545db77b95-${i}`,
    namespace: 'default',
    cluster: 'Kubernetes',
    workload: `reviews-v${i}`,
    workloadType: 'deployment',
    canonicalService: 'reviews',
    canonicalRevision: `v${i}`,
    app: 'reviews',
    version: `v${i}`,
    identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    region: '',
    zone: '',
    labels: {},
  };
}

/** How a benchmark spreads the i-th request's duration and response size over the buckets. */
export interface RequestSpread {
  durationMs(i: number): number;
  responseBytes(i: number): number;
}

/**
 * The i-th mTLS request from {@link PRODUCTPAGE} to `peer`, built as one literal: a spread-built attributes object
 * makes recordHttp markedly slower on Node 20 and would measure the object shape, not the recorder.
 */
export function reviewsRequest(peer: PeerMetadata, i: number, spread: RequestSpread): HttpStreamAttributes {
  return {
    reporter: 'source',
    peer,
    peerPrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    localPrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
    service: { host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' },
    authority: 'reviews:9080',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: spread.durationMs(i),
    requestBytes: 700 + (i % 100),
    responseBytes: spread.responseBytes(i),
  };
}

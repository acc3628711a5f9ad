/**
 * Identities shared by the benchmarks. The values are those of Istio's bookinfo productpage sidecar, so series,
 * span tags and headers have realistic sizes; bench/metadata.bench.ts builds its own with createWorkloadMetadata
 * because its headers must match the shared MX vectors byte for byte.
 */
import type { WorkloadMetadata } from '../../src/metadata/types.js';

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

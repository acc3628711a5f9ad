/** Workload identities and request shapes shared by the tracing tests. */
import type { PeerMetadata, WorkloadMetadata } from '../../../src/metadata/types.js';
import type { SpanEndInfo, SpanStartInfo } from '../../../src/tracing/types.js';

/** A productpage sidecar in `default` (the bookinfo identity used across Istio's own tests). */
export function workload(overrides: Partial<WorkloadMetadata> = {}): WorkloadMetadata {
  return {
    name: 'productpage-v1-84975bc778-pxz2w',
    namespace: 'default',
    cluster: 'client-cluster',
    workload: 'productpage-v1',
    workloadType: 'deployment',
    canonicalService: 'productpage',
    canonicalRevision: 'v1',
    app: 'productpage',
    version: 'v1',
    identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
    region: '',
    zone: 'us-east1-b',
    labels: {},
    owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
    meshId: 'mesh',
    serviceAccount: 'bookinfo-productpage',
    trustDomain: 'cluster.local',
    instanceIps: ['10.52.0.34'],
    istioVersion: '1.29.0',
    proxyType: 'sidecar',
    podLabels: {},
    annotations: {},
    extra: {},
    ...overrides,
  };
}

/** The reviews workload as metadata exchange would report it. */
export function reviewsPeer(overrides: Partial<PeerMetadata> = {}): PeerMetadata {
  return {
    name: 'reviews-v2-5b64f47978-abcde',
    namespace: 'default',
    cluster: 'server-cluster',
    workload: 'reviews-v2',
    workloadType: 'deployment',
    canonicalService: 'reviews',
    canonicalRevision: 'v2',
    app: 'reviews',
    version: 'v2',
    identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    region: '',
    zone: '',
    labels: {},
    ...overrides,
  };
}

export const NODE_ID = 'sidecar~10.52.0.34~productpage-v1-84975bc778-pxz2w.default~default.svc.cluster.local';

/** An outbound (client) request from productpage to reviews. */
export const OUTBOUND: SpanStartInfo = {
  kind: 'client',
  method: 'GET',
  url: 'http://reviews:9080/reviews/0',
  authority: 'reviews:9080',
  protocol: 'HTTP/1.1',
  port: 9080,
  serviceHost: 'reviews.default.svc.cluster.local',
};

/** An inbound (server) request arriving at reviews. */
export const INBOUND: SpanStartInfo = {
  kind: 'server',
  method: 'GET',
  url: 'http://reviews:9080/reviews/0',
  authority: 'reviews:9080',
  protocol: 'HTTP/1.1',
  peerAddress: '10.52.0.34',
  port: 9080,
  serviceHost: 'reviews.default.svc.cluster.local',
};

export const OK_END: SpanEndInfo = {
  statusCode: 200,
  responseFlags: '-',
  upstreamCluster: 'outbound|9080||reviews.default.svc.cluster.local',
  requestSize: 0,
  responseSize: 295,
};

/**
 * Run `fn` with `env` set in `process.env` (the OpenTelemetry SDK reads its `OTEL_*` variables from there, at
 * construction), restoring every variable afterwards.
 */
export function withEnv<T>(env: Record<string, string>, fn: () => T): T {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(env)) {
    saved.set(k, process.env[k]);
    process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

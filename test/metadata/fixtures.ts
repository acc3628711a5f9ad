/**
 * Workloads behind the MX vectors of test/fixtures/mx-vectors.json (istio/proxy testdata/{client,server}_node_metadata.json.tmpl),
 * built through the public factory so the round-trip tests exercise the real derivations.
 */
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import type { WorkloadMetadata } from '../../src/metadata/types.js';
import { mxVector } from '../support/fixtures.js';

/** Vectors of test/fixtures/mx-vectors.json by index, failing loudly when one is missing. */
export const vector = mxVector;

const CLIENT = {
  name: 'productpage-v1-84975bc778-pxz2w',
  namespace: 'default',
  workload: 'productpage-v1',
  cluster: 'client-cluster',
  owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
} as const;

/** The client workload with the four labels a 1.24+ peer sends (vector [9], baggage [3]). */
export function productpageReduced(): WorkloadMetadata {
  return createWorkloadMetadata({
    ...CLIENT,
    labels: {
      app: 'productpage',
      version: 'v1',
      'service.istio.io/canonical-name': 'productpage-v1',
      'service.istio.io/canonical-revision': 'version-1',
    },
  });
}

/** The client workload as a ≤1.23 flat node (vector [10]). */
export function productpageFlat(): WorkloadMetadata {
  return createWorkloadMetadata({
    ...CLIENT,
    istioVersion: '1.5-dev',
    meshId: 'mesh',
    instanceIps: ['10.52.0.34', 'fe80::a075:11ff:fe5e:f1cd'],
    labels: {
      app: 'productpage',
      'pod-template-hash': '84975bc778',
      version: 'v1',
      'service.istio.io/canonical-name': 'productpage-v1',
      'service.istio.io/canonical-revision': 'version-1',
      role: 'client',
    },
    extra: {
      APP_CONTAINERS: 'test,bonzai',
      PLATFORM_METADATA: {
        gcp_gke_cluster_name: 'test-cluster',
        gcp_location: 'us-east4-b',
        gcp_project: 'test-project',
        gcp_project_number: '123',
      },
    },
  });
}

/** The server workload of the TCP frame vector [11]. */
export function ratings(): WorkloadMetadata {
  return createWorkloadMetadata({
    name: 'ratings-v1-84975bc778-pxz2w',
    namespace: 'default',
    workload: 'ratings-v1',
    cluster: 'server-cluster',
    owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/ratings-v1',
    instanceIps: ['10.52.0.34'],
    labels: {
      app: 'ratings',
      version: 'v1',
      'service.istio.io/canonical-name': 'ratings',
      'service.istio.io/canonical-revision': 'version-1',
    },
  });
}

/** Node id inside vector [11]. */
export const RATINGS_NODE_ID = 'sidecar~10.52.0.34~ratings-v1-84975bc778-pxz2w.default~default.svc.cluster.local';

/** Istio's testBaggage request input (P test/envoye2e/stats_plugin/stats_test.go; fixture vector [4]). */
export const CURL_BAGGAGE = 'k8s.deployment.name=curl,service.name=curl,service.version=v1,k8s.namespace.name=default,k8s.cluster.name=curl-cluster,k8s.instance.name=curl-xxxxxxxxxx-xxxxx';

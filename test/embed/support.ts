/**
 * The two workloads the embedding parity tests put on both paths (sidecar and embedded), and how they read series.
 */
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { parseExposition } from '../../src/stats/exposition-parser.js';

/** httpbin-v1, the server of every parity scenario. */
export const serverMeta = createWorkloadMetadata({
  name: 'httpbin-v1-5c7f9d-abcde',
  namespace: 'default',
  workload: 'httpbin-v1',
  owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/httpbin-v1',
  labels: { app: 'httpbin', version: 'v1' },
  cluster: 'Kubernetes',
  serviceAccount: 'httpbin',
  instanceIps: ['127.0.0.1'],
});

/** sleep, the client. */
export const clientMeta = createWorkloadMetadata({
  name: 'sleep-7b9f-xyz12',
  namespace: 'default',
  workload: 'sleep',
  owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/sleep',
  labels: { app: 'sleep', version: 'v1' },
  cluster: 'Kubernetes',
  serviceAccount: 'sleep',
  instanceIps: ['127.0.0.1'],
});

/** The service httpbin is behind. */
export const SERVICE = { host: 'httpbin.default.svc.cluster.local', name: 'httpbin', namespace: 'default' };

/** Series of the given metrics as `name{sorted labels}` → value (per-process self metrics skipped by name). */
export async function seriesOf(text: Promise<string> | string, names: ReadonlySet<string>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of parseExposition(await text)) {
    if (!names.has(s.name)) continue;
    const labels = Object.entries(s.labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}="${v}"`)
      .join(',');
    out[`${s.name}{${labels}}`] = s.value;
  }
  return out;
}

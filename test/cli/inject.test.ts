import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { Deployment, StatefulSet, DaemonSet } from 'kubernetes-models/apps/v1';
import { Job, CronJob } from 'kubernetes-models/batch/v1';
import { Pod, Service } from 'kubernetes-models/v1';
import { injectManifests, SIDECAR_CONTAINER_NAME, STATUS_ANNOTATION } from '../../src/cli/inject.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { runMeshtel } from './support.js';
import { REPO_ROOT } from '../support/fixtures.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const DEPLOYMENT = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v2
  namespace: bookinfo
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata:
      labels: {app: reviews, version: v2, pod-template-hash: abc}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9080"
        prometheus.io/path: /metrics
    spec:
      serviceAccountName: bookinfo-reviews
      containers:
      - name: reviews
        image: reviews:v2
        ports: [{containerPort: 9080, name: http}]
      volumes:
      - name: tmp
        emptyDir: {}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
`;

function docs(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

function env(container: Obj): Record<string, Obj> {
  return Object.fromEntries((container.env as Obj[]).map((e) => [e.name as string, e]));
}

const template = (w: Obj): Obj => (w.kind === 'CronJob' ? w.spec.jobTemplate.spec.template : w.kind === 'Pod' ? w : w.spec.template);

describe('injectManifests()', () => {
  const out = injectManifests(DEPLOYMENT);
  const [deploy, service] = docs(out.yaml) as [Obj, Obj];
  const pod = template(deploy);
  const proxy = pod.spec.containers[0] as Obj;

  it('puts the istio-proxy container running `meshtel sidecar` first and keeps the app container', () => {
    expect(pod.spec.containers.map((c: Obj) => c.name)).toEqual([SIDECAR_CONTAINER_NAME, 'reviews']);
    expect(proxy.args).toEqual(['sidecar']);
  });

  it('sets the downward-API env the sidecar reads from fieldRefs', () => {
    const e = env(proxy);
    expect(e.POD_NAME?.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(e.POD_NAMESPACE?.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
    expect(e.INSTANCE_IP?.valueFrom.fieldRef.fieldPath).toBe('status.podIP');
    expect(e.SERVICE_ACCOUNT?.valueFrom.fieldRef.fieldPath).toBe('spec.serviceAccountName');
  });

  it('sets the ISTIO_META_* keys the injector sets', () => {
    const e = env(proxy);
    expect(e.ISTIO_META_CLUSTER_ID?.value).toBe('Kubernetes');
    expect(e.ISTIO_META_WORKLOAD_NAME?.value).toBe('reviews-v2');
    expect(e.ISTIO_META_OWNER?.value).toBe('kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v2');
    expect(e.ISTIO_META_MESH_ID?.value).toBe('cluster.local');
    expect(e.ISTIO_META_APP_CONTAINERS?.value).toBe('reviews');
  });

  it('moves the app scrape settings into ISTIO_PROMETHEUS_ANNOTATIONS and points prometheus.io at 15020', () => {
    expect(JSON.parse(env(proxy).ISTIO_PROMETHEUS_ANNOTATIONS?.value as string)).toEqual({ scrape: 'true', path: '/metrics', port: '9080' });
    expect(pod.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '15020',
      'prometheus.io/path': '/stats/prometheus',
    });
  });

  it('exposes 15090 http-envoy-prom, 15020 and a 15021 /healthz/ready readiness probe', () => {
    expect(proxy.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ containerPort: 15090, name: 'http-envoy-prom' }),
        expect.objectContaining({ containerPort: 15020 }),
        expect.objectContaining({ containerPort: 15021 }),
      ]),
    );
    expect(proxy.readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
  });

  it('mounts the labels and annotations downward-API volume at /etc/istio/pod, keeping existing volumes', () => {
    expect(proxy.volumeMounts).toEqual([{ name: 'istio-podinfo', mountPath: '/etc/istio/pod' }]);
    expect(pod.spec.volumes.map((v: Obj) => v.name)).toEqual(['tmp', 'istio-podinfo']);
    expect(pod.spec.volumes[1].downwardAPI.items).toEqual([
      { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
      { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
    ]);
  });

  it('adds the canonical-name/revision labels from app/version', () => {
    expect(pod.metadata.labels).toMatchObject({
      'service.istio.io/canonical-name': 'reviews',
      'service.istio.io/canonical-revision': 'v2',
    });
  });

  it('passes non-workload documents through unchanged', () => {
    expect(service).toEqual(docs(DEPLOYMENT)[1]);
    expect(out.report).toEqual({ injected: ['Deployment/reviews-v2'], skipped: [] });
  });

  it('is idempotent: injecting the output again returns it byte for byte', () => {
    const again = injectManifests(out.yaml);
    expect(again.yaml).toBe(out.yaml);
    expect(again.report.skipped).toEqual(['Deployment/reviews-v2: already injected']);
  });

  it('produces objects that validate against the Kubernetes schemas', () => {
    expect(() => new Deployment(deploy as never).validate()).not.toThrow();
    expect(() => new Service(service as never).validate()).not.toThrow();
  });

  describe.each([
    ['StatefulSet', 'apps/v1', 'statefulsets', (o: Obj) => new StatefulSet(o as never).validate()],
    ['DaemonSet', 'apps/v1', 'daemonsets', (o: Obj) => new DaemonSet(o as never).validate()],
    ['Job', 'batch/v1', 'jobs', (o: Obj) => new Job(o as never).validate()],
    ['CronJob', 'batch/v1', 'cronjobs', (o: Obj) => new CronJob(o as never).validate()],
    ['Pod', 'v1', 'pods', (o: Obj) => new Pod(o as never).validate()],
  ])('a %s', (kind, api, plural, validate) => {
    const podSpec = { containers: [{ name: 'app', image: 'app:1' }], restartPolicy: kind.endsWith('Job') ? 'Never' : 'Always' };
    const podTemplate = { metadata: { labels: { app: 'x' } }, spec: podSpec };
    const spec: Obj =
      kind === 'Pod'
        ? podSpec
        : kind === 'CronJob'
          ? { schedule: '* * * * *', jobTemplate: { spec: { template: podTemplate } } }
          : kind === 'Job'
            ? { template: podTemplate }
            : { selector: { matchLabels: { app: 'x' } }, template: podTemplate, ...(kind === 'StatefulSet' ? { serviceName: 'x' } : {}) };
    const input: Obj = { apiVersion: api, kind, metadata: { name: 'w', ...(kind === 'Pod' ? { labels: { app: 'x' } } : {}) }, spec };
    const [result] = docs(injectManifests(JSON.stringify(input)).yaml) as [Obj];

    it('gets the sidecar, an OWNER of its own kind and a valid manifest', () => {
      const t = template(result);
      expect(t.spec.containers[0].name).toBe(SIDECAR_CONTAINER_NAME);
      expect(env(t.spec.containers[0]).ISTIO_META_OWNER?.value).toBe(`kubernetes://apis/${api}/namespaces/default/${plural}/w`);
      expect(t.metadata.annotations[STATUS_ANNOTATION]).toBeDefined();
      expect(() => validate(result)).not.toThrow();
    });
  });

  it.each([
    ['sidecar.istio.io/inject: "false"', { 'sidecar.istio.io/inject': 'false' }, 'sidecar.istio.io/inject: "false"'],
    ['an existing sidecar status', { [STATUS_ANNOTATION]: '{}' }, 'already injected'],
  ])('skips a pod with %s', (_name, annotations, reason) => {
    const input = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations }, spec: { containers: [{ name: 'a', image: 'a' }] } };
    const result = injectManifests(JSON.stringify(input));
    expect(result.report.skipped).toEqual([`Pod/p: ${reason}`]);
    expect((docs(result.yaml)[0] as Obj).spec.containers).toHaveLength(1);
  });

  it('leaves prometheus.io annotations alone when the pod opts out with scrape: "false"', () => {
    const input = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations: { 'prometheus.io/scrape': 'false' } }, spec: { containers: [{ name: 'a', image: 'a' }] } };
    const [p] = docs(injectManifests(JSON.stringify(input)).yaml) as [Obj];
    expect(p.metadata.annotations['prometheus.io/scrape']).toBe('false');
    expect(p.metadata.annotations['prometheus.io/port']).toBeUndefined();
    expect(env(p.spec.containers[0]).ISTIO_PROMETHEUS_ANNOTATIONS).toBeUndefined();
  });

  it('throws MESHTEL_ERR_CONFIG_FILE naming the document for YAML that does not parse', () => {
    try {
      injectManifests('kind: Pod\n---\nmetadata: {name: [\n');
      expect.unreachable();
    } catch (err) {
      expect(isMeshtelError(err, 'MESHTEL_ERR_CONFIG_FILE')).toBe(true);
      expect((err as Error).message).toMatch(/^document 2 /);
    }
  });
});

describe('meshtel inject (CLI)', () => {
  it('reads stdin with -f - and writes the injected YAML to stdout, the summary to stderr', async () => {
    const run = await runMeshtel(['inject', '-f', '-', '--cluster-id', 'east'], { stdin: DEPLOYMENT });
    expect(run.code).toBe(0);
    const [deploy] = docs(run.stdout) as [Obj];
    expect(env(template(deploy).spec.containers[0]).ISTIO_META_CLUSTER_ID?.value).toBe('east');
    expect(run.stderr).toContain('injected Deployment/reviews-v2');
    expect(parse(run.stdout.split('---\n')[1] ?? '')).toMatchObject({ kind: 'Service' });
  });

  it('exits 1 with MESHTEL_ERR_CONFIG_FILE for a missing file and 2 without -f', async () => {
    const missing = await runMeshtel(['inject', '-f', '/nonexistent/deploy.yaml']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('MESHTEL_ERR_CONFIG_FILE');
    const usage = await runMeshtel(['inject']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("required option '-f, --filename <file>'");
  });
});

describe('meshtel inject and the hand-written deploy manifests', () => {
  const input = path.join(REPO_ROOT, 'test/deploy/fixtures/sample-app.uninjected.yaml');
  const committed = path.join(REPO_ROOT, 'deploy/kubernetes/sample-app.yaml');
  it('turns the un-injected sample app into deploy/kubernetes/sample-app.yaml', () => {
    const ours = docs(injectManifests(readFileSync(input, 'utf8')).yaml);
    expect(ours).toEqual(docs(readFileSync(committed, 'utf8')));
  });
});

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ServiceAccount, Service } from 'kubernetes-models/v1';
import type { IContainer, IEnvVar } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { IPodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { ISTIO_PORTS } from '../../src/core/config.js';
import { DEPLOY_DIR, PROMETHEUS_RULE_FILE, createPrometheusRules, renderPrometheusRules } from '../../deploy/generate-prometheus-rule.js';
import { injectManifests } from '../../src/cli/inject.js';

const K8S_DIR = path.join(DEPLOY_DIR, 'kubernetes');
const REPO_ROOT = path.resolve(DEPLOY_DIR, '..');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [key: string]: unknown;
}

/** Every document of every YAML file in deploy/kubernetes, with its file name. */
function loadManifests(): { file: string; doc: Manifest }[] {
  const out: { file: string; doc: Manifest }[] = [];
  for (const file of readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const d of parseAllDocuments(readFileSync(path.join(K8S_DIR, file), 'utf8'))) {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const doc = d.toJS() as Manifest | null;
      if (doc !== null) out.push({ file, doc });
    }
  }
  return out;
}

/** The schema model of each kind we ship; a manifest of any other kind fails the test. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

const manifests = loadManifests();
const find = <T>(kind: string, name: string): T => {
  const m = manifests.find((x) => x.doc.kind === kind && x.doc.metadata.name === name);
  if (m === undefined) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return m.doc as unknown as T;
};

describe('deploy/kubernetes', () => {
  it('ships the sample app, the PodMonitor, the ServiceMonitor and the PrometheusRules', () => {
    expect(manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort()).toEqual([
      'Deployment/podinfo-v1',
      'PodMonitor/envoy-stats-monitor',
      'PrometheusRule/istio-metrics-aggregation',
      'PrometheusRule/meshtel-slo-alerts',
      'Service/podinfo',
      'ServiceAccount/podinfo',
      'ServiceMonitor/istio-federation',
    ]);
  });

  describe.each(manifests.map((m) => [`${m.file} ${m.doc.kind}/${m.doc.metadata.name}`, m.doc] as const))('%s', (_n, doc) => {
    it('validates against its Kubernetes or Prometheus Operator schema', () => {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model, `no schema model for ${doc.apiVersion}/${doc.kind}`).toBeDefined();
      if (Model !== undefined) expect(() => new Model(doc as never).validate()).not.toThrow();
    });
  });

  it('rejects an invalid manifest (the schema check can fail)', () => {
    const broken = structuredClone(find<IDeployment>('Deployment', 'podinfo-v1'));
    const proxy = broken.spec?.template.spec?.containers.find((c) => c.name === 'istio-proxy');
    if (proxy?.ports?.[0] !== undefined) (proxy.ports[0] as { containerPort: unknown }).containerPort = '15090';
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort must be integer/);
  });

  describe('sample-app.yaml: the injected sidecar', () => {
    it('is exactly what `meshtel inject` produces from the un-injected app (test/deploy/fixtures)', () => {
      const source = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/sample-app.uninjected.yaml'), 'utf8');
      const injected = parseAllDocuments(injectManifests(source).yaml).map((d) => d.toJS() as unknown);
      const committed = parseAllDocuments(readFileSync(path.join(K8S_DIR, 'sample-app.yaml'), 'utf8')).map((d) => d.toJS() as unknown);
      expect(injected).toEqual(committed);
    });

    const deployment = find<IDeployment>('Deployment', 'podinfo-v1');
    const pod = deployment.spec?.template;
    const containers = pod?.spec?.containers ?? [];
    const proxy = containers.find((c) => c.name === 'istio-proxy') as IContainer;
    const app = containers.find((c) => c.name !== 'istio-proxy') as IContainer;
    const env = (name: string): IEnvVar | undefined => proxy.env?.find((e) => e.name === name);

    it('runs `meshtel sidecar` in a container named istio-proxy', () => {
      expect(proxy).toBeDefined();
      expect(proxy.args).toEqual(['sidecar']);
    });

    it.each([
      ['POD_NAME', 'metadata.name'],
      ['POD_NAMESPACE', 'metadata.namespace'],
      ['INSTANCE_IP', 'status.podIP'],
      ['SERVICE_ACCOUNT', 'spec.serviceAccountName'],
    ])('takes %s from the downward API (%s)', (name, fieldPath) => {
      expect(env(name)?.valueFrom?.fieldRef?.fieldPath).toBe(fieldPath);
    });

    it('names its workload, owner, mesh and cluster with ISTIO_META_* variables', () => {
      expect(env('ISTIO_META_WORKLOAD_NAME')?.value).toBe(deployment.metadata?.name);
      expect(env('ISTIO_META_OWNER')?.value).toBe('kubernetes://apis/apps/v1/namespaces/default/deployments/podinfo-v1');
      expect(env('ISTIO_META_APP_CONTAINERS')?.value).toBe(app.name);
      expect(env('ISTIO_META_MESH_ID')?.value).toBe('cluster.local');
      expect(env('ISTIO_META_CLUSTER_ID')?.value).toBe('Kubernetes');
      expect(JSON.parse(env('ISTIO_META_POD_PORTS')?.value ?? '')).toEqual(app.ports);
    });

    it('points the prometheus.io annotations at the merged endpoint and keeps the app scrape in ISTIO_PROMETHEUS_ANNOTATIONS', () => {
      expect(pod?.metadata?.annotations).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(ISTIO_PORTS.STATUS),
        'prometheus.io/path': '/stats/prometheus',
      });
      const appScrape = JSON.parse(env('ISTIO_PROMETHEUS_ANNOTATIONS')?.value ?? '') as Record<string, string>;
      expect(appScrape).toEqual({ scrape: 'true', path: '/metrics', port: String(app.ports?.[0]?.containerPort) });
      // istio/istio webhook.go: an app port equal to the status port is rejected.
      expect(appScrape.port).not.toBe(String(ISTIO_PORTS.STATUS));
    });

    it('exposes 15090 as http-envoy-prom, 15020 and 15021, and is ready on :15021/healthz/ready', () => {
      expect(proxy.ports).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: 'http-envoy-prom', containerPort: ISTIO_PORTS.PROMETHEUS }),
          expect.objectContaining({ containerPort: ISTIO_PORTS.STATUS }),
          expect.objectContaining({ containerPort: ISTIO_PORTS.HEALTH }),
        ]),
      );
      expect(proxy.readinessProbe?.httpGet).toEqual({ path: '/healthz/ready', port: ISTIO_PORTS.HEALTH });
      expect(containers[0]?.name).toBe('istio-proxy');
    });

    it('mounts the pod labels and annotations at /etc/istio/pod', () => {
      const mount = proxy.volumeMounts?.find((m) => m.mountPath === '/etc/istio/pod');
      const volume = pod?.spec?.volumes?.find((v) => v.name === mount?.name);
      expect(volume?.downwardAPI?.items).toEqual([
        { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
        { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
      ]);
    });

    it('carries the canonical service labels the metadata exchange reports', () => {
      expect(pod?.metadata?.labels).toMatchObject({
        'service.istio.io/canonical-name': 'podinfo',
        'service.istio.io/canonical-revision': 'v1',
      });
    });

    it('runs as the non-root proxy user 1337 with a read-only root file system', () => {
      expect(proxy.securityContext).toMatchObject({ runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, readOnlyRootFilesystem: true });
    });
  });

  describe('pod-monitor.yaml', () => {
    it("scrapes /stats/prometheus with Istio's envoy-stats relabelings, in order", () => {
      const pm = find<IPodMonitor>('PodMonitor', 'envoy-stats-monitor');
      const endpoint = pm.spec.podMetricsEndpoints?.[0];
      expect(pm.spec.podMetricsEndpoints).toHaveLength(1);
      expect(endpoint?.path).toBe('/stats/prometheus');
      expect(pm.spec.selector).toEqual({ matchExpressions: [{ key: 'istio-prometheus-ignore', operator: 'DoesNotExist' }] });
      // consumers.md §3 (istio/istio samples/addons/extras/prometheus-operator.yaml).
      expect(endpoint?.relabelings).toEqual([
        { action: 'keep', sourceLabels: ['__meta_kubernetes_pod_container_name'], regex: 'istio-proxy' },
        { action: 'keep', sourceLabels: ['__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape'] },
        {
          action: 'replace',
          regex: '(\\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})',
          replacement: '[$2]:$1',
          sourceLabels: ['__meta_kubernetes_pod_annotation_prometheus_io_port', '__meta_kubernetes_pod_ip'],
          targetLabel: '__address__',
        },
        {
          action: 'replace',
          regex: '(\\d+);((([0-9]+?)(\\.|$)){4})',
          replacement: '$2:$1',
          sourceLabels: ['__meta_kubernetes_pod_annotation_prometheus_io_port', '__meta_kubernetes_pod_ip'],
          targetLabel: '__address__',
        },
        { action: 'labeldrop', regex: '__meta_kubernetes_pod_label_(.+)' },
        { sourceLabels: ['__meta_kubernetes_namespace'], action: 'replace', targetLabel: 'namespace' },
        { sourceLabels: ['__meta_kubernetes_pod_name'], action: 'replace', targetLabel: 'pod' },
      ]);
    });
  });

  describe('prometheus-rule.yaml', () => {
    it('is generated from deploy/prometheus and up to date (run `npm run deploy:rules`)', () => {
      expect(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')).toBe(renderPrometheusRules());
    });

    it('carries exactly the groups of the promtool-tested rule files', () => {
      const shipped = manifests.filter((m) => m.doc.kind === 'PrometheusRule').map((m) => m.doc);
      expect(shipped).toEqual(createPrometheusRules());
    });
  });

  describe('Dockerfile', () => {
    const dockerfile = readFileSync(path.join(DEPLOY_DIR, 'Dockerfile'), 'utf8');
    const lines = dockerfile.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));

    it('builds on node:20-slim, compiles with `npm run build` and installs only production dependencies', () => {
      expect(lines.filter((l) => l.startsWith('FROM ')).every((l) => l.startsWith('FROM node:20-slim'))).toBe(true);
      expect(dockerfile).toContain('RUN npm run build');
      expect(dockerfile).toMatch(/RUN npm ci --omit=dev/);
      // The package's "prepare" script builds on install; inside the image src is not there yet (or at all).
      const installs = lines.filter((l) => l.includes('npm ci'));
      expect(installs.length).toBeGreaterThan(0);
      for (const l of installs) expect(l).toContain('--ignore-scripts');
    });

    it('copies only paths that exist in the repository', () => {
      for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from='))) {
        const sources = l.split(/\s+/).slice(1, -1);
        for (const s of sources) expect(existsSync(path.join(REPO_ROOT, s)), `${l}: ${s}`).toBe(true);
      }
    });

    it('starts the CLI entry point with the sidecar command the Deployment expects', () => {
      expect(lines).toContain('ENTRYPOINT ["node", "/app/bin/meshtel.js"]');
      expect(lines).toContain('CMD ["sidecar"]');
      expect(existsSync(path.join(REPO_ROOT, 'bin/meshtel.js'))).toBe(true);
    });
  });
});

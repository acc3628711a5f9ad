/**
 * `meshtel inject`: the pure manifest transform behind the command, modelled on `istioctl kube-inject`
 * and the sidecar injector template (istio/istio
 * `manifests/charts/istio-control/istio-discovery/files/injection-template.yaml`, `pkg/kube/inject/webhook.go`).
 *
 * It adds the `istio-proxy` container running `meshtel sidecar`, the environment the sidecar reads
 * (downward-API fieldRefs and the ISTIO_META_* keys the injector sets), the `istio-podinfo` downward-API
 * volume at /etc/istio/pod, the canonical-name/revision labels, and rewrites the `prometheus.io`
 * annotations to the merged endpoint (:15020/stats/prometheus) while keeping the app's own scrape
 * settings in ISTIO_PROMETHEUS_ANNOTATIONS (webhook.go `applyPrometheusMerge`).
 *
 * Injection is idempotent: a pod template that already carries `sidecar.istio.io/status` or an
 * `istio-proxy` container is left byte-for-byte as it was, as the injector's `injectRequired` does.
 */
import { ConfigError, quote } from '../core/errors.js';
import { ISTIO_PORTS } from '../core/config.js';
import { LABEL_APP, LABEL_APP_QUALIFIED, LABEL_CANONICAL_NAME, LABEL_CANONICAL_REVISION, LABEL_VERSION, LABEL_VERSION_QUALIFIED } from '../metadata/owner.js';
import { yamlModule } from '../core/lazy-yaml.js';

/** Name of the injected container (Istio's; `kubectl logs -c istio-proxy` keeps working). */
export const SIDECAR_CONTAINER_NAME = 'istio-proxy';
/** Name of the downward-API volume the sidecar reads labels and annotations from. */
export const PODINFO_VOLUME_NAME = 'istio-podinfo';
/** Mount path of {@link PODINFO_VOLUME_NAME} (metadata `labelsPath` / `annotationsPath` defaults). */
export const PODINFO_MOUNT_PATH = '/etc/istio/pod';
/** Annotation marking an injected pod (Istio's `sidecar.istio.io/status`). */
export const STATUS_ANNOTATION = 'sidecar.istio.io/status';
/** Annotation that turns metrics merging off for one pod (Istio's). */
export const MERGE_METRICS_ANNOTATION = 'prometheus.istio.io/merge-metrics';
/** Annotation that disables injection for one pod. */
export const INJECT_ANNOTATION = 'sidecar.istio.io/inject';
/** Default sidecar image (the Dockerfile in deploy/ builds it). */
export const DEFAULT_SIDECAR_IMAGE = 'ghcr.io/meshtel/meshtel:0.1.0';

const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
const PROM_SCRAPE = 'prometheus.io/scrape';
const PROM_PATH = 'prometheus.io/path';
const PROM_PORT = 'prometheus.io/port';

/** Options for {@link injectManifests} and {@link injectPodTemplate}. */
export interface InjectOptions {
  /** Sidecar image; default {@link DEFAULT_SIDECAR_IMAGE}. */
  image?: string;
  /** ISTIO_META_CLUSTER_ID; default `Kubernetes` (Istio's default cluster id). */
  clusterId?: string;
  /** ISTIO_META_MESH_ID; default the trust domain, as the injector does. */
  meshId?: string;
  /** TRUST_DOMAIN; default `cluster.local`. */
  trustDomain?: string;
  /** Namespace for objects without `metadata.namespace`; default `default`. */
  namespace?: string;
  /** Whether to apply Prometheus metrics merging (meshConfig.enablePrometheusMerge); default true. */
  prometheusMerge?: boolean;
}

/** What {@link injectManifests} did, per document, for the CLI summary. */
export interface InjectReport {
  /** `Kind/name` of every pod template that received a sidecar. */
  readonly injected: readonly string[];
  /** `Kind/name: reason` of every workload left unchanged. */
  readonly skipped: readonly string[];
}

/** Result of {@link injectManifests}. */
export interface InjectResult {
  /** The output manifests, multi-document YAML in the input order. */
  readonly yaml: string;
  readonly report: InjectReport;
}

type Obj = Record<string, unknown>;

/** Workload kinds whose pod template is injected, with where the template lives and the OWNER API group. */
const WORKLOAD_KINDS: Readonly<Record<string, { templatePath: readonly string[]; api: string }>> = {
  Deployment: { templatePath: ['spec', 'template'], api: 'apps/v1' },
  StatefulSet: { templatePath: ['spec', 'template'], api: 'apps/v1' },
  DaemonSet: { templatePath: ['spec', 'template'], api: 'apps/v1' },
  ReplicaSet: { templatePath: ['spec', 'template'], api: 'apps/v1' },
  Job: { templatePath: ['spec', 'template'], api: 'batch/v1' },
  CronJob: { templatePath: ['spec', 'jobTemplate', 'spec', 'template'], api: 'batch/v1' },
  Pod: { templatePath: [], api: 'v1' },
};

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObj(v)) return out;
  for (const [k, val] of Object.entries(v)) if (val !== undefined && val !== null) out[k] = String(val);
  return out;
}

/**
 * Inject every workload in a multi-document YAML stream. Documents that are not workloads (Services,
 * ConfigMaps, ...) pass through unchanged; `kind: List` items are injected one by one.
 * Throws ConfigError `MESHTEL_ERR_CONFIG_FILE` when the YAML does not parse, naming the document.
 */
export function injectManifests(text: string, options: InjectOptions = {}): InjectResult {
  const injected: string[] = [];
  const skipped: string[] = [];
  const { parseAllDocuments, stringify, isMap } = yamlModule();
  const docs = parseAllDocuments(text);
  const out: string[] = [];
  docs.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      const first = doc.errors[0];
      throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `document ${index + 1} is not valid YAML: ${first?.message ?? 'parse error'}`, {
        document: index + 1,
      });
    }
    if (doc.contents === null) return; // an empty document between two `---`
    const value: unknown = doc.toJS();
    // Document markers are re-added by the join below; keep each body without its own `---`.
    const asWritten = (): string => doc.toString().replace(/^---[^\S\n]*\n/, '');
    if (!isObj(value)) {
      out.push(asWritten());
      return;
    }
    const before = JSON.stringify(value);
    injectObject(value, options, injected, skipped);
    // Untouched documents are re-emitted as written (comments kept), so re-injection is byte-stable.
    if (JSON.stringify(value) === before && isMap(doc.contents)) out.push(asWritten());
    else out.push(stringify(value, { lineWidth: 0 }));
  });
  return { yaml: out.map((d) => (d.endsWith('\n') ? d : `${d}\n`)).join('---\n'), report: { injected, skipped } };
}

function injectObject(value: Obj, options: InjectOptions, injected: string[], skipped: string[]): void {
  const kind = typeof value.kind === 'string' ? value.kind : '';
  if (kind === 'List' && Array.isArray(value.items)) {
    for (const item of value.items) if (isObj(item)) injectObject(item, options, injected, skipped);
    return;
  }
  const shape = WORKLOAD_KINDS[kind];
  if (shape === undefined) return;
  const meta = isObj(value.metadata) ? value.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const id = `${kind}/${name}`;
  // Walk to the pod template without creating levels: a skipped or template-less workload passes through as it was.
  let template: Obj | undefined = value;
  for (const key of shape.templatePath) template = isObj(template?.[key]) ? (template[key] as Obj) : undefined;
  if (template === undefined) {
    skipped.push(`${id}: no pod template (${shape.templatePath.join('.')})`);
    return;
  }
  const workload = {
    kind,
    apiVersion: typeof value.apiVersion === 'string' ? value.apiVersion : shape.api,
    name,
    namespace: typeof meta.namespace === 'string' ? meta.namespace : (options.namespace ?? 'default'),
  };
  const reason = injectPodTemplate(template, workload, options);
  if (reason === null) injected.push(id);
  else skipped.push(`${id}: ${reason}`);
}

/** The owning workload of a pod template, for ISTIO_META_OWNER / ISTIO_META_WORKLOAD_NAME. */
export interface WorkloadRef {
  readonly kind: string;
  readonly apiVersion: string;
  readonly name: string;
  readonly namespace: string;
}

/**
 * Inject one pod template (`{metadata, spec}`) in place. Returns null when injected, or the reason it
 * was left alone (already injected, injection disabled, host network, no containers).
 */
export function injectPodTemplate(template: Obj, workload: WorkloadRef, options: InjectOptions = {}): string | null {
  // Read before deciding: a template left alone must not gain empty metadata/spec maps.
  const metadata: Obj = isObj(template.metadata) ? template.metadata : {};
  const spec: Obj = isObj(template.spec) ? template.spec : {};
  const annotations = stringMap(metadata.annotations);
  const containers = Array.isArray(spec.containers) ? (spec.containers as unknown[]).filter(isObj) : [];
  if (containers.length === 0) return 'no containers';
  if (annotations[STATUS_ANNOTATION] !== undefined || containers.some((c) => c.name === SIDECAR_CONTAINER_NAME)) {
    return 'already injected';
  }
  if (annotations[INJECT_ANNOTATION]?.toLowerCase() === 'false') return `${INJECT_ANNOTATION}: "false"`;
  if (spec.hostNetwork === true) return 'hostNetwork pods are not injected';
  if (!workload.name) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `a ${workload.kind} has no metadata.name`, { kind: workload.kind });
  }
  template.metadata = metadata;
  template.spec = spec;

  const labels = stringMap(metadata.labels);
  // Canonical name/revision precedence: label, app.kubernetes.io/*, app/version, then workload name /
  // "latest" (istio/istio pkg/kube/labels/labels.go CanonicalService). The injector takes the first label that is
  // present, even empty, as labels.go does; metadata/owner.ts canonicalServiceOf (a workload's identity at run
  // time) skips empty values.
  const canonicalName = labels[LABEL_CANONICAL_NAME] ?? labels[LABEL_APP_QUALIFIED] ?? labels[LABEL_APP] ?? workload.name;
  const canonicalRevision = labels[LABEL_CANONICAL_REVISION] ?? labels[LABEL_VERSION_QUALIFIED] ?? labels[LABEL_VERSION] ?? 'latest';
  const newLabels: Record<string, string> = {
    ...labels,
    [LABEL_CANONICAL_NAME]: canonicalName,
    [LABEL_CANONICAL_REVISION]: canonicalRevision,
    [TLS_MODE_LABEL]: labels[TLS_MODE_LABEL] ?? 'istio',
  };
  metadata.labels = newLabels;

  const trustDomain = options.trustDomain ?? 'cluster.local';
  const env: Obj[] = [
    fieldRefEnv('POD_NAME', 'metadata.name'),
    fieldRefEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldRefEnv('INSTANCE_IP', 'status.podIP'),
    fieldRefEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldRefEnv('HOST_IP', 'status.hostIP'),
    { name: 'ISTIO_META_POD_PORTS', value: JSON.stringify(podPorts(containers)) },
    { name: 'ISTIO_META_APP_CONTAINERS', value: containers.map((c) => String(c.name ?? '')).join(',') },
    { name: 'ISTIO_META_CLUSTER_ID', value: options.clusterId ?? 'Kubernetes' },
    { name: 'ISTIO_META_WORKLOAD_NAME', value: workload.name },
    {
      name: 'ISTIO_META_OWNER',
      value: `kubernetes://apis/${workload.apiVersion}/namespaces/${workload.namespace}/${workload.kind.toLowerCase()}s/${workload.name}`,
    },
    { name: 'ISTIO_META_MESH_ID', value: options.meshId ?? trustDomain },
    { name: 'TRUST_DOMAIN', value: trustDomain },
  ];

  // Metrics merging (webhook.go applyPrometheusMerge): on unless the pod says scrape=false or merging
  // is turned off; the app's own scrape settings move into the env, the annotations point at 15020.
  const newAnnotations: Record<string, string> = { ...annotations };
  const mergeAnnotation = annotations[MERGE_METRICS_ANNOTATION];
  const merge = mergeAnnotation !== undefined ? mergeAnnotation.toLowerCase() !== 'false' : (options.prometheusMerge ?? true);
  const scrape = findPrometheusAnnotation(annotations, 'scrape');
  if (merge && scrape?.toLowerCase() !== 'false') {
    if (scrape?.toLowerCase() === 'true') {
      env.push({
        name: 'ISTIO_PROMETHEUS_ANNOTATIONS',
        value: JSON.stringify({
          scrape,
          path: findPrometheusAnnotation(annotations, 'path') ?? '',
          port: findPrometheusAnnotation(annotations, 'port') ?? '',
        }),
      });
    }
    newAnnotations[PROM_PORT] = String(ISTIO_PORTS.STATUS);
    newAnnotations[PROM_PATH] = '/stats/prometheus';
    newAnnotations[PROM_SCRAPE] = 'true';
  }
  const firstApp = containers[0]?.name;
  if (typeof firstApp === 'string' && newAnnotations['kubectl.kubernetes.io/default-container'] === undefined) {
    newAnnotations['kubectl.kubernetes.io/default-container'] = firstApp;
  }
  newAnnotations[STATUS_ANNOTATION] = JSON.stringify({
    initContainers: null,
    containers: [SIDECAR_CONTAINER_NAME],
    volumes: [PODINFO_VOLUME_NAME],
    imagePullSecrets: null,
    revision: 'default',
  });
  metadata.annotations = newAnnotations;

  const sidecar: Obj = {
    name: SIDECAR_CONTAINER_NAME,
    image: options.image ?? DEFAULT_SIDECAR_IMAGE,
    args: ['sidecar'],
    ports: [
      { containerPort: ISTIO_PORTS.PROMETHEUS, name: 'http-envoy-prom', protocol: 'TCP' },
      { containerPort: ISTIO_PORTS.STATUS, name: 'http-status', protocol: 'TCP' },
      { containerPort: ISTIO_PORTS.HEALTH, name: 'health', protocol: 'TCP' },
    ],
    env,
    readinessProbe: {
      httpGet: { path: '/healthz/ready', port: ISTIO_PORTS.HEALTH },
      initialDelaySeconds: 0,
      periodSeconds: 15,
      timeoutSeconds: 3,
      failureThreshold: 4,
    },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 1337,
      runAsGroup: 1337,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [{ name: PODINFO_VOLUME_NAME, mountPath: PODINFO_MOUNT_PATH }],
  };
  // Istio puts the proxy first so it starts before the app (values.global.proxy.holdApplicationUntilProxyStarts
  // aside, container order is the start order).
  spec.containers = [sidecar, ...(spec.containers as unknown[])];

  const volumes = Array.isArray(spec.volumes) ? (spec.volumes as unknown[]) : [];
  spec.volumes = [
    ...volumes,
    {
      name: PODINFO_VOLUME_NAME,
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        ],
      },
    },
  ];
  return null;
}

function fieldRefEnv(name: string, fieldPath: string): Obj {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

/** Container ports as ISTIO_META_POD_PORTS lists them (name, containerPort, protocol). */
function podPorts(containers: Obj[]): Obj[] {
  const ports: Obj[] = [];
  for (const c of containers) {
    if (!Array.isArray(c.ports)) continue;
    for (const p of c.ports) if (isObj(p)) ports.push({ ...p });
  }
  return ports;
}

/**
 * Istio matches `prometheus.io/*` after replacing `.` `/` `-` with `_` (webhook.go
 * `prometheusScrapeAnnotations`), so `prometheus.io/scrape` and `prometheus_io_scrape` are the same.
 */
function findPrometheusAnnotation(annotations: Record<string, string>, key: 'scrape' | 'path' | 'port'): string | undefined {
  const wanted = `prometheus_io_${key}`;
  for (const [k, v] of Object.entries(annotations)) if (k.replace(/[./-]/g, '_') === wanted) return v;
  return undefined;
}

/** Validate `--namespace`-like options early so errors point at the flag. */
export function validateInjectOptions(options: InjectOptions): void {
  for (const [field, v] of Object.entries(options)) {
    if (typeof v === 'string' && v.trim() === '') {
      throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--${field} must not be empty, got ${quote(v)}`, { field });
    }
  }
}

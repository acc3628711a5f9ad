/**
 * Workload metadata from plain fields: the defaults, the derived fields (canonical service/revision, workload type,
 * SPIFFE identity) and the validation every source goes through once (env, downward API, files and explicit values
 * are gathered by workload.ts; tests, the demo and the embedding call {@link createWorkloadMetadata} directly).
 * Errors name the field, the value and where it came from.
 */
import { isIP } from 'node:net';
import { ConfigError, quote } from '../core/errors.js';
import type { MeshtelErrorCode } from '../core/errors.js';
import { deepFreeze } from '../core/config.js';
import type { ProxyType, WorkloadMetadata, WorkloadType } from './types.js';
import { LABEL_APP, LABEL_VERSION, canonicalRevisionOf, canonicalServiceOf, ownerFor, parseOwner } from './owner.js';

/** Default SPIFFE trust domain. */
const DEFAULT_TRUST_DOMAIN = 'cluster.local';
/** Default cluster id (the injector's `ISTIO_META_CLUSTER_ID` default). */
const DEFAULT_CLUSTER_ID = 'Kubernetes';

/**
 * Plain fields to build a {@link WorkloadMetadata} from. Everything is optional; derived fields
 * (`canonicalService`, `canonicalRevision`, `app`, `version`, `workloadType`, `identity`) are computed
 * when not given. `labels` are the pod labels.
 */
export interface WorkloadMetadataInput {
  name: string;
  namespace: string;
  cluster: string;
  workload: string;
  owner: string;
  workloadType: WorkloadType;
  canonicalService: string;
  canonicalRevision: string;
  app: string;
  version: string;
  identity: string;
  region: string;
  zone: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  meshId: string;
  serviceAccount: string;
  trustDomain: string;
  instanceIps: readonly string[];
  istioVersion: string;
  proxyType: ProxyType;
  extra: Readonly<Record<string, unknown>>;
}

/** Every {@link WorkloadMetadataInput} key: a file or override naming another one is refused. */
export const INPUT_KEYS: ReadonlySet<string> = new Set<keyof WorkloadMetadataInput>([
  'name', 'namespace', 'cluster', 'workload', 'owner', 'workloadType', 'canonicalService', 'canonicalRevision',
  'app', 'version', 'identity', 'region', 'zone', 'labels', 'annotations', 'meshId', 'serviceAccount',
  'trustDomain', 'instanceIps', 'istioVersion', 'proxyType', 'extra',
]);

/** Where each field came from, so that a validation error names the env var or file. */
export type Origins = Partial<Record<keyof WorkloadMetadataInput, string>>;

const PROXY_TYPES: ReadonlySet<string> = new Set<ProxyType>(['sidecar', 'router', 'waypoint']);
const WORKLOAD_TYPES: ReadonlySet<string> = new Set<WorkloadType>(['pod', 'deployment', 'job', 'cronjob', 'unknown']);
// Kubernetes DNS-1123 label (namespaces) and subdomain (pod and service-account names).
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
// Control characters would let a value break out of an HTTP header line (MX value, baggage).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The SPIFFE id Istio gives a service account: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
export function spiffeIdOf(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * Build metadata from plain fields (tests, the demo, the embedding): the same defaults, derivations and
 * validation as {@link loadWorkloadMetadata}, without reading the environment or files.
 * Throws ConfigError `MESHTEL_ERR_INVALID_METADATA` naming the field and the value.
 */
export function createWorkloadMetadata(fields: Partial<WorkloadMetadataInput> = {}): WorkloadMetadata {
  return buildWorkloadMetadata(fields, {});
}

function fail(origins: Origins, field: keyof WorkloadMetadataInput, value: unknown, why: string): never {
  const origin = origins[field];
  const code: MeshtelErrorCode = origin?.startsWith('env ') ? 'MESHTEL_ERR_INVALID_ENV' : 'MESHTEL_ERR_INVALID_METADATA';
  const where = origin ? ` (from ${origin})` : '';
  throw new ConfigError(code, `workload metadata field ${field}${where} ${why}, got ${quote(value)}`, {
    field,
    value,
    ...(origin ? { origin } : {}),
  });
}

function str(fields: Partial<WorkloadMetadataInput>, origins: Origins, key: keyof WorkloadMetadataInput, fallback: string): string {
  const v = fields[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string') fail(origins, key, v, 'must be a string');
  if (CONTROL.test(v)) fail(origins, key, v, 'must not contain control characters');
  return v;
}

function stringMap(fields: Partial<WorkloadMetadataInput>, origins: Origins, key: 'labels' | 'annotations'): Record<string, string> {
  const v = fields[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(origins, key, v, 'must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (k === '' || CONTROL.test(k)) fail(origins, key, k, 'has an invalid key');
    if (typeof val !== 'string') fail(origins, key, { [k]: val }, `value of ${JSON.stringify(k)} must be a string`);
    if (key === 'labels' && CONTROL.test(val)) fail(origins, key, { [k]: val }, 'values must not contain control characters');
    out[k] = val;
  }
  return out;
}

/**
 * Defaults, derivations (canonical service/revision, workload type, SPIFFE identity) and validation of plain fields;
 * `origins` says where each came from, for the error message. The result is deep-frozen.
 */
export function buildWorkloadMetadata(fields: Partial<WorkloadMetadataInput>, origins: Origins): WorkloadMetadata {
  if (fields === null || typeof fields !== 'object') {
    throw new ConfigError('MESHTEL_ERR_INVALID_METADATA', `workload metadata must be an object, got ${quote(fields)}`, { value: fields });
  }
  const namespace = str(fields, origins, 'namespace', 'default');
  if (!DNS_LABEL.test(namespace)) fail(origins, 'namespace', namespace, 'must be a DNS-1123 label (lower-case, digits, "-")');
  const name = str(fields, origins, 'name', '');
  if (name !== '' && !DNS_SUBDOMAIN.test(name)) fail(origins, 'name', name, 'must be a DNS-1123 subdomain');
  const labels = stringMap(fields, origins, 'labels');
  // `app` and `version` are the pod labels of those names, not separate facts: an explicit value is written into
  // the labels, so the canonical name/revision, the MX LABELS and the local stats labels all derive from one set
  // (Istio reads all of them from the pod labels; `--app reviews` and `-l app=reviews` must be the same pod).
  for (const key of [LABEL_APP, LABEL_VERSION] as const) {
    if (fields[key] === undefined || fields[key] === null) continue;
    const v = str(fields, origins, key, '');
    if (v === '') delete labels[key];
    else labels[key] = v;
  }
  const annotations = stringMap(fields, origins, 'annotations');
  // The injector names a controller-less pod's workload after the pod (I `GetDeployMetaFromPod`).
  const workload = str(fields, origins, 'workload', name);
  const proxyType = str(fields, origins, 'proxyType', 'sidecar');
  if (!PROXY_TYPES.has(proxyType)) fail(origins, 'proxyType', proxyType, 'must be sidecar, router or waypoint');

  // OWNER: as given; else rebuilt from an explicit type; else a bare pod (workload named after the pod).
  let owner = str(fields, origins, 'owner', '');
  let workloadType: WorkloadType;
  if (fields.workloadType !== undefined) {
    const t = str(fields, origins, 'workloadType', 'unknown');
    if (!WORKLOAD_TYPES.has(t)) fail(origins, 'workloadType', t, 'must be pod, deployment, job, cronjob or unknown');
    workloadType = t as WorkloadType;
    if (owner === '' && fields.owner === undefined) owner = ownerFor(workloadType, namespace, workload) ?? '';
  } else if (owner !== '') {
    workloadType = parseOwner(owner, workload);
  } else if (fields.owner === undefined && workload !== '' && workload === name) {
    workloadType = 'pod';
    owner = `kubernetes://apis/v1/namespaces/${namespace}/pods/${workload}`;
  } else {
    workloadType = 'unknown';
  }

  const serviceAccount = str(fields, origins, 'serviceAccount', 'default');
  if (serviceAccount !== '' && !DNS_SUBDOMAIN.test(serviceAccount)) {
    fail(origins, 'serviceAccount', serviceAccount, 'must be a DNS-1123 subdomain');
  }
  const trustDomain = str(fields, origins, 'trustDomain', DEFAULT_TRUST_DOMAIN);
  if (trustDomain === '' || /[/\s]/.test(trustDomain)) fail(origins, 'trustDomain', trustDomain, 'must be a non-empty domain without "/"');

  const ipsRaw = fields.instanceIps ?? [];
  if (!Array.isArray(ipsRaw)) fail(origins, 'instanceIps', ipsRaw, 'must be a list of IP addresses');
  const instanceIps: string[] = [];
  for (const ip of ipsRaw as unknown[]) {
    if (typeof ip !== 'string' || isIP(ip) === 0) fail(origins, 'instanceIps', ip, 'must hold IP addresses');
    instanceIps.push(ip);
  }
  const extra = fields.extra ?? {};
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) fail(origins, 'extra', extra, 'must be an object');

  const identity = str(fields, origins, 'identity', serviceAccount === '' ? '' : spiffeIdOf(trustDomain, namespace, serviceAccount));
  const frozenLabels = Object.freeze(labels);
  const meta: WorkloadMetadata = {
    name,
    namespace,
    cluster: str(fields, origins, 'cluster', DEFAULT_CLUSTER_ID),
    workload,
    workloadType,
    canonicalService: str(fields, origins, 'canonicalService', canonicalServiceOf(labels, workload)),
    canonicalRevision: str(fields, origins, 'canonicalRevision', canonicalRevisionOf(labels)),
    // The local side reads app/version from the plain labels only (spec §8 gotcha 5; istio_stats.cc `Context`).
    app: labels[LABEL_APP] ?? '',
    version: labels[LABEL_VERSION] ?? '',
    identity,
    region: str(fields, origins, 'region', ''),
    zone: str(fields, origins, 'zone', ''),
    labels: frozenLabels,
    owner,
    meshId: str(fields, origins, 'meshId', trustDomain),
    serviceAccount,
    trustDomain,
    instanceIps,
    istioVersion: str(fields, origins, 'istioVersion', ''),
    proxyType: proxyType as ProxyType,
    podLabels: frozenLabels,
    annotations,
    extra: structuredCloneSafe(extra as Record<string, unknown>, origins),
  };
  return deepFreeze(meta);
}

function structuredCloneSafe(extra: Record<string, unknown>, origins: Origins): Record<string, unknown> {
  try {
    return structuredClone(extra);
  } catch {
    return fail(origins, 'extra', extra, 'must hold plain data');
  }
}

/**
 * This workload's identity, loaded the way Istio's injector configures a pod (spec §1 "Where the node
 * metadata comes from"; I `pkg/bootstrap/config.go` `GetNodeMetaData`, I
 * `manifests/charts/istio-control/istio-discovery/files/injection-template.yaml`):
 * defaults → environment → downward-API files → a YAML/JSON file → explicit overrides, then derived
 * fields (canonical service/revision, workload type, SPIFFE identity), validated once and frozen.
 * This file gathers the sources; workload-fields.ts derives and validates, downward-api.ts reads the pod files.
 */
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { ConfigError, quote } from '../core/errors.js';
import type { Env } from '../core/config.js';
import type { WorkloadMetadata } from './types.js';
import { LABEL_POD_TEMPLATE_HASH } from './owner.js';
import { DEFAULT_ANNOTATIONS_PATH, DEFAULT_LABELS_PATH, readDownwardApiFile } from './downward-api.js';
import { DNS_SUBDOMAIN, INPUT_KEYS, buildWorkloadMetadata } from './workload-fields.js';
import type { Origins, WorkloadMetadataInput } from './workload-fields.js';
import { yamlModule } from '../core/lazy-yaml.js';

// Importers of the identity stage keep one module to import from: building from fields lives in workload-fields.ts.
export { createWorkloadMetadata } from './workload-fields.js';
export type { WorkloadMetadataInput } from './workload-fields.js';

/** Options of {@link loadWorkloadMetadata}. */
export interface WorkloadMetadataOptions {
  /** Environment to read; defaults to `process.env`. */
  env?: Env;
  /** Downward-API labels file; default `/etc/istio/pod/labels`. A missing file means no labels. */
  labelsPath?: string;
  /** Downward-API annotations file; default `/etc/istio/pod/annotations`. */
  annotationsPath?: string;
  /** A YAML or JSON file whose top-level keys are {@link WorkloadMetadataInput} fields. */
  file?: string;
  /** Explicit values; win over everything else. */
  overrides?: Partial<WorkloadMetadataInput>;
}

/** Keys of ISTIO_META_* that map onto typed fields; every other key lands in `extra`. */
const META_FIELDS: Readonly<Record<string, keyof WorkloadMetadataInput>> = {
  CLUSTER_ID: 'cluster',
  WORKLOAD_NAME: 'workload',
  OWNER: 'owner',
  MESH_ID: 'meshId',
  REGION: 'region',
  ZONE: 'zone',
  AVAILABILITY_ZONE: 'zone',
  NAME: 'name',
  NAMESPACE: 'namespace',
  SERVICE_ACCOUNT: 'serviceAccount',
  ISTIO_VERSION: 'istioVersion',
};

/**
 * Load this workload's metadata: defaults, then environment, then the downward-API files, then `file`,
 * then `overrides`. Throws ConfigError (`MESHTEL_ERR_INVALID_ENV`, `MESHTEL_ERR_INVALID_METADATA`,
 * `MESHTEL_ERR_CONFIG_FILE`) naming the variable, field or file. The result is frozen.
 */
export function loadWorkloadMetadata(options: WorkloadMetadataOptions = {}): WorkloadMetadata {
  return loadWorkloadMetadataWithSources(options).metadata;
}

/** Where each identity field of a loaded workload came from: `env POD_NAMESPACE`, `file …`, `hostname`, `default`. */
export interface WorkloadIdentitySources {
  readonly name: string;
  readonly namespace: string;
  readonly workload: string;
  readonly serviceAccount: string;
  readonly cluster: string;
}

/**
 * {@link loadWorkloadMetadata}, and where the identity fields came from, so that an embedding can say once at
 * start which identity it resolved and from what (a service with no pod environment otherwise reports the
 * defaults silently).
 */
export function loadWorkloadMetadataWithSources(options: WorkloadMetadataOptions = {}): {
  readonly metadata: WorkloadMetadata;
  readonly sources: WorkloadIdentitySources;
} {
  const env = options.env ?? process.env;
  const input: Partial<WorkloadMetadataInput> = {};
  const origins: Origins = {};
  const extra: Record<string, unknown> = {};
  let labels: Record<string, string> = {};
  let annotations: Record<string, string> = {};
  const set = <K extends keyof WorkloadMetadataInput>(key: K, value: WorkloadMetadataInput[K], origin: string): void => {
    input[key] = value;
    origins[key] = origin;
  };

  // 1. Environment, in Istio's names. Plain variables first, ISTIO_META_* refine them (the injector sets both).
  const plain: [string, keyof WorkloadMetadataInput][] = [
    ['POD_NAME', 'name'],
    ['POD_NAMESPACE', 'namespace'],
    ['SERVICE_ACCOUNT', 'serviceAccount'],
    ['TRUST_DOMAIN', 'trustDomain'],
    ['ISTIO_VERSION', 'istioVersion'],
  ];
  for (const [v, key] of plain) {
    const val = env[v];
    if (val !== undefined && val !== '') set(key, val, `env ${v}`);
  }
  const locality = env.ISTIO_LOCALITY;
  if (locality) {
    // Istio's locality string is region/zone/subzone.
    const [region = '', zone = ''] = locality.split('/');
    if (region) set('region', region, 'env ISTIO_LOCALITY');
    if (zone) set('zone', zone, 'env ISTIO_LOCALITY');
  }
  const ipList = env.INSTANCE_IPS ?? env.ISTIO_META_INSTANCE_IPS ?? env.INSTANCE_IP;
  if (ipList !== undefined && ipList !== '') {
    const origin = env.INSTANCE_IPS !== undefined ? 'env INSTANCE_IPS' : env.ISTIO_META_INSTANCE_IPS !== undefined ? 'env ISTIO_META_INSTANCE_IPS' : 'env INSTANCE_IP';
    set('instanceIps', ipList.split(',').map((s) => s.trim()).filter((s) => s !== ''), origin);
  }
  for (const [k, val] of Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (val === undefined) continue;
    if (k.startsWith('ISTIO_METAJSON_')) {
      const key = k.slice('ISTIO_METAJSON_'.length);
      let parsed: unknown;
      try {
        parsed = JSON.parse(val);
      } catch (err) {
        throw new ConfigError('MESHTEL_ERR_INVALID_ENV', `env ${k} must be JSON, got ${quote(val)}`, { field: k, value: val }, { cause: err });
      }
      if (key === 'LABELS' || key === 'ANNOTATIONS') {
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((x) => typeof x !== 'string')) {
          throw new ConfigError('MESHTEL_ERR_INVALID_ENV', `env ${k} must be a JSON object of strings, got ${quote(val)}`, { field: k, value: val });
        }
        if (key === 'LABELS') labels = { ...labels, ...(parsed as Record<string, string>) };
        else annotations = { ...annotations, ...(parsed as Record<string, string>) };
      } else {
        extra[key] = parsed;
      }
    } else if (k.startsWith('ISTIO_META_')) {
      const key = k.slice('ISTIO_META_'.length);
      if (key === 'INSTANCE_IPS') continue;
      const field = META_FIELDS[key];
      if (field) {
        if (val !== '' || field === 'cluster') set(field, val, `env ${k}`);
      } else {
        extra[key] = val;
      }
    }
  }
  if (input.instanceIps === undefined) input.instanceIps = detectInstanceIps();
  if (input.name === undefined) {
    // In Kubernetes the hostname is the pod name; off-cluster it may not be a valid one.
    const h = hostname().toLowerCase();
    if (DNS_SUBDOMAIN.test(h)) set('name', h, 'hostname');
  }

  // 2. Downward-API files: labels (pod-template-hash dropped, as I GetNodeMetaData does) and annotations.
  const fileLabels = readDownwardApiFile(options.labelsPath ?? DEFAULT_LABELS_PATH);
  if (fileLabels) {
    delete fileLabels[LABEL_POD_TEMPLATE_HASH];
    labels = { ...labels, ...fileLabels };
  }
  const fileAnnotations = readDownwardApiFile(options.annotationsPath ?? DEFAULT_ANNOTATIONS_PATH);
  if (fileAnnotations) annotations = { ...annotations, ...fileAnnotations };
  input.labels = labels;
  input.annotations = annotations;
  input.extra = extra;

  // 3. A YAML/JSON file, 4. explicit overrides.
  if (options.file !== undefined) mergeInput(input, origins, readMetadataFile(options.file), `file ${options.file}`);
  if (options.overrides) mergeInput(input, origins, options.overrides, 'overrides');
  const metadata = buildWorkloadMetadata(input, origins);
  const from = (key: keyof WorkloadMetadataInput): string => origins[key] ?? 'default';
  return {
    metadata,
    sources: {
      name: from('name'),
      namespace: from('namespace'),
      // The workload is named after the pod unless something named it (I GetDeployMetaFromPod).
      workload: origins.workload ?? (origins.owner !== undefined ? origins.owner : `${from('name')} (pod name)`),
      serviceAccount: from('serviceAccount'),
      cluster: from('cluster'),
    },
  };
}

function mergeInput(into: Partial<WorkloadMetadataInput>, origins: Origins, from: Partial<WorkloadMetadataInput>, origin: string): void {
  for (const [k, v] of Object.entries(from)) {
    if (!INPUT_KEYS.has(k)) {
      throw new ConfigError('MESHTEL_ERR_INVALID_METADATA', `unknown workload metadata field ${JSON.stringify(k)} in ${origin}`, { field: k, origin });
    }
    if (v === undefined) continue;
    const key = k as keyof WorkloadMetadataInput;
    if ((key === 'labels' || key === 'annotations' || key === 'extra') && isPlainObject(v) && isPlainObject(into[key])) {
      (into as Record<string, unknown>)[key] = { ...(into[key] as object), ...v };
    } else {
      (into as Record<string, unknown>)[key] = v;
    }
    origins[key] = origin;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function readMetadataFile(file: string): Partial<WorkloadMetadataInput> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `cannot read workload metadata file ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  let doc: unknown;
  try {
    doc = yamlModule().parse(text);
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `workload metadata file ${file} is not valid YAML/JSON: ${(err as Error).message}`, { file }, { cause: err });
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlainObject(doc)) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `workload metadata file ${file} must hold a mapping of fields, got ${quote(doc)}`, { file });
  }
  return doc as Partial<WorkloadMetadataInput>;
}

/** First non-internal address of this host (IPv4 first), as pilot-agent does without INSTANCE_IP; else loopback. */
function detectInstanceIps(): string[] {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4') v4.push(a.address);
      else if (!a.address.startsWith('fe80:')) v6.push(a.address);
    }
  }
  const all = [...v4, ...v6];
  return all.length > 0 ? all : ['127.0.0.1'];
}

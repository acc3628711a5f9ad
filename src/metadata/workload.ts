/**
 * This workload's identity, loaded the way Istio's injector configures a pod (spec §1 "Where the node
 * metadata comes from"; I `pkg/bootstrap/config.go` `GetNodeMetaData`, I
 * `manifests/charts/istio-control/istio-discovery/files/injection-template.yaml`):
 * defaults → environment → downward-API files → a YAML/JSON file → explicit overrides, then derived
 * fields (canonical service/revision, workload type, SPIFFE identity), validated once and frozen.
 */
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { ConfigError, quote } from '../core/errors.js';
import type { MeshtelErrorCode } from '../core/errors.js';
import type { Env } from '../core/config.js';
import { deepFreeze } from '../core/config.js';
import type { ProxyType, WorkloadMetadata, WorkloadType } from './types.js';
import {
  LABEL_APP,
  LABEL_POD_TEMPLATE_HASH,
  LABEL_VERSION,
  canonicalRevisionOf,
  canonicalServiceOf,
  ownerFor,
  parseOwner,
} from './owner.js';

/** Default path of the downward-API labels file the injector mounts. */
const DEFAULT_LABELS_PATH = '/etc/istio/pod/labels';
/** Default path of the downward-API annotations file. */
const DEFAULT_ANNOTATIONS_PATH = '/etc/istio/pod/annotations';
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

const INPUT_KEYS: ReadonlySet<string> = new Set<keyof WorkloadMetadataInput>([
  'name', 'namespace', 'cluster', 'workload', 'owner', 'workloadType', 'canonicalService', 'canonicalRevision',
  'app', 'version', 'identity', 'region', 'zone', 'labels', 'annotations', 'meshId', 'serviceAccount',
  'trustDomain', 'instanceIps', 'istioVersion', 'proxyType', 'extra',
]);

/** Where each field came from, so that a validation error names the env var or file. */
type Origins = Partial<Record<keyof WorkloadMetadataInput, string>>;

const PROXY_TYPES: ReadonlySet<string> = new Set<ProxyType>(['sidecar', 'router', 'waypoint']);
const WORKLOAD_TYPES: ReadonlySet<string> = new Set<WorkloadType>(['pod', 'deployment', 'job', 'cronjob', 'unknown']);
// Kubernetes DNS-1123 label (namespaces) and subdomain (pod and service-account names).
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
// Control characters would let a value break out of an HTTP header line (MX value, baggage).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Build metadata from plain fields (tests, the demo, the embedding): the same defaults, derivations and
 * validation as {@link loadWorkloadMetadata}, without reading the environment or files.
 * Throws ConfigError `MESHTEL_ERR_INVALID_METADATA` naming the field and the value.
 */
export function createWorkloadMetadata(fields: Partial<WorkloadMetadataInput> = {}): WorkloadMetadata {
  return build(fields, {});
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

function build(fields: Partial<WorkloadMetadataInput>, origins: Origins): WorkloadMetadata {
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

  const identity = str(fields, origins, 'identity', serviceAccount === '' ? '' : `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`);
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

// ---------------------------------------------------------------------------------------------
// Loading

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
  const metadata = build(input, origins);
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
    doc = parseYaml(text);
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

/**
 * Read a Kubernetes downward-API file (`key="go-quoted value"` per line). A missing file gives
 * `undefined`; an unreadable or garbled one throws ConfigError `MESHTEL_ERR_CONFIG_FILE` naming the file.
 */
function readDownwardApiFile(file: string): Record<string, string> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `cannot read downward-API file ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  return parseDownwardApi(text, file);
}

/** Parse downward-API text; `file` is only used in error messages. */
export function parseDownwardApi(text: string, file = '<downward-api>'): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq) : '';
    const raw = eq > 0 ? line.slice(eq + 1) : '';
    const value = key === '' ? undefined : unquoteGo(raw);
    if (value === undefined) {
      throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `downward-API file ${file} line ${i + 1} is not key="value": ${quote(line)}`, {
        file,
        line: i + 1,
      });
    }
    out[key] = value;
  }
  return out;
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'",
};

/**
 * Undo Go's `strconv.Quote`, which is how the kubelet writes downward-API values. Hand-written because
 * it is a dozen lines and no maintained npm package implements Go's escape set; `undefined` when malformed.
 */
function unquoteGo(raw: string): string | undefined {
  if (raw.length < 2 || raw[0] !== '"' || raw[raw.length - 1] !== '"') return undefined;
  const body = raw.slice(1, -1);
  const bytes: number[] = [];
  const pushStr = (s: string): void => {
    for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '"') return undefined;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      pushStr(String.fromCodePoint(cp));
      if (cp > 0xffff) i++;
      continue;
    }
    const e = body[++i];
    if (e === undefined) return undefined;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      pushStr(simple);
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
      const v = parseInt(hex, 16);
      if (e === 'x') bytes.push(v);
      else if (v > 0x10ffff) return undefined;
      else pushStr(String.fromCodePoint(v));
      i += n;
    } else if (e >= '0' && e <= '7') {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const v = parseInt(oct, 8);
      if (v > 255) return undefined;
      bytes.push(v);
      i += 2;
    } else {
      return undefined;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

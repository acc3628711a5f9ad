/**
 * Istio's `baggage` peer-metadata format (1.29 / P master, spec §2): comma-joined `key=value`, no
 * spaces, no percent-encoding, no W3C properties. Encoding follows P `WorkloadMetadataObject::baggage()`,
 * decoding P `convertBaggageToWorkloadMetadata` (envoy `contrib/istio/filters/common/source/metadata_object.cc`).
 */
import type { PeerMetadata, PeerResult, WorkloadMetadata, WorkloadType } from './types.js';
import { LABEL_APP_QUALIFIED, LABEL_VERSION_QUALIFIED } from './owner.js';
import { firstHeader } from '../core/headers.js';

/** The W3C baggage header. */
export const HEADER_BAGGAGE = 'baggage';
/** Default cap on a baggage value (characters). */
const DEFAULT_MAX_BAGGAGE_BYTES = 8192;

/**
 * Encode a workload as Istio 1.29 baggage, in Istio's order: `k8s.<type>.name`, `service.name`,
 * `app.name` (if ≠ service), `service.version`, `app.version` (if ≠ service version),
 * `k8s.namespace.name`, `k8s.cluster.name`, `k8s.instance.name`, `cloud.region`, `cloud.availability_zone`.
 * Empty elements are skipped; an unknown workload type is written as `pod`.
 */
export function encodeBaggage(meta: PeerMetadata): string {
  const parts: string[] = [];
  const type = meta.workloadType === 'unknown' ? 'pod' : meta.workloadType;
  if (meta.workload !== '') parts.push(`k8s.${type}.name=${meta.workload}`);
  // The local object is built as a 1.29 peer would read it: app.kubernetes.io/* labels first.
  const podLabels = (meta as Partial<WorkloadMetadata>).podLabels;
  const app = (podLabels?.[LABEL_APP_QUALIFIED] || meta.app) ?? '';
  const version = (podLabels?.[LABEL_VERSION_QUALIFIED] || meta.version) ?? '';
  const service = meta.canonicalService || app;
  if (service !== '') parts.push(`service.name=${service}`);
  if (app !== '' && app !== service) parts.push(`app.name=${app}`);
  const serviceVersion = meta.canonicalRevision || version;
  if (serviceVersion !== '') parts.push(`service.version=${serviceVersion}`);
  if (version !== '' && version !== serviceVersion) parts.push(`app.version=${version}`);
  if (meta.namespace !== '') parts.push(`k8s.namespace.name=${meta.namespace}`);
  if (meta.cluster !== '') parts.push(`k8s.cluster.name=${meta.cluster}`);
  if (meta.name !== '') parts.push(`k8s.instance.name=${meta.name}`);
  if (meta.region !== '') parts.push(`cloud.region=${meta.region}`);
  if (meta.zone !== '') parts.push(`cloud.availability_zone=${meta.zone}`);
  return parts.join(',');
}

type Token = 'namespace' | 'cluster' | 'service' | 'revision' | 'app' | 'version' | 'workload' | 'instance' | 'region' | 'zone';

const TOKENS: ReadonlyMap<string, Token> = new Map<string, Token>([
  ['k8s.namespace.name', 'namespace'],
  ['k8s.cluster.name', 'cluster'],
  ['service.name', 'service'],
  ['service.version', 'revision'],
  ['app.name', 'app'],
  ['app.version', 'version'],
  ['k8s.deployment.name', 'workload'],
  ['k8s.pod.name', 'workload'],
  ['k8s.cronjob.name', 'workload'],
  ['k8s.job.name', 'workload'],
  ['k8s.instance.name', 'instance'],
  // 1.29 ignores these two; P master reads them. Reading them costs nothing and loses nothing.
  ['cloud.region', 'region'],
  ['cloud.availability_zone', 'zone'],
]);

const WORKLOAD_TYPE_OF: Readonly<Record<string, WorkloadType>> = {
  'k8s.deployment.name': 'deployment',
  'k8s.pod.name': 'pod',
  'k8s.cronjob.name': 'cronjob',
  'k8s.job.name': 'job',
};

/** Limits applied by {@link decodeBaggage}. */
export interface DecodeBaggageOptions {
  /** Largest accepted value in characters; default 8192. */
  maxBytes?: number;
}

const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Decode Istio baggage. Only the first header counts (an array gives its first element). Unknown keys
 * and entries without `=` are ignored, as Istio does. Fill-ins follow Istio's sequential rules:
 * `service.name` also sets app when app is still empty and `app.name` sets the service when it is still
 * empty (the same for versions). Never throws.
 *
 * Stricter than Istio, so the unknown gets a reason: `bad_baggage` when no Istio key carries a value, or
 * when one Istio key appears twice with different values (Istio would silently take a mix).
 */
export function decodeBaggage(value: string | readonly string[], options: DecodeBaggageOptions = {}): PeerResult {
  const header = firstHeader(value);
  if (typeof header !== 'string') return { ok: false, reason: 'no_header' };
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BAGGAGE_BYTES;
  if (header.length > maxBytes) return { ok: false, reason: 'too_large', detail: `${header.length} > ${maxBytes} characters` };

  const v: Record<Token, string> = {
    namespace: '', cluster: '', service: '', revision: '', app: '', version: '', workload: '', instance: '', region: '', zone: '',
  };
  let workloadType: WorkloadType = 'unknown';
  let seen: Map<string, string> | undefined;
  let usable = 0;
  for (const entry of header.split(',')) {
    const eq = entry.indexOf('=');
    if (eq === -1) continue;
    // W3C allows optional whitespace around members; Istio's own writer never emits any.
    const key = entry.slice(0, eq).trim();
    const token = TOKENS.get(key);
    if (token === undefined) continue;
    // absl::StrSplit into a pair keeps the text up to the second '=' only.
    const rest = entry.slice(eq + 1);
    const eq2 = rest.indexOf('=');
    const val = (eq2 === -1 ? rest : rest.slice(0, eq2)).trim();
    seen ??= new Map();
    const prev = seen.get(key);
    if (prev !== undefined && prev !== val) {
      return { ok: false, reason: 'bad_baggage', detail: `duplicate ${key} with different values` };
    }
    seen.set(key, val);
    if (val !== '') usable++;
    switch (token) {
      case 'service':
        v.service = val;
        if (v.app === '') v.app = val;
        break;
      case 'revision':
        v.revision = val;
        if (v.version === '') v.version = val;
        break;
      case 'app':
        v.app = val;
        if (v.service === '') v.service = val;
        break;
      case 'version':
        v.version = val;
        if (v.revision === '') v.revision = val;
        break;
      case 'workload':
        v.workload = val;
        workloadType = WORKLOAD_TYPE_OF[key] ?? 'unknown';
        break;
      default:
        v[token] = val;
    }
  }
  if (usable === 0) return { ok: false, reason: 'bad_baggage', detail: 'no Istio baggage entries' };
  const peer: PeerMetadata = {
    name: v.instance,
    namespace: v.namespace,
    cluster: v.cluster,
    workload: v.workload,
    workloadType,
    canonicalService: v.service,
    canonicalRevision: v.revision,
    app: v.app,
    version: v.version,
    identity: '',
    region: v.region,
    zone: v.zone,
    labels: EMPTY_LABELS,
  };
  return { ok: true, peer: Object.freeze(peer), profile: 'baggage' };
}

/**
 * The `x-envoy-peer-metadata` codec: base64 (padded) of a deterministically serialized
 * `google.protobuf.Struct`, in the payload profiles Istio has shipped (spec §0–1):
 * - `flat` (≤1.23): P release-1.2x `extractNodeFlatBufferFromStruct` → `extractStructFromNodeFlatBuffer`.
 * - `reduced` (1.24–1.28), `reduced-1.29` (the default) and `reduced-identity` (opt-in): P release-1.29
 *   `extensions/common/metadata_object.cc` `convertWorkloadMetadataToStruct`.
 * One decoder accepts all of them, padded or not, in any field order; it never throws.
 */
import { ConfigError, quote } from '../core/errors.js';
import type { PayloadProfile, PeerMetadata, PeerResult, WorkloadMetadata, WorkloadType } from './types.js';
import { decodeStruct, encodeStruct } from './struct-codec.js';
import type { EncodableStruct, StructFields, StructValue } from './struct-codec.js';
import {
  LABEL_APP,
  LABEL_APP_QUALIFIED,
  LABEL_CANONICAL_NAME,
  LABEL_CANONICAL_REVISION,
  LABEL_VERSION,
  LABEL_VERSION_QUALIFIED,
  appOf129,
  ownerFor,
  parseOwner,
  versionOf129,
} from './owner.js';

/** Header carrying the peer's metadata (P `filter.h` `Headers::ExchangeMetadataHeader`). */
export const HEADER_PEER_METADATA = 'x-envoy-peer-metadata';
/** Header carrying the peer's node id, the cache key (P `Headers::ExchangeMetadataHeaderId`). */
export const HEADER_PEER_METADATA_ID = 'x-envoy-peer-metadata-id';
/** Default cap on an MX value (characters of base64), after envoy #40890's 8 KB Struct cap. */
export const DEFAULT_MAX_MX_BYTES = 8192;
/** Default cap on Struct nesting; Istio's payload nests 2 deep (node → LABELS / PLATFORM_METADATA). */
export const DEFAULT_MAX_MX_DEPTH = 8;

// Struct keys (P `metadata_object.h` `*MetadataField`).
const F_NAME = 'NAME';
const F_NAMESPACE = 'NAMESPACE';
const F_OWNER = 'OWNER';
const F_WORKLOAD = 'WORKLOAD_NAME';
const F_CLUSTER = 'CLUSTER_ID';
const F_LABELS = 'LABELS';
const F_IDENTITY = 'IDENTITY';
const F_REGION = 'REGION';
const F_ZONE = 'AVAILABILITY_ZONE';
const F_ISTIO_VERSION = 'ISTIO_VERSION';
const F_MESH_ID = 'MESH_ID';
const F_PLATFORM = 'PLATFORM_METADATA';
const F_APP_CONTAINERS = 'APP_CONTAINERS';
const F_INSTANCE_IPS = 'INSTANCE_IPS';
/** Keys only a flat-node (≤1.23) peer sends; their presence identifies the profile. */
const FLAT_ONLY = [F_ISTIO_VERSION, F_MESH_ID, F_PLATFORM, F_APP_CONTAINERS, F_INSTANCE_IPS];

function put(out: Record<string, string | EncodableStruct>, key: string, value: string | undefined): void {
  if (value !== undefined && value !== '') out[key] = value;
}

/** Most additional labels accepted: each is one more LABELS entry in every MX header this proxy sends. */
const MAX_ADDITIONAL_LABELS = 32;
/** A Kubernetes label key: an optional DNS-subdomain prefix (≤ 253) and `/`, then a name of ≤ 63 characters. */
const LABEL_KEY = /^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * Istio's `PILOT_MX_ADDITIONAL_LABELS`: a comma-separated list of pod label keys the MX payload carries besides the
 * standard ones. In Istio istiod reads it and configures each proxy's filter; a meshtel sidecar or embedding has no
 * istiod and reads the same variable itself. Throws ConfigError `MESHTEL_ERR_INVALID_CONFIG` naming a key that is not
 * a label key, or more than 32 keys.
 */
export function parseAdditionalLabels(raw: string | undefined, origin = 'PILOT_MX_ADDITIONAL_LABELS'): string[] {
  const keys = [...new Set((raw ?? '').split(',').map((k) => k.trim()).filter((k) => k !== ''))];
  if (keys.length > MAX_ADDITIONAL_LABELS) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} lists ${keys.length} labels, at most ${MAX_ADDITIONAL_LABELS} are accepted`, { field: origin });
  }
  for (const k of keys) {
    if (!LABEL_KEY.test(k)) throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} entry ${quote(k)} is not a Kubernetes label key`, { field: origin, value: k });
  }
  return keys;
}

/** Options of the MX encoders. */
export interface MxEncodeOptions {
  /**
   * Pod labels to carry in LABELS besides the standard ones (Istio 1.25+ `PILOT_MX_ADDITIONAL_LABELS`,
   * the filter's `additional_labels`). Reduced profiles only: the flat node carries every label anyway.
   */
  additionalLabels?: readonly string[];
  /**
   * Write REGION/AVAILABILITY_ZONE (1.29 profiles only). Istio 1.29 passes the node locality to the TCP frame's
   * encoder and not to the HTTP header's (P release-1.29 `metadata_exchange.cc` vs `peer_metadata/filter.cc`
   * `computeValue`), so `encodeTcpFrame` sets it and the header encoders leave it off.
   */
  locality?: boolean;
}

/** Labels the reduced decoder consumes itself, so they can never be "additional" (P else-if chain). */
const STANDARD_124: ReadonlySet<string> = new Set([LABEL_CANONICAL_NAME, LABEL_CANONICAL_REVISION, LABEL_APP, LABEL_VERSION]);
const STANDARD_129: ReadonlySet<string> = new Set([...STANDARD_124, LABEL_APP_QUALIFIED, LABEL_VERSION_QUALIFIED]);

/**
 * The Struct Istio would send for this workload in the given profile (before serialization).
 * The flat node carries every pod label plus the canonical labels the injector adds to the pod.
 */
export function mxStruct(meta: WorkloadMetadata, profile: PayloadProfile, options: MxEncodeOptions = {}): EncodableStruct {
  const out: Record<string, string | EncodableStruct> = {};
  if (profile === 'flat') {
    put(out, F_NAME, meta.name);
    put(out, F_NAMESPACE, meta.namespace);
    put(out, F_OWNER, meta.owner);
    put(out, F_WORKLOAD, meta.workload);
    put(out, F_ISTIO_VERSION, meta.istioVersion);
    put(out, F_MESH_ID, meta.meshId);
    put(out, F_CLUSTER, meta.cluster);
    const labels: Record<string, string> = { ...meta.podLabels };
    // The injector writes these two labels onto the pod, so a real flat node always has them.
    if (meta.canonicalService !== '') labels[LABEL_CANONICAL_NAME] = meta.canonicalService;
    if (meta.canonicalRevision !== '') labels[LABEL_CANONICAL_REVISION] = meta.canonicalRevision;
    if (Object.keys(labels).length > 0) out[F_LABELS] = labels;
    const platform = meta.extra[F_PLATFORM];
    if (platform !== null && typeof platform === 'object' && !Array.isArray(platform)) {
      const p: Record<string, string> = {};
      for (const [k, v] of Object.entries(platform)) if (typeof v === 'string') p[k] = v;
      if (Object.keys(p).length > 0) out[F_PLATFORM] = p;
    }
    const containers = meta.extra[F_APP_CONTAINERS];
    if (typeof containers === 'string') out[F_APP_CONTAINERS] = containers;
    if (meta.instanceIps.length > 0) out[F_INSTANCE_IPS] = meta.instanceIps.join(',');
    return out;
  }
  // 1.29 changed two things: app/version prefer the qualified labels, and locality reaches the TCP frame.
  const is129 = profile === 'reduced-1.29' || profile === 'reduced-identity';
  const withIdentity = profile === 'reduced-identity';
  put(out, F_NAME, meta.name);
  put(out, F_NAMESPACE, meta.namespace);
  put(out, F_WORKLOAD, meta.workload);
  put(out, F_CLUSTER, meta.cluster);
  if (withIdentity) put(out, F_IDENTITY, meta.identity);
  // LABELS is always present, even empty (`2a 00`).
  const labels: Record<string, string> = {};
  put(labels, LABEL_CANONICAL_NAME, meta.canonicalService);
  put(labels, LABEL_CANONICAL_REVISION, meta.canonicalRevision);
  // 1.29 reads app/version from app.kubernetes.io/* first when it builds the local object.
  put(labels, LABEL_APP, is129 ? meta.podLabels[LABEL_APP_QUALIFIED] || meta.app : meta.app);
  put(labels, LABEL_VERSION, is129 ? meta.podLabels[LABEL_VERSION_QUALIFIED] || meta.version : meta.version);
  const standard = is129 ? STANDARD_129 : STANDARD_124;
  for (const key of options.additionalLabels ?? []) {
    const value = meta.podLabels[key];
    if (value !== undefined && !standard.has(key)) labels[key] = value;
  }
  out[F_LABELS] = labels;
  // OWNER is rebuilt from the parsed type; unknown types (StatefulSet, DaemonSet) omit it.
  put(out, F_OWNER, ownerFor(meta.workloadType, meta.namespace, meta.workload));
  if (is129 && options.locality === true) {
    put(out, F_REGION, meta.region);
    put(out, F_ZONE, meta.zone);
  }
  return out;
}

/** Serialized Struct bytes for this workload in the given profile. */
function encodeMxBytes(meta: WorkloadMetadata, profile: PayloadProfile, options?: MxEncodeOptions): Buffer {
  return encodeStruct(mxStruct(meta, profile, options));
}

/** The `x-envoy-peer-metadata` value: standard base64 with `=` padding, as Envoy's `Base64::encode`. */
export function encodeMxHeader(meta: WorkloadMetadata, profile: PayloadProfile, options?: MxEncodeOptions): string {
  return encodeMxBytes(meta, profile, options).toString('base64');
}

/** Limits applied by {@link decodeMxHeader}. */
export interface DecodeMxOptions {
  /** Largest accepted value in characters; default 8192. */
  maxBytes?: number;
  /** Deepest accepted Struct nesting; default 8. */
  maxDepth?: number;
}

// Standard alphabet, optional padding. Node's decoder silently skips bad characters, so check first.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decode an `x-envoy-peer-metadata` value (any profile, padded or not, any field order).
 * Never throws: a bad value gives `{ ok: false, reason }` with `too_large`, `bad_base64`, `not_struct`
 * or `too_deep`.
 *
 * Istio differs on one point: Envoy's `decodeWithoutPadding` turns invalid base64 into `""`, which parses
 * as an empty Struct, so Envoy "finds" an all-empty peer. We report `bad_base64` instead, so the
 * unknown labels come with a reason (perf-anchors §4 item 4).
 */
export function decodeMxHeader(value: string, options: DecodeMxOptions = {}): PeerResult {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MX_BYTES;
  if (typeof value !== 'string') return { ok: false, reason: 'bad_base64', detail: 'value is not a string' };
  if (value.length > maxBytes) return { ok: false, reason: 'too_large', detail: `${value.length} > ${maxBytes} characters` };
  if (value.length === 0) return { ok: false, reason: 'not_struct', detail: 'empty value' };
  const padAt = value.indexOf('=');
  if (!BASE64.test(value) || value.length % 4 === 1 || (padAt !== -1 && value.length % 4 !== 0)) {
    return { ok: false, reason: 'bad_base64', detail: 'not standard base64' };
  }
  return decodeMxBytes(Buffer.from(value, 'base64'), options.maxDepth ?? DEFAULT_MAX_MX_DEPTH);
}

/** Decode serialized Struct bytes (the HTTP value after base64, or the inner struct of a TCP frame). */
function decodeMxBytes(bytes: Uint8Array, maxDepth: number = DEFAULT_MAX_MX_DEPTH): PeerResult {
  const s = decodeStruct(bytes, maxDepth);
  if (!s.ok) return { ok: false, reason: s.reason, detail: s.detail };
  return peerFromStruct(s.fields);
}

class NotString {
  constructor(readonly key: string) {}
}

function field(fields: StructFields, key: string): string {
  const v: StructValue | undefined = fields[key];
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new NotString(key);
  return v;
}

/**
 * Build a peer from decoded Struct fields, as P release-1.29 `convertStructToWorkloadMetadata`
 * (plus REGION/AVAILABILITY_ZONE, which P master also reads). `labels` keeps every LABELS entry so
 * that CEL `labels['role']` works for flat-node peers. A known key holding a non-string is `not_struct`.
 */
export function peerFromStruct(fields: StructFields): PeerResult {
  try {
    const labelsValue = fields[F_LABELS];
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    if (labelsValue !== undefined) {
      if (labelsValue === null || typeof labelsValue !== 'object' || Array.isArray(labelsValue)) throw new NotString(F_LABELS);
      for (const k of Object.keys(labelsValue)) {
        const v = (labelsValue as StructFields)[k];
        if (typeof v !== 'string') throw new NotString(`${F_LABELS}.${k}`);
        labels[k] = v;
      }
    }
    const workload = field(fields, F_WORKLOAD);
    const owner = field(fields, F_OWNER);
    const identity = field(fields, F_IDENTITY);
    const workloadType: WorkloadType = parseOwner(owner, workload);
    const peer: PeerMetadata = {
      name: field(fields, F_NAME),
      namespace: field(fields, F_NAMESPACE),
      cluster: field(fields, F_CLUSTER),
      workload,
      workloadType,
      canonicalService: labels[LABEL_CANONICAL_NAME] ?? '',
      canonicalRevision: labels[LABEL_CANONICAL_REVISION] ?? '',
      app: appOf129(labels),
      version: versionOf129(labels),
      identity,
      region: field(fields, F_REGION),
      zone: field(fields, F_ZONE),
      labels: Object.freeze(labels),
    };
    let profile: PayloadProfile = 'reduced';
    if (identity !== '') profile = 'reduced-identity';
    else if (FLAT_ONLY.some((k) => fields[k] !== undefined)) profile = 'flat';
    return { ok: true, peer: Object.freeze(peer), profile };
  } catch (err) {
    if (err instanceof NotString) return { ok: false, reason: 'not_struct', detail: `${err.key} is not a string` };
    throw err;
  }
}

/**
 * `meshtel encode`: the reverse of `meshtel decode`. Builds workload metadata from flags or a YAML/JSON
 * file and prints what this workload would send: the `x-envoy-peer-metadata` value in a chosen profile,
 * the baggage value, the TCP frame (hex) or the node id.
 *
 * A file may use meshtel's field names (`name`, `namespace`, `labels`, ... as WorkloadMetadataInput) or
 * Istio's node-metadata keys (`NAME`, `NAMESPACE`, `LABELS`, `OWNER`, ... as `meshtel decode` prints
 * them in `struct`), so a decoded value can be edited and re-encoded.
 */
import { ConfigError, quote } from '../core/errors.js';
import { PAYLOAD_PROFILES } from '../metadata/types.js';
import type { PayloadProfile, WorkloadMetadata } from '../metadata/types.js';
import { createWorkloadMetadata } from '../metadata/workload.js';
import type { WorkloadMetadataInput } from '../metadata/workload.js';
import { encodeMxHeader } from '../metadata/mx-header.js';
import { encodeBaggage } from '../metadata/baggage.js';
import { encodeTcpFrame } from '../metadata/tcp-frame.js';
import { formatNodeId } from '../metadata/node-id.js';
import { yamlModule } from '../core/lazy-yaml.js';

/** Output formats of `meshtel encode`. */
export type EncodeFormat = 'header' | 'baggage' | 'tcp' | 'id' | 'all';

/** The payload profiles `--profile` accepts. */
export const PROFILES: readonly PayloadProfile[] = PAYLOAD_PROFILES;

/** Istio node-metadata keys → meshtel input fields. Every other upper-case key lands in `extra`. */
const NODE_KEYS: Readonly<Record<string, keyof WorkloadMetadataInput>> = {
  NAME: 'name',
  NAMESPACE: 'namespace',
  CLUSTER_ID: 'cluster',
  WORKLOAD_NAME: 'workload',
  OWNER: 'owner',
  LABELS: 'labels',
  MESH_ID: 'meshId',
  ISTIO_VERSION: 'istioVersion',
  IDENTITY: 'identity',
  REGION: 'region',
  AVAILABILITY_ZONE: 'zone',
  SERVICE_ACCOUNT: 'serviceAccount',
};

/**
 * Turn a parsed file into input fields: meshtel field names pass through, Istio node keys are mapped
 * (`INSTANCE_IPS` split on `,`, unknown keys such as `PLATFORM_METADATA` and `APP_CONTAINERS` kept in `extra`).
 */
export function inputFromObject(obj: unknown, origin: string): Partial<WorkloadMetadataInput> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `${origin} must hold a mapping of metadata fields, got ${quote(obj)}`, { path: origin });
  }
  const out: Record<string, unknown> = {};
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const mapped = NODE_KEYS[k];
    if (mapped !== undefined) out[mapped] = v;
    else if (k === 'INSTANCE_IPS') out.instanceIps = typeof v === 'string' ? v.split(',').filter(Boolean) : v;
    else if (/^[A-Z][A-Z0-9_]*$/.test(k)) extra[k] = v;
    else out[k] = v;
  }
  if (Object.keys(extra).length > 0) out.extra = { ...((out.extra as Record<string, unknown> | undefined) ?? {}), ...extra };
  return out as Partial<WorkloadMetadataInput>;
}

/** Parse a YAML/JSON metadata file's text (YAML is a superset of JSON). */
export function inputFromText(text: string, origin: string): Partial<WorkloadMetadataInput> {
  let parsed: unknown;
  try {
    parsed = yamlModule().parse(text);
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `${origin} is not YAML/JSON: ${(err as Error).message}`, { path: origin });
  }
  return inputFromObject(parsed, origin);
}

/** What `--format all` prints. */
export interface EncodedValues {
  readonly profile: PayloadProfile;
  readonly 'x-envoy-peer-metadata': string;
  readonly 'x-envoy-peer-metadata-id': string;
  readonly baggage: string;
  readonly tcpFrameHex: string;
}

/** Encode `meta` in every form. `nodeId` defaults to formatNodeId(meta). */
export function encodeAll(meta: WorkloadMetadata, profile: PayloadProfile, nodeId: string = formatNodeId(meta)): EncodedValues {
  return {
    profile,
    'x-envoy-peer-metadata': encodeMxHeader(meta, profile),
    'x-envoy-peer-metadata-id': nodeId,
    baggage: encodeBaggage(meta),
    tcpFrameHex: encodeTcpFrame(meta, nodeId, profile).toString('hex'),
  };
}

/**
 * Encode `meta` in one format: the MX header value, baggage, TCP frame (hex), node id, or all of them as
 * JSON. `nodeId` (default formatNodeId(meta)) is only needed, and only computed, for `tcp`, `id` and `all`.
 */
export function encodeValue(meta: WorkloadMetadata, format: EncodeFormat, profile: PayloadProfile, nodeId?: string): string {
  switch (format) {
    case 'header':
      return encodeMxHeader(meta, profile);
    case 'baggage':
      return encodeBaggage(meta);
    case 'tcp':
      return encodeTcpFrame(meta, nodeId ?? formatNodeId(meta), profile).toString('hex');
    case 'id':
      return nodeId ?? formatNodeId(meta);
    case 'all':
      return JSON.stringify(encodeAll(meta, profile, nodeId ?? formatNodeId(meta)), null, 2);
  }
}

/** Build the metadata (file fields, then flag fields win) with meshtel's validation. */
export function buildMetadata(fromFile: Partial<WorkloadMetadataInput>, fromFlags: Partial<WorkloadMetadataInput>): WorkloadMetadata {
  const labels = { ...(fromFile.labels ?? {}), ...(fromFlags.labels ?? {}) };
  return createWorkloadMetadata({ ...fromFile, ...fromFlags, labels });
}

/**
 * `meshtel decode`: turn a metadata-exchange value an SRE copied from a capture into readable JSON:
 * an `x-envoy-peer-metadata` value (base64 Struct, any profile), a `baggage` value, a TCP
 * `istio-peer-exchange` frame in hex, or an `x-envoy-peer-metadata-id` node id. It says which payload
 * profile it is, which istio_* peer labels it yields (and which would be `unknown`), and what is off.
 *
 * The request path never throws on bad input; this command does (DecodeError, MESHTEL_ERR_DECODE), so
 * a script can tell garbage from a peer.
 */
import { DecodeError } from '../core/errors.js';
import type { PeerMetadata, PeerResult } from '../metadata/types.js';
import { decodeMxHeader, DEFAULT_MAX_MX_BYTES } from '../metadata/mx-header.js';
import { decodeBaggage } from '../metadata/baggage.js';
import { createTcpFrameParser, MX_MAGIC, TCP_FRAME_HEADER_BYTES } from '../metadata/tcp-frame.js';
import { decodeAny, decodeStruct, encodeStruct } from '../metadata/struct-codec.js';
import type { EncodableStruct, StructFields, StructValue } from '../metadata/struct-codec.js';
import { tryParseNodeId } from '../metadata/node-id.js';
import type { ParsedNodeId } from '../metadata/node-id.js';

/** What a value is. */
export type DecodeKind = 'x-envoy-peer-metadata' | 'baggage' | 'tcp-frame' | 'x-envoy-peer-metadata-id';

/** Peer labels as the stats stage would print them for this peer (peer side of a series). */
export interface PeerLabelView {
  readonly workload: string;
  readonly workload_namespace: string;
  readonly canonical_service: string;
  readonly canonical_revision: string;
  readonly app: string;
  readonly version: string;
  readonly cluster: string;
}

/** The JSON `meshtel decode` prints. */
export interface DecodeReport {
  readonly kind: DecodeKind;
  /** `flat` (≤1.23), `reduced` (1.24–1.28), `reduced-identity` (with IDENTITY) or `baggage`. */
  readonly profile?: string;
  readonly peer?: PeerMetadata;
  /** Labels this peer produces on the other side's series: `source_*` at a server, `destination_*` at a client. */
  readonly labels?: PeerLabelView;
  /** TCP frames: the node id carried next to the metadata. */
  readonly peerId?: string;
  /** Node ids: the parsed parts. */
  readonly nodeId?: ParsedNodeId;
  /** The whole decoded Struct, every key (flat nodes carry many that the peer object drops). */
  readonly struct?: StructFields;
  /** Observations: encoding quirks, labels that will read `unknown`, keys a newer Istio drops. */
  readonly notes: readonly string[];
}

const HEX = /^(0x)?[0-9a-fA-F\s:]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAGIC_HEX = MX_MAGIC.toString(16).padStart(8, '0');

/** Guess what a value is: a hex frame starting with the MX magic, a node id, base64, else baggage. */
export function detectKind(value: string): DecodeKind {
  const v = value.trim();
  const compact = v.replace(/^0x/i, '').replace(/[\s:]/g, '').toLowerCase();
  if (HEX.test(v) && compact.startsWith(MAGIC_HEX)) return 'tcp-frame';
  if (/^(sidecar|router|waypoint)~/.test(v)) return 'x-envoy-peer-metadata-id';
  if (BASE64.test(v)) return 'x-envoy-peer-metadata';
  return 'baggage';
}

/** Decode a value, auto-detected unless `kind` is given. Throws DecodeError (MESHTEL_ERR_DECODE) with what is wrong. */
export function decodeValue(value: string, given?: DecodeKind): DecodeReport {
  const v = value.trim();
  const kind = given ?? detectKind(value);
  switch (kind) {
    case 'x-envoy-peer-metadata':
      return decodeMx(v);
    case 'baggage':
      if (given !== undefined) return decodeBaggageValue(v);
      try {
        return decodeBaggageValue(v);
      } catch (err) {
        // Baggage is only the fallback guess: a mistyped or truncated MX header lands here too.
        if (!(err instanceof DecodeError)) throw err;
        throw new DecodeError(
          `${err.message}. It was read as baggage because it is not base64, a TCP frame in hex or a node id; if it is an x-envoy-peer-metadata value, try --as mx`,
          { ...err.details },
          { cause: err },
        );
      }
    case 'tcp-frame':
      return decodeFrame(v);
    case 'x-envoy-peer-metadata-id':
      return decodeNodeId(v);
  }
}

function peerLabels(peer: PeerMetadata): PeerLabelView {
  // Istio's peer fallbacks (spec §4 label table): `unknown`, except the canonical revision → `latest`.
  const or = (s: string, d = 'unknown'): string => (s === '' ? d : s);
  return {
    workload: or(peer.workload),
    workload_namespace: or(peer.namespace),
    canonical_service: or(peer.canonicalService),
    canonical_revision: or(peer.canonicalRevision, 'latest'),
    app: or(peer.app),
    version: or(peer.version),
    cluster: or(peer.cluster),
  };
}

function unknownNotes(labels: PeerLabelView): string[] {
  const missing = Object.entries(labels)
    .filter(([k, val]) => val === 'unknown' || (k === 'canonical_revision' && val === 'latest'))
    .map(([k, val]) => `${k}=${val}`);
  return missing.length > 0 ? [`fields missing from this peer, shown with Istio's fallback: ${missing.join(', ')}`] : [];
}

function fail(kind: DecodeKind, result: Extract<PeerResult, { ok: false }>, explain: string): never {
  throw new DecodeError(`${kind} value is malformed (${result.reason}${result.detail ? `: ${result.detail}` : ''}). ${explain}`, {
    kind,
    reason: result.reason,
  });
}

function plain(fields: StructFields): StructFields {
  // Null-prototype objects print as `[Object: null prototype]` in some places; JSON wants plain ones.
  return JSON.parse(JSON.stringify(fields)) as StructFields;
}

function isEncodable(v: StructValue): v is string | EncodableStruct {
  if (typeof v === 'string') return true;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  return Object.values(v as StructFields).every(isEncodable);
}

function structNotes(bytes: Uint8Array, fields: StructFields, profile: string): string[] {
  const notes: string[] = [];
  if (Object.values(fields).every(isEncodable)) {
    const canonical = encodeStruct(fields as EncodableStruct);
    if (!Buffer.from(bytes).equals(canonical)) {
      notes.push('fields are not in deterministic (sorted) order: not written by Envoy (e.g. Go proto.Marshal); decoders accept any order');
    }
  } else {
    notes.push('holds non-string values; Istio only sends strings and nested structs');
  }
  if (profile === 'flat') notes.push('flat node metadata (Istio ≤1.23): every pod label, MESH_ID, ISTIO_VERSION, ... ; 1.24+ sends only the reduced keys');
  if (profile === 'reduced') notes.push('reduced metadata (Istio 1.24+; a 1.29 sidecar sends the same keys, no IDENTITY)');
  if (profile === 'reduced-identity') notes.push('reduced metadata with IDENTITY: the 1.29 codec writes it only when node metadata has IDENTITY, which pilot-agent never sets (meshtel --profile reduced-identity)');
  const owner = fields.OWNER;
  if (typeof owner === 'string' && !/\/(pods|deployments|jobs|cronjobs)\/[^/]+$/.test(owner)) {
    notes.push(`OWNER ${JSON.stringify(owner)} is not a pod/deployment/job/cronjob: workload type is unknown (Istio drops OWNER from 1.24)`);
  }
  return notes;
}

function decodeMx(v: string): DecodeReport {
  const result = decodeMxHeader(v, { maxBytes: Math.max(DEFAULT_MAX_MX_BYTES, v.length) });
  if (!result.ok) {
    fail(
      'x-envoy-peer-metadata',
      result,
      result.reason === 'bad_base64'
        ? 'Envoy decodes invalid base64 to an empty Struct: the peer is "found" with every field empty, so all its labels read unknown'
        : 'Envoy finds no peer from this header and falls back to the next discovery method (workload_discovery)',
    );
  }
  const bytes = Buffer.from(v, 'base64');
  const s = decodeStruct(bytes, 16);
  const fields = s.ok ? plain(s.fields) : {};
  const labels = peerLabels(result.peer);
  const notes: string[] = [];
  if (!v.endsWith('=') && v.length % 4 !== 0) notes.push('base64 without = padding (Envoy sends padding but accepts both)');
  notes.push(...structNotes(bytes, fields, result.profile), ...unknownNotes(labels));
  return { kind: 'x-envoy-peer-metadata', profile: result.profile, peer: result.peer, labels, struct: fields, notes };
}

function decodeBaggageValue(v: string): DecodeReport {
  const result = decodeBaggage(v);
  if (!result.ok) fail('baggage', result, 'Istio finds no peer from this baggage and tries the next discovery method');
  const labels = peerLabels(result.peer);
  const notes: string[] = [];
  const keys = v.split(',').map((e) => e.split('=')[0]?.trim() ?? '');
  const known = /^(k8s\.(namespace|cluster|instance|deployment|pod|job|cronjob)\.name|service\.(name|version)|app\.(name|version)|cloud\.(region|availability_zone))$/;
  const ignored = keys.filter((k) => k !== '' && !known.test(k));
  if (ignored.length > 0) notes.push(`keys Istio ignores: ${ignored.join(', ')}`);
  if (keys.some((k) => k.startsWith('cloud.'))) notes.push('cloud.region / cloud.availability_zone are not parsed by Istio 1.29 (istio/proxy master reads them)');
  notes.push(...unknownNotes(labels));
  return { kind: 'baggage', profile: 'baggage', peer: result.peer, labels, notes };
}

function decodeFrame(v: string): DecodeReport {
  const hex = v.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (hex.length % 2 !== 0) {
    throw new DecodeError(`tcp-frame hex has an odd number of digits (${hex.length})`, { kind: 'tcp-frame', reason: 'bad_frame' });
  }
  const buf = Buffer.from(hex, 'hex');
  const parser = createTcpFrameParser({ maxBytes: Math.max(buf.length, 8192) });
  let step = parser.push(buf);
  if (!step.done) step = parser.end();
  if (!step.done) throw new DecodeError('tcp-frame parser did not finish', { kind: 'tcp-frame' });
  if (!step.result.ok) {
    const declared = buf.length >= TCP_FRAME_HEADER_BYTES ? buf.readUInt32BE(4) : undefined;
    fail(
      'tcp-frame',
      step.result,
      step.result.reason === 'truncated' && declared !== undefined
        ? `the header declares ${declared} payload bytes but only ${buf.length - TCP_FRAME_HEADER_BYTES} follow`
        : 'Envoy sets peer_not_found and lets the bytes flow through',
    );
  }
  const notes: string[] = [];
  if (step.rest.length > 0) notes.push(`${step.rest.length} bytes after the frame (application data, passed on)`);
  let fields: StructFields = {};
  const any = decodeAny(buf.subarray(TCP_FRAME_HEADER_BYTES, TCP_FRAME_HEADER_BYTES + buf.readUInt32BE(4)));
  if (any.ok) {
    const outer = decodeStruct(any.value, 16);
    const inner = outer.ok ? outer.fields['x-envoy-peer-metadata'] : undefined;
    if (inner !== undefined && inner !== null && typeof inner === 'object' && !Array.isArray(inner)) {
      fields = plain(inner as StructFields);
      notes.push(...structNotes(encodeStruct(fields as EncodableStruct), fields, step.result.profile));
    }
  }
  const labels = peerLabels(step.result.peer);
  notes.push(...unknownNotes(labels));
  return { kind: 'tcp-frame', profile: step.result.profile, peer: step.result.peer, labels, peerId: step.peerId, struct: fields, notes };
}

function decodeNodeId(v: string): DecodeReport {
  const parsed = tryParseNodeId(v);
  const notes = ['the id is only the cache key: Istio caches the decoded peer by it and skips decoding the value on a hit'];
  // Any string is a valid id to Envoy (its tests use `client`, `server`); only say it is not Istio's form.
  if (parsed === undefined) notes.unshift('not in the sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local form pilot-agent writes');
  return { kind: 'x-envoy-peer-metadata-id', ...(parsed !== undefined ? { nodeId: parsed } : {}), notes };
}

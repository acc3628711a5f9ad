/**
 * The CEL attribute set Telemetry tag expressions see. Two vocabularies, resolved by top-level name (once per
 * request, lazily, by a scope the recorder reuses; expressions are compiled once, so nothing is parsed per request;
 * the commonest paths are read without the scope, attribute-readers.ts):
 *
 * Envoy's (what real Telemetry resources and istio/proxy's test configs use; envoy
 * `source/extensions/filters/common/expr/context.{h,cc}`, istio/proxy `extensions/common/metadata_object.cc`):
 * - `request.{headers, method, path, url_path, host, protocol, total_size, useragent, id}`
 * - `response.{code, flags, headers, total_size, grpc_status}`
 * - `connection.{mtls, uri_san_peer_certificate, uri_san_local_certificate}`
 * - `xds.node.{id, metadata[...], locality}`: the node metadata pilot-agent writes (NAME, NAMESPACE, CLUSTER_ID,
 *   WORKLOAD_NAME, OWNER, MESH_ID, ISTIO_VERSION, SERVICE_ACCOUNT, INSTANCE_IPS, LABELS{...}, other ISTIO_META_*
 *   keys); keys that are empty are absent, as in the Struct pilot-agent writes.
 * - `xds.cluster_name`, `xds.route_name`, `xds.cluster_metadata.filter_metadata.istio.services[i].{host,name,namespace}`
 *   (the `istio.services` cluster metadata istiod writes for a service cluster). Absent without a cluster/route.
 * - `filter_state.upstream_peer` / `filter_state.downstream_peer`: the peer as istio/proxy's peer_metadata filter
 *   stores it (`WorkloadMetadataObject::serializeAsProto`): `type, workload, name, cluster, namespace, service,
 *   revision, app, version, identity, region, availability_zone, labels`, each present only when non-empty
 *   (`name` only with a cluster, `type` only when known), `labels` = the peer's labels other than the canonical
 *   and app/version ones (Envoy keeps only its `additional_labels` there; meshtel keeps every extra label the peer
 *   sent, the same set when PILOT_MX_ADDITIONAL_LABELS is mesh-wide). Client: the upstream peer, on HTTP only (a
 *   TCP client's peer is in the upstream connection's filter state, which Envoy's CEL does not see); server: the
 *   downstream peer; waypoint: both.
 * - `source.{address, principal}`, `destination.{address, principal}` (address = the remote side when known).
 *
 * meshtel's (and Istio ≤1.17 Wasm's) shorter names, kept as aliases: `node.metadata[...]` (= `xds.node.metadata`),
 * `upstream_peer.*` / `downstream_peer.*` (every field, `''` when the peer did not send it, all labels it sent).
 *
 * A missing attribute, field or key is an evaluation error, so the tag value becomes `unknown` (istio_stats.cc
 * pushes `unknown` for a failed evaluation; mx-vectors #14).
 */
import type { PeerMetadata, WorkloadMetadata } from '../metadata/types.js';
import { formatNodeId } from '../metadata/node-id.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter } from './types.js';
import type { CelMap, CelValue, ExpressionScope } from './expression.js';
import { LABEL_APP, LABEL_APP_QUALIFIED, LABEL_CANONICAL_NAME, LABEL_CANONICAL_REVISION, LABEL_VERSION, LABEL_VERSION_QUALIFIED } from '../metadata/owner.js';

function headerMap(h: Readonly<Record<string, string | string[] | undefined>> | undefined): CelMap {
  const out: Record<string, string> = {};
  if (h === undefined) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  }
  return out;
}

/** The alias `upstream_peer` / `downstream_peer`: every field, `''` when absent (meshtel's own vocabulary). */
function peerObject(p: PeerMetadata): CelMap {
  return {
    name: p.name,
    namespace: p.namespace,
    cluster: p.cluster,
    service: p.canonicalService,
    revision: p.canonicalRevision,
    app: p.app,
    version: p.version,
    workload: p.workload,
    type: p.workloadType,
    identity: p.identity,
    region: p.region,
    availability_zone: p.zone,
    labels: { ...p.labels },
  };
}

/** Labels the peer_metadata filter reads into fields, never into `labels` (metadata_object.cc). */
const FIELD_LABELS: ReadonlySet<string> = new Set([LABEL_CANONICAL_NAME, LABEL_CANONICAL_REVISION, LABEL_APP, LABEL_APP_QUALIFIED, LABEL_VERSION, LABEL_VERSION_QUALIFIED]);

const peerStructs = new WeakMap<PeerMetadata, CelMap>();

/**
 * `filter_state.{upstream,downstream}_peer` exactly as Envoy's CEL sees the CelState the 1.29 peer_metadata filter
 * stores: the Struct `WorkloadMetadataObject::serializeAsProto` writes, a key only when its value is non-empty.
 * Envoy writes `name` only when the cluster is non-empty (it tests the cluster field); replayed as is. Peers are
 * frozen and shared (peer cache), so the struct is built once per peer.
 */
function peerStruct(p: PeerMetadata): CelMap {
  let m = peerStructs.get(p);
  if (m !== undefined) return m;
  const out: Record<string, CelValue> = {};
  if (p.workloadType !== 'unknown') out.type = p.workloadType;
  if (p.workload !== '') out.workload = p.workload;
  if (p.cluster !== '') out.name = p.name;
  if (p.cluster !== '') out.cluster = p.cluster;
  if (p.namespace !== '') out.namespace = p.namespace;
  if (p.canonicalService !== '') out.service = p.canonicalService;
  if (p.canonicalRevision !== '') out.revision = p.canonicalRevision;
  if (p.app !== '') out.app = p.app;
  if (p.version !== '') out.version = p.version;
  if (p.identity !== '') out.identity = p.identity;
  if (p.region !== '') out.region = p.region;
  if (p.zone !== '') out.availability_zone = p.zone;
  const labels: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(p.labels)) {
    if (FIELD_LABELS.has(k)) continue;
    labels[k] = v;
    n++;
  }
  if (n > 0) out.labels = labels;
  m = Object.freeze(out);
  peerStructs.set(p, m);
  return m;
}

/** A JSON-ish node metadata value as a CEL value (Struct semantics); functions and the like are dropped. */
function celOf(v: unknown, depth: number): CelValue | undefined {
  if (typeof v === 'string' || typeof v === 'boolean' || v === null) return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (depth > 8) return undefined;
  if (Array.isArray(v)) return v.map((x) => celOf(x, depth + 1) ?? null);
  if (typeof v === 'object') {
    const out: Record<string, CelValue> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const c = celOf(x, depth + 1);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  return undefined;
}

/** The node metadata Struct pilot-agent writes for this workload: empty values are absent keys. */
function nodeMetadata(local: WorkloadMetadata): CelMap {
  const md: Record<string, CelValue> = {};
  for (const [k, v] of Object.entries(local.extra ?? {})) {
    const c = celOf(v, 0);
    if (c !== undefined) md[k] = c;
  }
  const put = (k: string, v: string): void => {
    if (v !== '') md[k] = v;
  };
  put('NAME', local.name);
  put('NAMESPACE', local.namespace);
  put('CLUSTER_ID', local.cluster);
  put('WORKLOAD_NAME', local.workload);
  put('OWNER', local.owner);
  put('MESH_ID', local.meshId);
  put('ISTIO_VERSION', local.istioVersion);
  put('SERVICE_ACCOUNT', local.serviceAccount);
  put('INSTANCE_IPS', local.instanceIps.join(','));
  md.LABELS = { ...local.podLabels };
  return md;
}

interface LocalObjects {
  /** `xds.node` (config.core.v3.Node). */
  readonly xdsNode: CelMap;
  /** The alias `node`. */
  readonly node: CelMap;
}

const localObjects = new WeakMap<WorkloadMetadata, LocalObjects>();

/** Built once per local workload (metadata is frozen at start-up). */
function localObjectsOf(local: WorkloadMetadata): LocalObjects {
  let o = localObjects.get(local);
  if (o !== undefined) return o;
  const metadata = nodeMetadata(local);
  let id: string | undefined;
  try {
    id = formatNodeId(local);
  } catch {
    // Metadata without a pod or workload name has no node id: `xds.node.id` is then missing.
  }
  const xdsNode: CelMap = {
    ...(id !== undefined ? { id } : {}),
    metadata,
    // A message field: always present, '' when unset (Envoy's Node.locality from ISTIO_LOCALITY).
    locality: { region: local.region, zone: local.zone, sub_zone: '' },
  };
  // The alias keeps meshtel's earlier form: every key, '' included.
  const node: CelMap = {
    metadata: {
      ...metadata,
      NAME: local.name,
      NAMESPACE: local.namespace,
      CLUSTER_ID: local.cluster,
      WORKLOAD_NAME: local.workload,
      OWNER: local.owner,
      MESH_ID: local.meshId,
      ISTIO_VERSION: local.istioVersion,
      SERVICE_ACCOUNT: local.serviceAccount,
      INSTANCE_IPS: local.instanceIps.join(','),
    },
  };
  o = { xdsNode, node };
  localObjects.set(local, o);
  return o;
}

/**
 * `xds.*`: the node, and the cluster and route the request took. Cluster metadata is what istiod writes on a
 * service cluster (`filter_metadata.istio.services`), empty for clusters without a service (passthrough).
 */
function xdsObject(local: LocalObjects, c: ConnectionAttributes): CelMap {
  const out: Record<string, CelValue> = { node: local.xdsNode };
  const cluster = c.clusterName;
  if (cluster !== undefined && cluster !== '') {
    out.cluster_name = cluster;
    const svc = c.service ?? null;
    out.cluster_metadata = {
      filter_metadata: svc !== null ? { istio: { services: [{ host: svc.host, name: svc.name, namespace: svc.namespace }] } } : {},
    };
  }
  if (c.routeName !== undefined && c.routeName !== '') out.route_name = c.routeName;
  return out;
}

function splitAddress(addr: string | undefined): CelMap {
  if (addr === undefined || addr === '') return {};
  return { address: addr };
}

/** Marks a top-level name not resolved yet in this request (`undefined` is a resolved "absent"). */
const UNRESOLVED: unique symbol = Symbol('unresolved');
type Slot = CelValue | undefined | typeof UNRESOLVED;


/**
 * The attribute scope of one request or connection. The recorder keeps one and {@link AttributeScope.reset}s it per
 * request, so a request allocates nothing until an expression reads a top-level name; each name is then built once
 * per request (the `request` object, with its header map, once however many expressions read it). The node objects
 * are per process and built once.
 */
export class AttributeScope implements ExpressionScope {
  private readonly localObjects: LocalObjects;
  private c: ConnectionAttributes | undefined = undefined;
  private a: HttpStreamAttributes | undefined = undefined;
  private reporter: Reporter = 'source';
  private request: Slot = UNRESOLVED;
  private response: Slot = UNRESOLVED;
  private source: Slot = UNRESOLVED;
  private destination: Slot = UNRESOLVED;
  private connection: Slot = UNRESOLVED;
  private xds: Slot = UNRESOLVED;
  private filterState: Slot = UNRESOLVED;
  private upstreamPeer: Slot = UNRESOLVED;
  private downstreamPeer: Slot = UNRESOLVED;
  constructor(local: WorkloadMetadata) {
    this.localObjects = localObjectsOf(local);
  }

  /** Point the scope at another request (`a`) or connection (`a` undefined); forgets what the last one built. */
  reset(c: ConnectionAttributes | undefined, a: HttpStreamAttributes | undefined, reporter: Reporter): void {
    this.c = c;
    this.a = a;
    this.reporter = reporter;
    this.request = UNRESOLVED;
    this.response = UNRESOLVED;
    this.source = UNRESOLVED;
    this.destination = UNRESOLVED;
    this.connection = UNRESOLVED;
    this.xds = UNRESOLVED;
    this.filterState = UNRESOLVED;
    this.upstreamPeer = UNRESOLVED;
    this.downstreamPeer = UNRESOLVED;
  }

  /** Forget the request or connection (the reused scope must not keep it alive); the next use resets. */
  release(): void {
    this.c = undefined;
    this.a = undefined;
  }

  resolve(name: string): CelValue | undefined {
    switch (name) {
      case 'request':
        if (this.request === UNRESOLVED) this.request = this.a === undefined ? undefined : requestObject(this.a);
        return this.request;
      case 'response':
        if (this.response === UNRESOLVED) this.response = this.a === undefined ? undefined : responseObject(this.a);
        return this.response;
      case 'source':
        if (this.source === UNRESOLVED) this.source = this.endpoint(this.reporter === 'source');
        return this.source;
      case 'destination':
        if (this.destination === UNRESOLVED) this.destination = this.endpoint(this.reporter !== 'source');
        return this.destination;
      case 'connection':
        if (this.connection === UNRESOLVED) {
          const c = this.conn();
          this.connection = {
            mtls: c.peerPrincipal !== '' && c.localPrincipal !== '',
            uri_san_peer_certificate: c.peerPrincipal,
            uri_san_local_certificate: c.localPrincipal,
          };
        }
        return this.connection;
      case 'xds':
        if (this.xds === UNRESOLVED) this.xds = xdsObject(this.localObjects, this.conn());
        return this.xds;
      case 'filter_state':
        if (this.filterState === UNRESOLVED) {
          // Client: the upstream peer; server: the downstream peer; waypoint: both (the peer_metadata filter's keys).
          // A TCP connection reported by the client has none: Envoy's TCP MX writes the upstream peer to the upstream
          // connection's filter state, which the stats filter reads labels from, while its CEL activation is the
          // downstream connection's (istio_stats.cc `reportHelper`: `upstreamFilterState()` for the peer,
          // `stream_.evaluate(info)` with the downstream `info`). HTTP peers are on the stream (peer_metadata
          // `setFilterState`), visible on both sides.
          const out: Record<string, CelValue> = {};
          const up = this.a === undefined && this.reporter === 'source' ? null : this.upstream();
          const down = this.downstream();
          if (up !== null && up !== undefined) out.upstream_peer = peerStruct(up);
          if (down !== null && down !== undefined) out.downstream_peer = peerStruct(down);
          this.filterState = out;
        }
        return this.filterState;
      case 'upstream_peer':
        // Client side: the peer is upstream; waypoint: upstreamPeer. Inbound has none (error → unknown).
        if (this.upstreamPeer === UNRESOLVED) {
          const p = this.upstream();
          this.upstreamPeer = p === null ? undefined : peerObject(p);
        }
        return this.upstreamPeer;
      case 'downstream_peer':
        if (this.downstreamPeer === UNRESOLVED) {
          const p = this.downstream();
          this.downstreamPeer = p === null ? undefined : peerObject(p);
        }
        return this.downstreamPeer;
      case 'node':
        return this.localObjects.node;
      default:
        return undefined;
    }
  }

  private conn(): ConnectionAttributes {
    return (this.c ?? this.a) as ConnectionAttributes;
  }

  private upstream(): PeerMetadata | null {
    const c = this.conn();
    return this.reporter === 'source' ? c.peer : this.reporter === 'waypoint' ? (c.upstreamPeer ?? null) : null;
  }

  private downstream(): PeerMetadata | null {
    return this.reporter === 'source' ? null : this.conn().peer;
  }

  /** `source` / `destination`: the local side has the principal only, the remote side its address too. */
  private endpoint(local: boolean): CelMap {
    const c = this.conn();
    return local ? { principal: c.localPrincipal } : { ...splitAddress(c.remoteAddress), principal: c.peerPrincipal };
  }
}

/** `request.*` (envoy expr/context.h request attributes); the header map is built once. */
function requestObject(a: HttpStreamAttributes): CelMap {
  const headers = headerMap(a.requestHeaders);
  const out: Record<string, CelValue> = { headers };
  if (a.method !== undefined) out.method = a.method;
  if (a.path !== undefined) {
    out.path = a.path;
    out.url_path = a.path.split('?')[0] ?? '';
  }
  out.host = a.authority;
  out.protocol = a.protocol === 'grpc' ? 'HTTP/2' : 'HTTP/1.1';
  out.total_size = a.requestBytes;
  if (a.requestHeaders?.['user-agent'] !== undefined) out.useragent = headers['user-agent'] as string;
  if (a.requestHeaders?.['x-request-id'] !== undefined) out.id = headers['x-request-id'] as string;
  return out;
}

/** `response.*`. */
function responseObject(a: HttpStreamAttributes): CelMap {
  const out: Record<string, CelValue> = {
    code: a.responseCode,
    flags: a.responseFlags,
    headers: headerMap(a.responseHeaders),
    total_size: a.responseBytes,
  };
  if (a.protocol === 'grpc' && a.grpcStatus !== undefined) out.grpc_status = Number(a.grpcStatus);
  return out;
}

/**
 * The attribute scope for one request or connection, as a new object (tests, one-off evaluations); the recorder
 * reuses one {@link AttributeScope}.
 */
export function createScope(local: WorkloadMetadata, c: ConnectionAttributes, a: HttpStreamAttributes | undefined, reporter: Reporter): ExpressionScope {
  const scope = new AttributeScope(local);
  scope.reset(c, a, reporter);
  return scope;
}

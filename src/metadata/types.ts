/**
 * The shapes every later stage shares: who this workload is (`WorkloadMetadata`), who the peer is
 * (`PeerMetadata`, Istio's WorkloadMetadataObject) and the result of trying to learn the peer
 * (`PeerResult`, never an exception).
 *
 * Field names follow istio/proxy `extensions/common/metadata_object.h` (WorkloadMetadataObject).
 */

/** Workload kinds Istio recognises when parsing OWNER (`parseOwner`); anything else is `unknown`. */
export type WorkloadType = 'pod' | 'deployment' | 'job' | 'cronjob' | 'unknown';

/** Proxy kinds in a node id (`sidecar~...`, `router~...`, `waypoint~...`). */
export type ProxyType = 'sidecar' | 'router' | 'waypoint';

/**
 * A peer workload as learned by metadata exchange (HTTP headers, baggage or the TCP frame).
 * Every field is a string, `''` when the peer did not send it; the stats stage applies Istio's
 * `unknown` / `latest` fallbacks, not this layer.
 */
export interface PeerMetadata {
  /** Pod (instance) name, NAME. */
  readonly name: string;
  /** Kubernetes namespace, NAMESPACE. */
  readonly namespace: string;
  /** Cluster id, CLUSTER_ID. */
  readonly cluster: string;
  /** Workload (deployment, job, ...) name, WORKLOAD_NAME. */
  readonly workload: string;
  /** Workload type parsed from OWNER. */
  readonly workloadType: WorkloadType;
  /** `service.istio.io/canonical-name` label. */
  readonly canonicalService: string;
  /** `service.istio.io/canonical-revision` label. */
  readonly canonicalRevision: string;
  /** `app` label (1.29: `app.kubernetes.io/name` first). */
  readonly app: string;
  /** `version` label (1.29: `app.kubernetes.io/version` first). */
  readonly version: string;
  /** SPIFFE identity, IDENTITY (1.29+), e.g. `spiffe://cluster.local/ns/default/sa/bookinfo`. */
  readonly identity: string;
  /** Locality region, REGION. */
  readonly region: string;
  /** Locality zone, AVAILABILITY_ZONE. */
  readonly zone: string;
  /**
   * Labels carried: every LABELS entry the peer sent (the four standard ones plus PILOT_MX_ADDITIONAL_LABELS
   * from a reduced peer, all pod labels from a flat-node peer, none from baggage); all pod labels locally.
   */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * This proxy's own identity, loaded once at start-up (env, downward-API files, YAML, options) and
 * frozen. A superset of {@link PeerMetadata} so that local and peer values derive labels the same way.
 */
export interface WorkloadMetadata extends PeerMetadata {
  /** OWNER as given, e.g. `kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1`. */
  readonly owner: string;
  /** MESH_ID (defaults to the trust domain, as the injector does). */
  readonly meshId: string;
  /** Kubernetes service account (SERVICE_ACCOUNT). */
  readonly serviceAccount: string;
  /** SPIFFE trust domain, default `cluster.local`. */
  readonly trustDomain: string;
  /** INSTANCE_IPS / INSTANCE_IP; the first one goes into the node id. */
  readonly instanceIps: readonly string[];
  /** ISTIO_VERSION, reported by `istio_build{tag}`. */
  readonly istioVersion: string;
  /** Kind of proxy this is (node id prefix). */
  readonly proxyType: ProxyType;
  /** All pod labels as read from the downward API (pod-template-hash dropped). */
  readonly podLabels: Readonly<Record<string, string>>;
  /** Pod annotations from the downward API. */
  readonly annotations: Readonly<Record<string, string>>;
  /** Other node metadata (remaining ISTIO_META_* keys, PLATFORM_METADATA, APP_CONTAINERS, ...). */
  readonly extra: Readonly<Record<string, unknown>>;
}

/**
 * Every reason a peer can be unknown, in a stable order; {@link UnknownPeerReason} is derived from this list, so a
 * new reason is added here once and every exhaustive check (and test) sees it.
 */
export const UNKNOWN_PEER_REASONS = Object.freeze([
  /** The request/response carried no MX header, baggage or frame at all. */
  'no_header',
  /** An id header arrived without a value header. */
  'id_only',
  /** The value header is not valid base64. */
  'bad_base64',
  /** The bytes are not a google.protobuf.Struct, or a known key (NAME, LABELS, ...) holds a non-string. */
  'not_struct',
  /** The value exceeds the configured size limit. */
  'too_large',
  /** The Struct nests deeper than allowed. */
  'too_deep',
  /** A baggage header has no usable entries. */
  'bad_baggage',
  /** A TCP stream does not start with the istio-peer-exchange magic. */
  'not_mx',
  /** A TCP MX frame is malformed (bad Any, bad length). */
  'bad_frame',
  /** The connection closed before a whole frame arrived. */
  'truncated',
  /** MX is switched off for this destination (IN_MESH mode, external host, disabled). */
  'mx_disabled',
  /** The peer answered but sent no MX (no sidecar on the other side). */
  'no_peer_proxy',
] as const);

/**
 * Why a peer is unknown (one of {@link UNKNOWN_PEER_REASONS}). Exported as the `reason` label of
 * `meshtel_peer_unknown_total` (perf-anchors §4 item 4: users get no reason why a label is unknown).
 */
export type UnknownPeerReason = (typeof UNKNOWN_PEER_REASONS)[number];

/** The result of every decoder and discovery method. Decoders never throw on the request path. */
export type PeerResult =
  | { readonly ok: true; readonly peer: PeerMetadata; readonly profile: PayloadProfile | 'baggage' }
  | { readonly ok: false; readonly reason: UnknownPeerReason; readonly detail?: string };

/**
 * MX payload profiles Istio has shipped (spec §0):
 * - `flat`: Istio ≤1.23, the whole flat node (all labels, MESH_ID, ISTIO_VERSION, INSTANCE_IPS, ...).
 * - `reduced`: Istio 1.24–1.28, WorkloadMetadataObject keys only.
 * - `reduced-1.29`: what a real Istio 1.29 sidecar sends, the default: reduced keys, LABELS.app/version read from
 *   `app.kubernetes.io/name`/`version` first; the TCP frame adds REGION/AVAILABILITY_ZONE (node locality), the HTTP
 *   header does not; no IDENTITY, because pilot-agent never puts an IDENTITY key into the node metadata.
 * - `reduced-identity`: `reduced-1.29` plus IDENTITY, what the 1.29 codec writes when node metadata does carry
 *   IDENTITY (never from pilot-agent): opt-in only. It makes plain-text peers report our SPIFFE id as a principal.
 *
 * A decoder cannot tell `reduced-1.29` from `reduced` (same keys); decoding reports `reduced` for both.
 */
export type PayloadProfile = 'flat' | 'reduced' | 'reduced-1.29' | 'reduced-identity';

/** Every {@link PayloadProfile}, for option validation and `--profile`. */
export const PAYLOAD_PROFILES: readonly PayloadProfile[] = Object.freeze(['flat', 'reduced', 'reduced-1.29', 'reduced-identity']);

/** The profile sent unless another is asked for by name: byte-identical to an Istio 1.29 sidecar. */
export const DEFAULT_PAYLOAD_PROFILE: PayloadProfile = 'reduced-1.29';

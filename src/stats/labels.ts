/**
 * Where every peer/local label of Istio's standard metrics is computed: the 19 workload/service labels
 * and `connection_security_policy`, per reporter. Per-request labels (`request_protocol`,
 * `response_code`, `grpc_response_status`, `response_flags`) are filled by the recorder from
 * `grpc-status.ts` and `response-flags.ts`.
 *
 * A line-by-line port of the decisions in istio/proxy
 * `source/extensions/filters/http/istio_stats/istio_stats.cc` `populatePeerInfo` (spec §4):
 * - local values are the raw strings, `""` included (no `unknown` fallback);
 * - peer values fall back to `unknown`, the peer canonical revision to `latest`;
 * - the peer namespace comes from the SPIFFE SAN first (`spiffe://td/ns/<ns>/sa/<sa>`), then the peer.
 *
 * `""` values: Istio keeps local raw values, so `destination_version=""` appears when the local pod has
 * no `version` label (real 1.17.8 output, mx-vectors #12). We keep that for byte compatibility even
 * though Prometheus treats `l=""` as "label absent" (consumers.md §0); deployments that need `unknown`
 * should give the workload the label.
 */
import type { WorkloadMetadata, PeerMetadata } from '../metadata/types.js';
import type { ConnectionAttributes, Reporter } from './types.js';
import { LABEL_INDEX as L } from './definitions.js';

/** The peer fallback value. */
export const UNKNOWN = 'unknown';
/** The peer canonical-revision fallback value. */
export const LATEST = 'latest';

/** The local values Istio reads from node metadata once (istio_stats.cc `Context`). */
export interface LocalLabelValues {
  readonly workload: string;
  readonly namespace: string;
  readonly cluster: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  /** The local `app` label (raw; Istio 1.29 still reads `app` only on the local side, spec §8.5). */
  readonly app: string;
  /** The local `version` label (raw). */
  readonly version: string;
}

/** Read the local label values from this workload's metadata (done once at construction). */
export function localLabelValues(local: WorkloadMetadata): LocalLabelValues {
  const podLabels = local.podLabels ?? {};
  const hasPodLabels = Object.keys(podLabels).length > 0;
  return Object.freeze({
    workload: local.workload,
    namespace: local.namespace,
    cluster: local.cluster,
    canonicalService: local.canonicalService,
    canonicalRevision: local.canonicalRevision,
    // With downward-API labels, mirror Envoy: the `app`/`version` labels only; without them
    // (metadata built from options) the resolved app/version is all we have.
    app: hasPodLabels ? (podLabels.app ?? '') : local.app,
    version: hasPodLabels ? (podLabels.version ?? '') : local.version,
  });
}

/**
 * The namespace of a SPIFFE id `spiffe://<td>/ns/<ns>/sa/<sa>`, or `''` when it has none
 * (istio/proxy `extensions/common/metadata_object.cc` `getNamespace`: the segment after `/ns/`).
 */
export function namespaceFromSpiffe(san: string): string {
  if (san === '') return '';
  const i = san.indexOf('/ns/');
  if (i < 0) return '';
  const start = i + 4;
  const end = san.indexOf('/', start);
  return end < 0 ? san.slice(start) : san.slice(start, end);
}

function or(value: string | undefined, fallback: string): string {
  return value !== undefined && value !== '' ? value : fallback;
}

/**
 * Fill slots 0–19 (`reporter` .. `destination_cluster`) and 24 (`connection_security_policy`) of a
 * 25-slot label vector ordered as `HTTP_LABELS`.
 *
 * @param hostFallback use the request Host/`:authority` (port kept) as service host and name when the
 *   registry has no service; Istio enables it on sidecar outbound only.
 * @param authority the Host header, for the fallback (`''` for TCP).
 */
export function derivePeerLabels(
  local: LocalLabelValues,
  a: ConnectionAttributes,
  hostFallback: boolean,
  authority: string,
  out: string[],
): void {
  const reporter: Reporter = a.reporter;
  // Tolerate JS callers that omit optional-looking fields: undefined reads as "absent".
  const peer: PeerMetadata | null = a.peer ?? null;
  const service = a.service ?? null;
  out[L.reporter] = reporter;

  // Destination service host/name (populatePeerInfo: Host header, then special clusters, then
  // cluster metadata istio.services[0]).
  let serviceHost = '';
  let serviceName = '';
  if (hostFallback && authority !== '') {
    serviceHost = authority;
    serviceName = authority;
  }
  if (a.specialCluster !== undefined) {
    serviceName = a.specialCluster;
  } else if (service !== null) {
    serviceHost = service.host;
    serviceName = service.name !== '' ? service.name : hostLabel(service.host);
  }

  // Client side reads the upstream TLS connection: its peer cert is the server, its local cert is us.
  const peerSan = a.peerPrincipal ?? '';
  const localSan = a.localPrincipal ?? '';
  const peerNamespace = or(namespaceFromSpiffe(peerSan), peer?.namespace ?? '');

  if (reporter === 'source') {
    out[L.source_workload] = local.workload;
    out[L.source_canonical_service] = local.canonicalService;
    out[L.source_canonical_revision] = local.canonicalRevision;
    out[L.source_workload_namespace] = local.namespace;
    out[L.source_principal] = or(localSan, UNKNOWN);
    out[L.source_app] = local.app;
    out[L.source_version] = local.version;
    out[L.source_cluster] = local.cluster;
    out[L.destination_workload] = or(peer?.workload, UNKNOWN);
    out[L.destination_workload_namespace] = or(peerNamespace, UNKNOWN);
    // Spec §4: upstream peer cert SAN, else the peer's IDENTITY (1.29 MX), else unknown.
    out[L.destination_principal] = or(peerSan, or(peer?.identity, UNKNOWN));
    out[L.destination_app] = or(peer?.app, UNKNOWN);
    out[L.destination_version] = or(peer?.version, UNKNOWN);
    out[L.destination_service] = or(serviceHost, UNKNOWN);
    out[L.destination_canonical_service] = or(peer?.canonicalService, UNKNOWN);
    out[L.destination_canonical_revision] = or(peer?.canonicalRevision, LATEST);
    out[L.destination_service_name] = or(serviceName, UNKNOWN);
    out[L.destination_service_namespace] = or(service?.namespace, or(peerNamespace, UNKNOWN));
    out[L.destination_cluster] = or(peer?.cluster, UNKNOWN);
    // The client never computes mutual TLS (istio_stats.cc leaves mutual_tls_ unset).
    out[L.connection_security_policy] = UNKNOWN;
    return;
  }

  // destination and waypoint: source_* from the downstream peer.
  out[L.source_workload] = or(peer?.workload, UNKNOWN);
  out[L.source_canonical_service] = or(peer?.canonicalService, UNKNOWN);
  out[L.source_canonical_revision] = or(peer?.canonicalRevision, LATEST);
  out[L.source_workload_namespace] = or(peerNamespace, UNKNOWN);
  out[L.source_principal] = or(peerSan, UNKNOWN);
  out[L.source_app] = or(peer?.app, UNKNOWN);
  out[L.source_version] = or(peer?.version, UNKNOWN);
  out[L.source_cluster] = or(peer?.cluster, UNKNOWN);

  if (reporter === 'waypoint') {
    // ServerGateway branch (istio_stats.cc populatePeerInfo, unchanged 1.24-1.30): every destination_* label
    // from the upstream peer or the cluster's service, `unknown` when empty (the revision too, not `latest`),
    // and destination_cluster is the upstream workload's cluster, not the waypoint's own.
    const up = a.upstreamPeer ?? null;
    out[L.destination_workload] = or(up?.workload, UNKNOWN);
    out[L.destination_workload_namespace] = or(up?.namespace, UNKNOWN);
    out[L.destination_principal] = or(up?.identity, UNKNOWN);
    out[L.destination_app] = or(up?.app, UNKNOWN);
    out[L.destination_version] = or(up?.version, UNKNOWN);
    out[L.destination_service] = or(serviceHost, UNKNOWN);
    out[L.destination_canonical_service] = or(up?.canonicalService, UNKNOWN);
    out[L.destination_canonical_revision] = or(up?.canonicalRevision, UNKNOWN);
    out[L.destination_service_name] = or(serviceName, UNKNOWN);
    out[L.destination_service_namespace] = or(service?.namespace, UNKNOWN);
    out[L.destination_cluster] = or(up?.cluster, UNKNOWN);
    out[L.connection_security_policy] = peerSan !== '' && localSan !== '' ? 'mutual_tls' : 'none';
    return;
  }
  out[L.destination_workload] = local.workload;
  out[L.destination_workload_namespace] = local.namespace;
  out[L.destination_principal] = or(localSan, UNKNOWN);
  out[L.destination_app] = local.app;
  out[L.destination_version] = local.version;
  out[L.destination_service] = serviceHost !== '' ? serviceHost : local.canonicalService;
  out[L.destination_canonical_service] = local.canonicalService;
  out[L.destination_canonical_revision] = local.canonicalRevision;
  out[L.destination_service_name] = serviceName !== '' ? serviceName : local.canonicalService;
  out[L.destination_service_namespace] = local.namespace;
  out[L.destination_cluster] = local.cluster;
  // Server side: mutual TLS only when both SANs are known.
  out[L.connection_security_policy] = peerSan !== '' && localSan !== '' ? 'mutual_tls' : 'none';
}

/** First DNS label of a host (`reviews.default.svc.cluster.local` → `reviews`). */
function hostLabel(host: string): string {
  const i = host.indexOf('.');
  return i < 0 ? host : host.slice(0, i);
}

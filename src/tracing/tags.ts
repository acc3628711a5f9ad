/**
 * Span tag names and how their values are built, as Envoy and Istio write them.
 *
 * - Envoy built-in tags: envoy source/common/tracing/http_tracer_impl.cc (`finalizeDownstreamSpan`,
 *   `setCommonTags`) and source/common/tracing/common_values.h (`Tags`). Envoy writes every tag as a string.
 * - Istio tags: istio/istio pilot/pkg/networking/core/tracing.go `buildServiceTags` (literal values with
 *   fixed defaults) and, for the peer, the HEAD waypoint names `istio.{source,destination}_*`.
 */
import { hostOfAuthority } from '../core/service-names.js';
import type { PeerMetadata, WorkloadMetadata } from '../metadata/types.js';

/** Envoy's tag names (common_values.h `Tags`). */
export const TAG = Object.freeze({
  COMPONENT: 'component',
  NODE_ID: 'node_id',
  ZONE: 'zone',
  GUID_X_REQUEST_ID: 'guid:x-request-id',
  GUID_X_CLIENT_TRACE_ID: 'guid:x-client-trace-id',
  HTTP_URL: 'http.url',
  HTTP_METHOD: 'http.method',
  HTTP_PROTOCOL: 'http.protocol',
  HTTP_STATUS_CODE: 'http.status_code',
  DOWNSTREAM_CLUSTER: 'downstream_cluster',
  USER_AGENT: 'user_agent',
  PEER_ADDRESS: 'peer.address',
  REQUEST_SIZE: 'request_size',
  RESPONSE_SIZE: 'response_size',
  RESPONSE_FLAGS: 'response_flags',
  UPSTREAM_CLUSTER: 'upstream_cluster',
  UPSTREAM_CLUSTER_NAME: 'upstream_cluster.name',
  UPSTREAM_ADDRESS: 'upstream_address',
  ERROR: 'error',
  GRPC_STATUS_CODE: 'grpc.status_code',
});

/** `component` value for every proxy span. */
export const COMPONENT_PROXY = 'proxy';
/** Envoy `HttpConnectionManager.tracing.max_path_tag_length` default: the path in `http.url` is cut here. */
export const MAX_PATH_TAG_LENGTH = 256;

/** Request header read for the `user_agent` tag. */
export const USER_AGENT = 'user-agent';
/** Request header read for the `downstream_cluster` tag (`-` when absent). */
export const X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER = 'x-envoy-downstream-service-cluster';

/**
 * Istio's five literal service tags with their defaults (spec §5), keys in the sorted order Istio emits
 * them. Built once per tracer.
 */
export function buildIstioServiceTags(local: WorkloadMetadata): Readonly<Record<string, string>> {
  return Object.freeze({
    'istio.canonical_revision': local.canonicalRevision || 'latest',
    'istio.canonical_service': local.canonicalService || 'unknown',
    'istio.cluster_id': local.cluster || 'unknown',
    'istio.mesh_id': local.meshId || 'unknown',
    'istio.namespace': local.namespace || 'default',
  });
}

/**
 * The peer learned by metadata exchange, as Istio's waypoint tags name it: on a server span the peer is the
 * source (`istio.source_workload`, ...), on a client span the destination (`istio.destination_workload`, ...).
 * Fields the peer did not send are left out rather than written as empty strings.
 */
export function addPeerTags(attrs: Record<string, string>, prefix: 'istio.source_' | 'istio.destination_', peer: PeerMetadata): void {
  if (peer.workload) attrs[`${prefix}workload`] = peer.workload;
  if (peer.namespace) attrs[`${prefix}namespace`] = peer.namespace;
  if (peer.cluster) attrs[`${prefix}cluster_id`] = peer.cluster;
  if (peer.canonicalService) attrs[`${prefix}canonical_service`] = peer.canonicalService;
  if (peer.canonicalRevision) attrs[`${prefix}canonical_revision`] = peer.canonicalRevision;
  if (peer.app) attrs[`${prefix}app`] = peer.app;
  if (peer.version) attrs[`${prefix}app_version`] = peer.version;
  if (peer.workloadType && peer.workloadType !== 'unknown') attrs[`${prefix}workload_type`] = peer.workloadType;
  if (peer.name) attrs[`${prefix}instance_name`] = peer.name;
}

/** `http.url` with the path (query included) cut at {@link MAX_PATH_TAG_LENGTH}, as Envoy's `buildUrl`. */
export function truncateUrlPath(url: string): string {
  const schemeEnd = url.indexOf('://');
  const pathStart = url.indexOf('/', schemeEnd < 0 ? 0 : schemeEnd + 3);
  if (pathStart < 0 || url.length - pathStart <= MAX_PATH_TAG_LENGTH) return url;
  return url.slice(0, pathStart + MAX_PATH_TAG_LENGTH);
}

/** Envoy/Istio operation name `host:port/*` (route decorator; inbound `telemetry.TraceOperation(host, port)`). */
export function spanName(serviceHost: string | undefined, authority: string, port: number): string {
  return `${serviceHost || hostOfAuthority(authority)}:${port}/*`;
}

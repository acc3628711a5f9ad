/**
 * The contract between the filters that see traffic (src/sidecar, src/embed) and the stats stage:
 * what a filter knows about a finished HTTP/gRPC stream or a TCP connection. The stats stage turns
 * it into Istio's labels (istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc`).
 */
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';

/** Which side reports: outbound sidecar and gateways `source`, inbound `destination`, waypoints `waypoint`. */
export type Reporter = 'source' | 'destination' | 'waypoint';

/** A service from the registry, as in cluster metadata `istio.services[0]` = `{host,name,namespace}`. */
export interface ServiceInfo {
  /** FQDN, e.g. `reviews.default.svc.cluster.local`. */
  readonly host: string;
  /** Short name, e.g. `reviews`. */
  readonly name: string;
  /** Service namespace. */
  readonly namespace: string;
}

/**
 * Envoy response flags as bits, in Envoy's flag-bit order (envoy `source/common/stream_info/utility.h`
 * CORE_RESPONSE_FLAGS). `response_flags` prints the short codes of set bits in this order, joined by `,`,
 * or `-` when none is set.
 */
export const ResponseFlag = Object.freeze({
  LH: 1 << 0, // FailedLocalHealthCheck
  UH: 1 << 1, // NoHealthyUpstream
  UT: 1 << 2, // UpstreamRequestTimeout
  LR: 1 << 3, // LocalReset
  UR: 1 << 4, // UpstreamRemoteReset
  UF: 1 << 5, // UpstreamConnectionFailure
  UC: 1 << 6, // UpstreamConnectionTermination
  UO: 1 << 7, // UpstreamOverflow
  NR: 1 << 8, // NoRouteFound
  DI: 1 << 9, // DelayInjected
  FI: 1 << 10, // FaultInjected
  RL: 1 << 11, // RateLimited
  UAEX: 1 << 12, // UnauthorizedExternalService
  RLSE: 1 << 13, // RateLimitServiceError
  DC: 1 << 14, // DownstreamConnectionTermination
  URX: 1 << 15, // UpstreamRetryLimitExceeded
  SI: 1 << 16, // StreamIdleTimeout
  IH: 1 << 17, // InvalidEnvoyRequestHeaders
  DPE: 1 << 18, // DownstreamProtocolError
  UMSDR: 1 << 19, // UpstreamMaxStreamDurationReached
  RFCF: 1 << 20, // ResponseFromCacheFilter
  NFCF: 1 << 21, // NoFilterConfigFound
  DT: 1 << 22, // DurationTimeout
  UPE: 1 << 23, // UpstreamProtocolError
  NC: 1 << 24, // NoClusterFound
  OM: 1 << 25, // OverloadManager
  DF: 1 << 26, // DnsResolutionFailed
  DO: 1 << 27, // DropOverload
  DR: 1 << 28, // DownstreamRemoteReset
});

/** Names of the flags above. */
export type ResponseFlagName = keyof typeof ResponseFlag;

/** Special cluster names Istio reports as `destination_service_name`. */
export type SpecialCluster = 'PassthroughCluster' | 'BlackHoleCluster' | 'InboundPassthroughCluster';

/** Attributes shared by HTTP streams and TCP connections. */
export interface ConnectionAttributes {
  readonly reporter: Reporter;
  /** The peer as learned by MX, or null (then `peerUnknownReason` says why). */
  readonly peer: PeerMetadata | null;
  readonly peerUnknownReason?: UnknownPeerReason;
  /**
   * Waypoints only (reporter `waypoint`): the upstream (destination) workload, Envoy's `upstream_peer`.
   * `peer` is then the downstream (source) workload.
   */
  readonly upstreamPeer?: PeerMetadata | null;
  /** Peer certificate URI SAN (mTLS), `''` without TLS. */
  readonly peerPrincipal: string;
  /** Local certificate URI SAN (mTLS), `''` without TLS. */
  readonly localPrincipal: string;
  /** The destination service from the registry, or null when unknown. */
  readonly service: ServiceInfo | null;
  /** Set when the traffic went to a special cluster (passthrough, blackhole). */
  readonly specialCluster?: SpecialCluster;
  /** Downstream/peer address, for expressions (`source.address`). */
  readonly remoteAddress?: string;
  /**
   * The Envoy cluster the traffic went to, as Istio names it (`outbound|8080||reviews.default.svc.cluster.local`,
   * `inbound|9080||`, `PassthroughCluster`; see src/record/cluster.ts), for `xds.cluster_name`. Absent when no
   * cluster was chosen (no route), then the attribute is missing as in Envoy.
   */
  readonly clusterName?: string;
  /** The route that matched (Istio's generated routes are `default`, `allow_any`, `block_all`), for `xds.route_name`. */
  readonly routeName?: string;
}

/** A finished HTTP/1.1, HTTP/2 or gRPC stream. */
export interface HttpStreamAttributes extends ConnectionAttributes {
  /** `:authority` / Host verbatim (port included), used by host-header fallback. */
  readonly authority: string;
  /** `grpc` when content-type starts with application/grpc, else `http`. */
  readonly protocol: 'http' | 'grpc';
  /** HTTP status, 0 when no response was sent. */
  readonly responseCode: number;
  /** Raw grpc-status from trailers, else headers; undefined when absent (stats infers from the HTTP status). */
  readonly grpcStatus?: string;
  /** Bitmask of {@link ResponseFlag}. */
  readonly responseFlags: number;
  /** Request duration in milliseconds (stats truncates to an integer as Envoy does). */
  readonly durationMs: number;
  /** Downstream wire bytes received (headers + body). */
  readonly requestBytes: number;
  /** Downstream wire bytes sent (headers + body). */
  readonly responseBytes: number;
  /** Request method, path and headers, for Telemetry API expressions. */
  readonly method?: string;
  readonly path?: string;
  readonly requestHeaders?: Readonly<Record<string, string | string[] | undefined>>;
  readonly responseHeaders?: Readonly<Record<string, string | string[] | undefined>>;
  /** Trace id of a sampled span, attached as an exemplar. */
  readonly traceId?: string;
}

/**
 * Envoy cluster names as Istio's xDS generates them (istio/istio `pilot/pkg/model/service.go`
 * `BuildSubsetKey`: `direction|port|subset|host`), used for the `upstream_cluster` span tag.
 */
import type { ServiceInfo, SpecialCluster } from '../stats/types.js';

/** `inbound|<port>||`: the cluster of the local app behind an inbound listener. */
export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

/** `outbound|<port>||<host>`: the cluster of a mesh service port. */
export function outboundClusterName(port: number, host: string): string {
  return `outbound|${port}||${host}`;
}

/**
 * The cluster of an outbound request: a special cluster when routing chose one, the service's cluster when
 * the destination is a service, else `PassthroughCluster` (Istio's catch-all for `ALLOW_ANY`).
 */
export function outboundClusterOf(service: ServiceInfo | null, port: number, special?: SpecialCluster): string {
  if (special !== undefined) return special;
  return service ? outboundClusterName(port, service.host) : 'PassthroughCluster';
}

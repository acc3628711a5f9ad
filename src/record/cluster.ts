/**
 * Envoy cluster names as Istio's xDS generates them (istio/istio `pilot/pkg/model/service.go`
 * `BuildSubsetKey`: `direction|port|subset|host`), used for the `upstream_cluster` span tag and the
 * `xds.cluster_name` / `xds.route_name` expression attributes.
 */
import type { ServiceInfo, SpecialCluster } from '../stats/types.js';

/** `inbound|<port>||`: the cluster of the local app behind an inbound listener. */
export function inboundClusterName(port: number): string {
  // Called per request by the embedding (one listening port, a few at most): built once per port.
  let name = inboundNames.get(port);
  if (name === undefined) {
    name = `inbound|${port}||`;
    if (inboundNames.size < 64) inboundNames.set(port, name);
  }
  return name;
}
const inboundNames = new Map<number, string>();

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

/**
 * The name of the route that sent a request to `cluster`, as istiod names the routes it generates without a
 * VirtualService (istio/istio `pilot/pkg/networking/core/route`: `default` for a service or the inbound app,
 * `allow_any` for PassthroughCluster, `block_all` for BlackHoleCluster). `undefined` when no route matched.
 */
export function routeNameOf(cluster: string): string | undefined {
  if (cluster === '') return undefined;
  if (cluster === 'PassthroughCluster') return 'allow_any';
  if (cluster === 'BlackHoleCluster') return 'block_all';
  return 'default';
}

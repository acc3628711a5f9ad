/**
 * The CEL attribute set Telemetry tag expressions see (spec §4 "CEL attribute set", Envoy
 * `source/extensions/filters/common/expr/context.h` names, istio/proxy WorkloadMetadataObject fields):
 * - `request.{headers, method, path, url_path, host, protocol, total_size, useragent, id}`
 * - `response.{code, flags, headers, total_size, grpc_status}`
 * - `source.{address, principal}`, `destination.{address, principal}` (address = the remote side when known)
 * - `connection.{mtls, uri_san_peer_certificate, uri_san_local_certificate}`
 * - `upstream_peer.*` (client: the peer; waypoint: the upstream peer), `downstream_peer.*` (server, waypoint):
 *   `name, namespace, cluster, service, revision, app, version, workload, type, identity, region,
 *   availability_zone, labels`
 * - `node.metadata[...]`: NAME, NAMESPACE, CLUSTER_ID, WORKLOAD_NAME, OWNER, MESH_ID, ISTIO_VERSION,
 *   SERVICE_ACCOUNT, INSTANCE_IPS, LABELS, plus scalar `extra` node metadata.
 * An absent attribute is an evaluation error, so the tag value becomes `unknown` (as Envoy does for
 * `upstream_peer` inbound, mx-vectors #14).
 */
import type { PeerMetadata, WorkloadMetadata } from '../metadata/types.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter } from './types.js';
import type { CelMap, CelValue, ExpressionScope } from './expression.js';

function headerMap(h: Readonly<Record<string, string | string[] | undefined>> | undefined): CelMap {
  const out: Record<string, string> = {};
  if (h === undefined) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  }
  return out;
}

/** WorkloadMetadataObject as CEL sees it (istio/proxy metadata_object.h field names). */
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

function nodeObject(local: WorkloadMetadata): CelMap {
  const extra: Record<string, CelValue> = {};
  for (const [k, v] of Object.entries(local.extra ?? {})) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') extra[k] = v;
  }
  return {
    metadata: {
      ...extra,
      NAME: local.name,
      NAMESPACE: local.namespace,
      CLUSTER_ID: local.cluster,
      WORKLOAD_NAME: local.workload,
      OWNER: local.owner,
      MESH_ID: local.meshId,
      ISTIO_VERSION: local.istioVersion,
      SERVICE_ACCOUNT: local.serviceAccount,
      INSTANCE_IPS: local.instanceIps.join(','),
      LABELS: { ...local.podLabels },
    },
  };
}

function splitAddress(addr: string | undefined): CelMap {
  if (addr === undefined || addr === '') return {};
  return { address: addr };
}

/**
 * The attribute scope for one request or connection. Built lazily per top-level name: only
 * expressions that use `request` pay for its header map.
 */
export function createScope(local: WorkloadMetadata, c: ConnectionAttributes, a: HttpStreamAttributes | undefined, reporter: Reporter): ExpressionScope {
  const cache = new Map<string, CelValue | undefined>();
  const make = (name: string): CelValue | undefined => {
    switch (name) {
      case 'request':
        if (a === undefined) return undefined;
        return {
          headers: headerMap(a.requestHeaders),
          ...(a.method !== undefined ? { method: a.method } : {}),
          ...(a.path !== undefined ? { path: a.path, url_path: a.path.split('?')[0] ?? '' } : {}),
          host: a.authority,
          protocol: a.protocol === 'grpc' ? 'HTTP/2' : 'HTTP/1.1',
          total_size: a.requestBytes,
          ...(a.requestHeaders?.['user-agent'] !== undefined ? { useragent: headerMap(a.requestHeaders)['user-agent'] as string } : {}),
          ...(a.requestHeaders?.['x-request-id'] !== undefined ? { id: headerMap(a.requestHeaders)['x-request-id'] as string } : {}),
        };
      case 'response':
        if (a === undefined) return undefined;
        return {
          code: a.responseCode,
          flags: a.responseFlags,
          headers: headerMap(a.responseHeaders),
          total_size: a.responseBytes,
          ...(a.protocol === 'grpc' && a.grpcStatus !== undefined ? { grpc_status: Number(a.grpcStatus) } : {}),
        };
      case 'source':
        return reporter === 'source' ? { principal: c.localPrincipal } : { ...splitAddress(c.remoteAddress), principal: c.peerPrincipal };
      case 'destination':
        return reporter === 'source' ? { ...splitAddress(c.remoteAddress), principal: c.peerPrincipal } : { principal: c.localPrincipal };
      case 'connection':
        return {
          mtls: c.peerPrincipal !== '' && c.localPrincipal !== '',
          uri_san_peer_certificate: c.peerPrincipal,
          uri_san_local_certificate: c.localPrincipal,
        };
      case 'upstream_peer': {
        // Client side: the peer is upstream; waypoint: upstreamPeer. Inbound has none (error → unknown).
        const p = reporter === 'source' ? c.peer : reporter === 'waypoint' ? (c.upstreamPeer ?? null) : null;
        return p === null ? undefined : peerObject(p);
      }
      case 'downstream_peer': {
        const p = reporter === 'source' ? null : c.peer;
        return p === null ? undefined : peerObject(p);
      }
      case 'node':
        return nodeObject(local);
      default:
        return undefined;
    }
  };
  return {
    resolve(name: string): CelValue | undefined {
      if (cache.has(name)) return cache.get(name);
      const v = make(name);
      cache.set(name, v);
      return v;
    },
  };
}

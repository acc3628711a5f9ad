/**
 * The proxy node id, `<type>~<first IP>~<pod>.<namespace>~<namespace>.svc.cluster.local`
 * (I `pkg/istio-agent/agent.go` `ServiceNode()`, I `pkg/model/context.go` `ParseServiceNodeWithMetadata`).
 * It is also the value of `x-envoy-peer-metadata-id`, the key of the peer cache.
 */
import { isIP } from 'node:net';
import { ConfigError, quote } from '../core/errors.js';
import type { ProxyType, WorkloadMetadata } from './types.js';

/** A node id split into its parts. */
export interface ParsedNodeId {
  /** `sidecar`, `router` (gateways) or `waypoint`. */
  readonly type: ProxyType;
  /** The first instance IP. */
  readonly ip: string;
  /** Pod name (everything before the last `.` of the third part: pod names may contain dots, namespaces may not). */
  readonly podName: string;
  /** Pod namespace. */
  readonly namespace: string;
  /** DNS domain, normally `<namespace>.svc.cluster.local`. */
  readonly dnsDomain: string;
}

const TYPES: ReadonlySet<string> = new Set<ProxyType>(['sidecar', 'router', 'waypoint']);

/**
 * Format the node id of this workload. Throws ConfigError `MESHTEL_ERR_INVALID_METADATA` when the
 * metadata has neither a pod name nor a workload name to put in it.
 */
export function formatNodeId(meta: WorkloadMetadata): string {
  // pilot-agent falls back to loopback when the pod has no IP (off-cluster runs).
  const ip = meta.instanceIps[0] ?? '127.0.0.1';
  const pod = meta.name || meta.workload;
  if (pod === '') {
    throw new ConfigError('MESHTEL_ERR_INVALID_METADATA', 'workload metadata field name is needed for the node id, got ""', {
      field: 'name',
      value: '',
    });
  }
  return `${meta.proxyType}~${ip}~${pod}.${meta.namespace}~${meta.namespace}.svc.cluster.local`;
}

/** Why a node id does not parse, or `undefined` with the parts. */
function parse(id: string): ParsedNodeId | string {
  if (typeof id !== 'string') return 'is not a string';
  const parts = id.split('~');
  if (parts.length !== 4) return `has ${parts.length} "~"-separated parts, expected 4`;
  const [type, ip, podNs, dnsDomain] = parts as [string, string, string, string];
  if (!TYPES.has(type)) return `has type ${quote(type)}, expected sidecar, router or waypoint`;
  if (isIP(ip) === 0) return `has IP ${quote(ip)}, which is not an IP address`;
  const dot = podNs.lastIndexOf('.');
  if (dot <= 0 || dot === podNs.length - 1) return `has id ${quote(podNs)}, expected <pod>.<namespace>`;
  if (dnsDomain === '') return 'has an empty DNS domain';
  return { type: type as ProxyType, ip, podName: podNs.slice(0, dot), namespace: podNs.slice(dot + 1), dnsDomain };
}

/** Parse a node id. Throws ConfigError `MESHTEL_ERR_INVALID_NODE_ID` saying what is wrong. */
export function parseNodeId(id: string): ParsedNodeId {
  const r = parse(id);
  if (typeof r === 'string') {
    throw new ConfigError('MESHTEL_ERR_INVALID_NODE_ID', `node id ${quote(id)} ${r}`, { value: id });
  }
  return r;
}

/** Parse a node id; `undefined` instead of an exception (peer ids on the request path). */
export function tryParseNodeId(id: string): ParsedNodeId | undefined {
  const r = parse(id);
  return typeof r === 'string' ? undefined : r;
}

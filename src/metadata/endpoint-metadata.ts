/**
 * The client-side fallback when the upstream sends no MX: every EDS endpoint carries
 * `filter_metadata.istio.workload = "workload;namespace;canonicalService;canonicalRevision;clusterId"`
 * (I `pilot/pkg/networking/util/util.go` `AppendLbEndpointMetadata`, read by P
 * `extensions/common/metadata_object.cc` `convertEndpointMetadata`). It carries no app, version or identity.
 */
import type { PeerMetadata, WorkloadType } from './types.js';

const EMPTY_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** Format a workload as pilot does for an endpoint; the revision `latest` is sent as `""`. */
export function formatEndpointMetadata(meta: PeerMetadata): string {
  const revision = meta.canonicalRevision === 'latest' ? '' : meta.canonicalRevision;
  return `${meta.workload};${meta.namespace};${meta.canonicalService};${revision};${meta.cluster}`;
}

/** Parse endpoint metadata; fewer than 5 `;`-separated parts gives `undefined`, as in Istio. Never throws. */
export function parseEndpointMetadata(value: string): PeerMetadata | undefined {
  if (typeof value !== 'string') return undefined;
  const parts = value.split(';');
  if (parts.length < 5) return undefined;
  const [workload, namespace, canonicalService, canonicalRevision, cluster] = parts as [string, string, string, string, string];
  const workloadType: WorkloadType = 'unknown';
  return Object.freeze({
    name: '',
    namespace,
    cluster,
    workload,
    workloadType,
    canonicalService,
    canonicalRevision,
    app: '',
    version: '',
    identity: '',
    region: '',
    zone: '',
    labels: EMPTY_LABELS,
  });
}

/**
 * Istio's `WorkloadMetadataObject::serializeAsString()`: non-empty fields as `k=v` joined by `,` in the order
 * type, workload, name, cluster, namespace, service, revision, app, version, region, availability_zone.
 * Identity is not included. Istio appends `labels[]<k>=<v>` for PILOT_MX_ADDITIONAL_LABELS only; meshtel keeps
 * every received label in `labels` and cannot tell those apart, so labels are left out. A stable peer key.
 */
export function serializePeerAsString(peer: PeerMetadata): string {
  const parts: string[] = [];
  if (peer.workloadType !== 'unknown') parts.push(`type=${peer.workloadType}`);
  const add = (k: string, v: string): void => {
    if (v !== '') parts.push(`${k}=${v}`);
  };
  add('workload', peer.workload);
  add('name', peer.name);
  add('cluster', peer.cluster);
  add('namespace', peer.namespace);
  add('service', peer.canonicalService);
  add('revision', peer.canonicalRevision);
  add('app', peer.app);
  add('version', peer.version);
  add('region', peer.region);
  add('availability_zone', peer.zone);
  return parts.join(',');
}

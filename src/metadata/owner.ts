/**
 * OWNER parsing and rebuilding, and the label precedence rules Istio applies to a workload.
 *
 * Behaviour copied from istio/proxy `extensions/common/metadata_object.cc` (`parseOwner`, `owner()`,
 * `convertStructToWorkloadMetadata`) and istio/istio `pkg/kube/labels/labels.go` (`CanonicalService`).
 */
import type { WorkloadType } from './types.js';

/** Pod label holding the canonical service name (added by the injector). */
export const LABEL_CANONICAL_NAME = 'service.istio.io/canonical-name';
/** Pod label holding the canonical revision. */
export const LABEL_CANONICAL_REVISION = 'service.istio.io/canonical-revision';
/** Recommended Kubernetes app-name label (preferred over `app` by 1.29 peers). */
export const LABEL_APP_QUALIFIED = 'app.kubernetes.io/name';
/** Recommended Kubernetes version label (preferred over `version` by 1.29 peers). */
export const LABEL_VERSION_QUALIFIED = 'app.kubernetes.io/version';
/** The classic `app` label. */
export const LABEL_APP = 'app';
/** The classic `version` label. */
export const LABEL_VERSION = 'version';
/** Label the Deployment controller adds to every pod; Istio drops it from node metadata. */
export const LABEL_POD_TEMPLATE_HASH = 'pod-template-hash';

/** Prefix of the OWNER Istio rebuilds (P `OwnerPrefix`). */
const OWNER_PREFIX = 'kubernetes://apis/apps/v1/namespaces/';

const KNOWN_TYPES: ReadonlyMap<string, WorkloadType> = new Map<string, WorkloadType>([
  ['pod', 'pod'],
  ['deployment', 'deployment'],
  ['job', 'job'],
  ['cronjob', 'cronjob'],
]);

/**
 * Workload type from OWNER, exactly as P `parseOwner`: strip `"s/" + workload` from the end and take the
 * last path segment. Only pod/deployment/job/cronjob are recognised; StatefulSet, DaemonSet, ReplicaSet,
 * or an OWNER that does not end in the workload name give `unknown`.
 */
export function parseOwner(owner: string, workload: string): WorkloadType {
  // P checks only the length, not that the suffix really is "s/<workload>"; we do the same.
  if (owner.length > workload.length + 2) {
    const head = owner.slice(0, owner.length - workload.length - 2);
    const last = head.lastIndexOf('/');
    if (last !== -1) return KNOWN_TYPES.get(head.slice(last + 1)) ?? 'unknown';
  }
  return 'unknown';
}

/**
 * OWNER as Istio 1.24+ re-emits it: `kubernetes://apis/apps/v1/namespaces/<ns>/<type>s/<workload>`,
 * or `undefined` for an unknown type (the key is then omitted, P `WorkloadMetadataObject::owner()`).
 */
export function ownerFor(type: WorkloadType, namespace: string, workload: string): string | undefined {
  if (type === 'unknown') return undefined;
  return `${OWNER_PREFIX}${namespace}/${type}s/${workload}`;
}

/** First non-empty string, or `undefined`. */
function firstNonEmpty(...values: (string | undefined)[]): string | undefined {
  for (const v of values) if (v !== undefined && v !== '') return v;
  return undefined;
}

/**
 * Canonical service: label, then `app.kubernetes.io/name`, then `app`, then the workload name
 * (I `pkg/kube/labels/labels.go` `CanonicalService`).
 */
export function canonicalServiceOf(labels: Readonly<Record<string, string>>, workload: string): string {
  return firstNonEmpty(labels[LABEL_CANONICAL_NAME], labels[LABEL_APP_QUALIFIED], labels[LABEL_APP]) ?? workload;
}

/** Canonical revision: label, then `app.kubernetes.io/version`, then `version`, then `latest`. */
export function canonicalRevisionOf(labels: Readonly<Record<string, string>>): string {
  return firstNonEmpty(labels[LABEL_CANONICAL_REVISION], labels[LABEL_VERSION_QUALIFIED], labels[LABEL_VERSION]) ?? 'latest';
}

/** App as a 1.29 peer reads it from LABELS: `app.kubernetes.io/name` when non-empty, else `app`. */
export function appOf129(labels: Readonly<Record<string, string>>): string {
  return firstNonEmpty(labels[LABEL_APP_QUALIFIED]) ?? labels[LABEL_APP] ?? '';
}

/** Version as a 1.29 peer reads it: `app.kubernetes.io/version` when non-empty, else `version`. */
export function versionOf129(labels: Readonly<Record<string, string>>): string {
  return firstNonEmpty(labels[LABEL_VERSION_QUALIFIED]) ?? labels[LABEL_VERSION] ?? '';
}

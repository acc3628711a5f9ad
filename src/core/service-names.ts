/**
 * The one service-name resolver of meshtel: which Kubernetes Service an authority names, relative to the
 * caller's namespace, the way cluster DNS resolves it for a pod (search path `<ns>.svc.<domain>`,
 * `svc.<domain>`, `<domain>`; kubernetes/dns `docs/specification.md`). Used by the sidecar's registry,
 * the proxyless embedding and any stage that maps an authority to a service; it depends on nothing, so
 * every stage can import it.
 *
 * - `reviews` → `reviews.<caller-ns>.svc.<domain>`
 * - `reviews.ns2`, `reviews.ns2.svc` → `reviews.ns2.svc.<domain>`
 * - `reviews.ns2.svc.<domain>` (with or without the trailing dot) → itself
 * - IPs, `localhost` and any other name → not a service (`undefined`).
 */

/** A service named by an authority. */
export interface ServiceName {
  /** `name.namespace.svc.<domain>`. */
  readonly host: string;
  readonly name: string;
  readonly namespace: string;
}

/** The cluster DNS domain Kubernetes uses unless told otherwise. */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

const IP = /^\[?[0-9a-f:.]+\]?$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The host of an authority for name resolution and span names: {@link splitAuthority}'s host with IPv6 brackets
 * kept and the trailing dot dropped (`[::1]:80` → `[::1]`, `Reviews.NS.:80` → `reviews.ns`).
 */
export function hostOfAuthority(authority: string): string {
  const { host } = splitAuthority(authority);
  if (authority.startsWith('[')) return `[${host}]`;
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/**
 * Split `host[:port]` (IPv6 in brackets allowed), lower-casing the host; the port is undefined when absent or not
 * a valid port. The one authority parser: {@link hostOfAuthority} is built on it.
 */
export function splitAuthority(authority: string): { host: string; port: number | undefined } {
  let host = authority;
  let port: number | undefined;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    host = authority.slice(1, end === -1 ? undefined : end);
    const rest = end === -1 ? '' : authority.slice(end + 1);
    if (rest.startsWith(':')) port = Number(rest.slice(1));
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1 && authority.indexOf(':') === colon) {
      host = authority.slice(0, colon);
      port = Number(authority.slice(colon + 1));
    }
  }
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) port = undefined;
  return { host: host.toLowerCase(), port };
}

/**
 * The service an authority names for a caller in `callerNamespace`, or undefined when it names none.
 * Pure naming: whether the service exists is the caller's registry's business.
 */
export function resolveServiceName(authority: string, callerNamespace: string, domain: string = DEFAULT_CLUSTER_DOMAIN): ServiceName | undefined {
  const host = hostOfAuthority(authority);
  if (host === '' || host === 'localhost' || IP.test(host)) return undefined;
  const parts = host.split('.');
  const name = parts[0] as string;
  if (!LABEL.test(name)) return undefined;
  let namespace: string;
  if (parts.length === 1) {
    namespace = callerNamespace;
  } else {
    namespace = parts[1] as string;
    const rest = parts.slice(2).join('.');
    if (!(rest === '' || rest === 'svc' || rest === `svc.${domain}`) || !LABEL.test(namespace)) return undefined;
  }
  return { host: `${name}.${namespace}.svc.${domain}`, name, namespace };
}

/** Every spelling cluster DNS accepts for `name.namespace`, from a pod of any namespace or of its own. */
export function serviceNameForms(name: string, namespace: string, domain: string = DEFAULT_CLUSTER_DOMAIN): { readonly qualified: readonly string[]; readonly short: string } {
  return { qualified: [`${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${domain}`], short: name };
}

/**
 * The service registry: a mesh file that plays the part of Kubernetes Services plus Istio's EDS.
 * It answers "which service is this Host, and which endpoint do I send to", and carries the
 * endpoint's `istio.workload` metadata that the client falls back to when the upstream sent no MX
 * (istio/istio `pilot/pkg/networking/util/util.go` `AppendLbEndpointMetadata`).
 *
 * Everything is resolved at load time: every hostname variant of every service goes into one Map, so
 * routing a request is one `Map.get` on the lower-cased host plus a port lookup.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Zod from 'zod';
import { ConfigError, quote } from '../core/errors.js';
import { hostOfAuthority, resolveServiceName, splitAuthority } from '../core/service-names.js';
import { parseEndpointMetadata } from '../metadata/endpoint-metadata.js';
import type { PeerMetadata } from '../metadata/types.js';
import type { ServiceInfo } from '../stats/types.js';
import { outboundClusterName } from '../record/cluster.js';
import { yamlModule } from '../core/lazy-yaml.js';

/** Protocols a service port can declare (Istio's port-name prefixes `http-`, `http2-`, `grpc-`, `tcp-`). */
export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

const PORT_PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;

/**
 * zod and yaml are required on first use, not imported: a sidecar without a mesh never validates one, and zod alone
 * is ~5 MiB of its RSS (issue 16, bench/rss.bench.ts). Their CommonJS builds, required synchronously, keep
 * {@link parseMesh} and {@link createServiceRegistry} synchronous.
 */
const requireLazy = createRequire(import.meta.url);

function buildMeshSchema(z: typeof Zod.z) {
  const endpointSchema = z.strictObject({
    /** IP or host name to connect to. */
    address: z.string().min(1),
    /** Port per service port name; a missing name means "the service port number". */
    ports: z.record(z.string(), z.number().int().min(1).max(65535)).optional(),
    /**
     * Whether the endpoint runs a sidecar. Plain-text TCP MX frames are only sent to endpoints that
     * have one (Istio gates TCP MX on ALPN, which needs TLS; this flag stands in for it without TLS).
     */
    sidecar: z.boolean().default(true),
    /** Istio EDS `istio.workload`: `workload;namespace;canonicalService;canonicalRevision;clusterId`. */
    workload: z.string().optional(),
    /** Expected SPIFFE identity of the endpoint (checked against its certificate under mTLS). */
    identity: z.string().optional(),
  });

  const serviceSchema = z.strictObject({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 label'),
    namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 label').default('default'),
    /**
     * Extra hostnames (e.g. an external API), matched besides the Kubernetes forms of name.namespace. A
     * hostname may not be another service's name in any form, nor a hostname of another service.
     */
    hostnames: z.array(z.string().min(1)).default([]),
    /**
     * Pod labels the Service selects, as a Kubernetes Service `spec.selector`; default `{app: <name>}`.
     * A workload is behind every service of its namespace whose selector its labels match; the first
     * one is its inbound service (Envoy's inbound cluster metadata `istio.services`).
     */
    selector: z.record(z.string(), z.string()).optional(),
    /** MeshExternal services: IN_MESH mode sends them no MX headers (cluster metadata `istio.external`). */
    external: z.boolean().default(false),
    ports: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          protocol: z.enum(PORT_PROTOCOLS),
          port: z.number().int().min(1).max(65535),
        }),
      )
      .min(1),
    endpoints: z.array(endpointSchema).default([]),
  });

  return z.strictObject({
    /** Cluster DNS domain, `cluster.local` by default. */
    domain: z.string().min(1).default('cluster.local'),
    services: z.array(serviceSchema).default([]),
  });
}

type MeshSchema = ReturnType<typeof buildMeshSchema>;
let meshSchemaBuilt: MeshSchema | undefined;
const meshSchema = (): MeshSchema => (meshSchemaBuilt ??= buildMeshSchema((requireLazy('zod') as typeof Zod).z));

/** The mesh file as written (input of {@link createServiceRegistry}). */
export type MeshFileInput = Zod.z.input<MeshSchema>;
/** The validated mesh. */
export type MeshConfig = Zod.z.output<MeshSchema>;

/** One endpoint, resolved for one service port. */
export interface ResolvedEndpoint {
  readonly address: string;
  readonly port: number;
  readonly sidecar: boolean;
  /** Peer metadata parsed from `istio.workload`, or null (client-side fallback when MX fails). */
  readonly workload: PeerMetadata | null;
  readonly identity: string | undefined;
}

/** A service port with its endpoints and a round-robin cursor. */
export interface ServiceRoute {
  readonly service: ServiceInfo;
  readonly external: boolean;
  readonly portName: string;
  readonly port: number;
  readonly protocol: PortProtocol;
  readonly endpoints: readonly ResolvedEndpoint[];
  /** Istio's cluster name for this service port, `outbound|<port>||<host>` (computed once, for `xds.cluster_name`). */
  readonly cluster: string;
  /** Next endpoint, round robin (Istio defaults to LEAST_REQUEST; round robin is its deterministic equivalent for one client). */
  pick(): ResolvedEndpoint | undefined;
}

/** The registry as the listeners use it. */
export interface ServiceRegistry {
  /** The validated mesh, for the admin `/config_dump`. */
  readonly mesh: MeshConfig;
  /**
   * Route a Host/:authority (port optional) to a service port. `defaultPort` applies when the
   * authority carries no port (80 for http URLs). Returns undefined for unknown hosts or ports.
   */
  resolve(authority: string, defaultPort?: number): ServiceRoute | undefined;
  /** True when the host (port ignored) names a registered service. */
  hasHost(authority: string): boolean;
  /** All service routes (for per-service listeners). */
  routes(): readonly ServiceRoute[];
  /**
   * The services a workload is behind: those of its namespace whose selector its pod labels match, in
   * mesh-file order (Kubernetes' Service → pod selection, which Istio turns into the inbound
   * cluster's `istio.services` metadata).
   */
  servicesOf(workload: { readonly namespace: string; readonly podLabels: Readonly<Record<string, string>> }): readonly ServiceInfo[];
}

/** Options of {@link createServiceRegistry}. */
export interface ServiceRegistryOptions {
  /** The caller's namespace: short names resolve in it, as cluster DNS does for a pod (default `default`). */
  readonly namespace?: string;
}

/**
 * Parse Istio's endpoint metadata string `workload;namespace;canonicalService;canonicalRevision;clusterId`
 * with the metadata stage's parser ({@link parseEndpointMetadata}); fewer than 5 parts gives null here,
 * the registry's "no fallback peer" value (`ResolvedEndpoint.workload`).
 */
export function parseEndpointWorkload(value: string): PeerMetadata | null {
  return parseEndpointMetadata(value) ?? null;
}

/** Validate a mesh object. Throws MESHTEL_ERR_INVALID_MESH naming the path of the first bad value. */
export function parseMesh(input: unknown, origin = 'mesh'): MeshConfig {
  // No mesh: the schema's defaults, without loading zod.
  if (input === undefined || input === null) return { domain: 'cluster.local', services: [] };
  const parsed = meshSchema().safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue ? issue.path.map(String).join('.') : '';
    throw new ConfigError(
      'MESHTEL_ERR_INVALID_MESH',
      `${origin}: ${at || '(root)'}: ${issue?.message ?? 'invalid'}`,
      { origin, path: at, issues: parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })) },
    );
  }
  const mesh = parsed.data;
  // Cross-field checks zod cannot express simply: unique services and port names.
  const seen = new Set<string>();
  mesh.services.forEach((svc, i) => {
    const key = `${svc.name}.${svc.namespace}`;
    if (seen.has(key)) throw invalidMesh(origin, `services.${i}`, `duplicate service ${quote(key)}`);
    seen.add(key);
    const names = new Set<string>();
    svc.ports.forEach((p, j) => {
      if (names.has(p.name)) throw invalidMesh(origin, `services.${i}.ports.${j}.name`, `duplicate port name ${quote(p.name)}`);
      names.add(p.name);
    });
    svc.endpoints.forEach((ep, j) => {
      for (const name of Object.keys(ep.ports ?? {})) {
        if (!names.has(name)) throw invalidMesh(origin, `services.${i}.endpoints.${j}.ports.${name}`, `no service port named ${quote(name)}`);
      }
    });
  });
  checkHostnames(mesh, origin);
  return mesh;
}

/**
 * Reject names that would make resolution depend on the order of the file: a `hostnames` entry that is
 * another service's name (short or qualified) or another service's hostname.
 */
function checkHostnames(mesh: MeshConfig, origin: string): void {
  const owners = new Map<string, string>();
  const services = new Set(mesh.services.map((s) => `${s.name}.${s.namespace}`));
  const shortNames = new Set(mesh.services.map((s) => s.name));
  mesh.services.forEach((svc, i) => {
    const self = `${svc.name}.${svc.namespace}`;
    svc.hostnames.forEach((raw, j) => {
      const h = hostOfAuthority(raw);
      const at = `services.${i}.hostnames.${j}`;
      const other = owners.get(h);
      if (other !== undefined && other !== self) throw invalidMesh(origin, at, `hostname ${quote(raw)} is already a hostname of service ${quote(other)}`);
      owners.set(h, self);
      if (!h.includes('.') ? shortNames.has(h) && h !== svc.name : false) {
        throw invalidMesh(origin, at, `hostname ${quote(raw)} is the short name of another service`);
      }
      const named = h.includes('.') ? resolveServiceName(h, svc.namespace, mesh.domain) : undefined;
      if (named !== undefined && services.has(`${named.name}.${named.namespace}`) && `${named.name}.${named.namespace}` !== self) {
        throw invalidMesh(origin, at, `hostname ${quote(raw)} names service ${quote(`${named.name}.${named.namespace}`)}`);
      }
    });
  });
}

function invalidMesh(origin: string, at: string, message: string): ConfigError {
  return new ConfigError('MESHTEL_ERR_INVALID_MESH', `${origin}: ${at}: ${message}`, { origin, path: at });
}

/** Read and validate a mesh YAML (or JSON) file. */
export function loadMeshFile(file: string): MeshConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_INVALID_MESH', `cannot read mesh file ${quote(file)}: ${(err as Error).message}`, { origin: file }, { cause: err });
  }
  let doc: unknown;
  try {
    doc = yamlModule().parse(text);
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_INVALID_MESH', `${file}: not valid YAML: ${(err as Error).message}`, { origin: file }, { cause: err });
  }
  return parseMesh(doc, file);
}

/** Build the registry from a validated mesh (or raw input, validated here). */
export function createServiceRegistry(input: MeshConfig | MeshFileInput | undefined, options: ServiceRegistryOptions = {}): ServiceRegistry {
  const mesh = parseMesh(input);
  const callerNamespace = options.namespace ?? 'default';
  // `name.namespace` → port number → route; explicit hostnames → the same maps. Short and qualified
  // names go through the one resolver (src/core/service-names.ts), relative to the caller's namespace.
  const byService = new Map<string, Map<number, ServiceRoute>>();
  const byHostname = new Map<string, Map<number, ServiceRoute>>();
  const selectors: Array<{ readonly info: ServiceInfo; readonly selector: Readonly<Record<string, string>> }> = [];
  const all: ServiceRoute[] = [];
  for (const svc of mesh.services) {
    const fqdn = `${svc.name}.${svc.namespace}.svc.${mesh.domain}`;
    const info: ServiceInfo = Object.freeze({ host: fqdn, name: svc.name, namespace: svc.namespace });
    const ports = new Map<number, ServiceRoute>();
    for (const p of svc.ports) {
      const endpoints = svc.endpoints.map(
        (ep): ResolvedEndpoint =>
          Object.freeze({
            address: ep.address,
            port: ep.ports?.[p.name] ?? p.port,
            sidecar: ep.sidecar,
            workload: ep.workload === undefined ? null : parseEndpointWorkload(ep.workload),
            identity: ep.identity,
          }),
      );
      let next = 0;
      const route: ServiceRoute = {
        service: info,
        external: svc.external,
        portName: p.name,
        port: p.port,
        protocol: p.protocol,
        endpoints,
        cluster: outboundClusterName(p.port, info.host),
        pick() {
          if (endpoints.length === 0) return undefined;
          const ep = endpoints[next % endpoints.length];
          next = (next + 1) % endpoints.length;
          return ep;
        },
      };
      ports.set(p.port, route);
      all.push(route);
    }
    byService.set(`${svc.name}.${svc.namespace}`, ports);
    for (const h of svc.hostnames) byHostname.set(hostOfAuthority(h), ports);
    selectors.push({ info, selector: svc.selector ?? { app: svc.name } });
  }
  const portsOf = (authority: string): Map<number, ServiceRoute> | undefined => {
    const host = hostOfAuthority(authority);
    const explicit = byHostname.get(host);
    if (explicit !== undefined) return explicit;
    const named = resolveServiceName(host, callerNamespace, mesh.domain);
    return named === undefined ? undefined : byService.get(`${named.name}.${named.namespace}`);
  };

  return {
    mesh,
    resolve(authority, defaultPort) {
      const { port } = splitAuthority(authority);
      const ports = portsOf(authority);
      if (ports === undefined) return undefined;
      const p = port ?? defaultPort;
      if (p !== undefined) return ports.get(p) ?? (port === undefined && ports.size === 1 ? ports.values().next().value : undefined);
      return ports.size === 1 ? ports.values().next().value : undefined;
    },
    hasHost: (authority) => portsOf(authority) !== undefined,
    routes: () => all,
    servicesOf(workload) {
      const out: ServiceInfo[] = [];
      for (const { info, selector } of selectors) {
        if (info.namespace !== workload.namespace) continue;
        const keys = Object.keys(selector);
        // An empty selector selects nothing, as in Kubernetes (endpoints are then managed by hand).
        if (keys.length > 0 && keys.every((k) => workload.podLabels[k] === selector[k])) out.push(info);
      }
      return out;
    },
  };
}

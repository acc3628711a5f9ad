/**
 * The sidecar (`meshtel/sidecar`): `startSidecar`, its options and what it returns. Not re-exported by the package
 * root, so an app that embeds meshtel never loads the proxy, its listeners or its agent endpoints. Listed by name
 * (STYLE.md §2); the registry, TLS, certificate-minting and annotation helpers stay internal (the CLI imports them
 * directly). docs/api.md says why each name is public; test/package/surface.test.ts keeps this list deliberate.
 */
export { startSidecar } from './sidecar.js';
export type { Sidecar, SidecarBoundPorts } from './sidecar.js';
export type { SidecarOptions, SidecarPorts, InboundPortOptions, ServiceListenerOptions, ResolvedSidecarOptions } from './options.js';
export type { ServiceRegistry, ServiceRoute, ResolvedEndpoint, MeshConfig, MeshFileInput, PortProtocol } from './registry.js';
export type { TlsFiles } from './tls.js';

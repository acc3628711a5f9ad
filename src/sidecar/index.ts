/**
 * The sidecar (`meshtel/sidecar`): not re-exported by the package root, so an app that embeds meshtel never loads
 * the proxy, its listeners or its agent endpoints. Listed by name (STYLE.md §2).
 */
export { startSidecar } from './sidecar.js';
export type { Sidecar, SidecarBoundPorts } from './sidecar.js';
export { resolveSidecarOptions } from './options.js';
export type { SidecarOptions, SidecarPorts, InboundPortOptions, ServiceListenerOptions, ResolvedSidecarOptions } from './options.js';
export { createServiceRegistry, loadMeshFile, parseMesh, parseEndpointWorkload } from './registry.js';
export type { ServiceRegistry, ServiceRoute, ResolvedEndpoint, MeshConfig, MeshFileInput, PortProtocol } from './registry.js';
export { loadSidecarTls, spiffeFromSan } from './tls.js';
export type { SidecarTls, TlsFiles } from './tls.js';
export { mintCertificates } from './certs.js';
export type { MintCertificatesOptions, MintedCertificates, MintedWorkload, WorkloadIdentity } from './certs.js';
export { parsePrometheusAnnotations } from './agent-endpoints.js';
export type { PrometheusScrapeConfig } from './agent-endpoints.js';

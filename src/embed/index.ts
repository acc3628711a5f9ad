/**
 * The proxyless embedding (`meshtel/embed`, also re-exported by the package root).
 */
export { createMeshtelEmbedding, kubernetesServiceResolver } from './embedding.js';
export type { MeshtelEmbedding, MeshtelEmbeddingOptions } from './embedding.js';
export { meshtelFastify } from './fastify-plugin.js';
export type { MeshtelFastifyOptions } from './fastify-plugin.js';
export { createMeshtelInterceptor } from './undici-interceptor.js';
export type { MeshtelInterceptorOptions } from './undici-interceptor.js';
export { PROPAGATED_HEADERS } from './trace-context.js';

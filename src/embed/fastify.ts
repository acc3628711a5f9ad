/**
 * `meshtel/embed/fastify`: the embedding and the fastify plugin without the undici interceptor, so an app that only
 * serves never loads undici (about 20 MiB of resident code, measured by bench/rss.bench.ts).
 */
export { createMeshtelEmbedding, kubernetesServiceResolver } from './embedding.js';
export type { MeshtelEmbedding, MeshtelEmbeddingOptions } from './embedding.js';
export { meshtelFastify } from './fastify-plugin.js';
export type { MeshtelFastifyOptions } from './fastify-plugin.js';

/**
 * The inbound trace context is entered only once something reads it: an AsyncLocalStorage in use costs every
 * async resource of the process a hook call on Node 20 (bench/proxyless.bench.ts), so an app with the fastify
 * plugin and no interceptor must not pay for it, and an app with the interceptor must get its headers.
 */
import { describe, expect, it, vi } from 'vitest';

describe('inbound trace context', () => {
  it('is off until an interceptor is created, then on for the process', async () => {
    vi.resetModules();
    const ctx = await import('../../src/embed/trace-context.js');
    const { createMeshtelEmbedding, createMeshtelInterceptor } = await import('../../src/embed/index.js');
    const { createWorkloadMetadata } = await import('../../src/metadata/workload.js');
    expect(ctx.inboundTraceContextRead()).toBe(false);
    const embedding = createMeshtelEmbedding({ metadata: createWorkloadMetadata({ name: 'a-1', namespace: 'ns', workload: 'a', labels: { app: 'a' } }) });
    createMeshtelInterceptor(embedding);
    expect(ctx.inboundTraceContextRead()).toBe(true);
    await embedding.close();
  });
});

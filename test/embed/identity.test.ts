import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMeshtelEmbedding } from '../../src/embed/index.js';
import type { Logger } from '../../src/core/logger.js';
import { loadWorkloadMetadataWithSources } from '../../src/metadata/workload.js';

/** A logger that keeps what it was told. */
function recordingLogger(): Logger & { readonly infos: { msg: string; fields?: Record<string, unknown> }[] } {
  const infos: { msg: string; fields?: Record<string, unknown> }[] = [];
  const noop = (): void => {};
  return { infos, debug: noop, info: (msg: string, fields?: Record<string, unknown>) => infos.push({ msg, fields }), warn: noop, error: noop, warnOnce: noop } as never;
}

describe('createMeshtelEmbedding() identity from the environment', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('logs once which identity it resolved and where each field came from', async () => {
    vi.stubEnv('POD_NAME', 'reviews-v1-7d9c-abcde');
    vi.stubEnv('POD_NAMESPACE', 'bookinfo');
    vi.stubEnv('SERVICE_ACCOUNT', 'bookinfo-reviews');
    vi.stubEnv('ISTIO_META_WORKLOAD_NAME', 'reviews-v1');
    const logger = recordingLogger();
    const mesh = createMeshtelEmbedding({ logger });
    const lines = logger.infos.filter((l) => l.msg === 'meshtel workload identity');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.fields).toMatchObject({
      workload: 'reviews-v1',
      namespace: 'bookinfo',
      serviceAccount: 'bookinfo-reviews',
      from: { namespace: 'env POD_NAMESPACE', name: 'env POD_NAME', workload: 'env ISTIO_META_WORKLOAD_NAME', serviceAccount: 'env SERVICE_ACCOUNT' },
    });
    await mesh.close();
  });

  it('says "default" for a namespace nothing set', () => {
    const { metadata, sources } = loadWorkloadMetadataWithSources({ env: {} });
    expect(metadata.namespace).toBe('default');
    expect(sources.namespace).toBe('default');
  });

  it('warns once per process, with code MESHTEL_IDENTITY_DEFAULTED, when the namespace fell back to default', async () => {
    vi.stubEnv('POD_NAMESPACE', '');
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const a = createMeshtelEmbedding();
      const b = createMeshtelEmbedding();
      await new Promise((r) => setImmediate(r));
      await Promise.all([a.close(), b.close()]);
    } finally {
      process.off('warning', onWarning);
    }
    const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'MESHTEL_IDENTITY_DEFAULTED');
    expect(ours).toHaveLength(1);
    expect(ours[0]!.message).toContain('POD_NAMESPACE');
  });
});

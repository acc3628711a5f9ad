/**
 * `PILOT_MX_ADDITIONAL_LABELS` on a sidecar and an embedding: the pod labels named there travel in the MX payload's
 * LABELS (istio/proxy peer_metadata `additional_labels`, TestHTTPExchangeAdditionalLabels), read from the variable
 * Istio uses since a meshtel proxy has no istiod to pass it on. One parser (src/metadata/mx-header.ts) for both.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMxHeader, parseAdditionalLabels } from '../../src/metadata/mx-header.js';
import { resolveSidecarOptions } from '../../src/sidecar/options.js';
import { createMeshtelEmbedding } from '../../src/embed/embedding.js';
import { httpApp, send, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const withRole = workload('productpage', 'bookinfo-productpage', 'v1', { role: 'frontend', team: 'books' });

describe('PILOT_MX_ADDITIONAL_LABELS', () => {
  it('makes a sidecar send the named pod labels in the MX payload of its requests', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const client = await sidecar({
      env: { PILOT_MX_ADDITIONAL_LABELS: 'role, missing' },
      metadata: withRole,
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: app.port } }] }] },
    });
    cleanups.push(client.close);
    expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
    const value = app.seen[0]?.headers['x-envoy-peer-metadata'];
    const peer = decodeMxHeader(String(value));
    expect(peer.ok && peer.peer.labels).toMatchObject({ role: 'frontend' });
    expect(peer.ok && peer.peer.labels).not.toHaveProperty('team');
    expect(peer.ok && peer.peer.labels).not.toHaveProperty('missing');
  });

  it('is what the embedding reads by default, and its option wins', () => {
    const previous = process.env.PILOT_MX_ADDITIONAL_LABELS;
    process.env.PILOT_MX_ADDITIONAL_LABELS = 'team';
    try {
      const headers: Record<string, string> = {};
      const fromEnv = createMeshtelEmbedding({ metadata: withRole });
      fromEnv.exchange.injectRequest(headers, (c, k, v) => (c[k] = v));
      const labels = (h: Record<string, string>) => {
        const r = decodeMxHeader(h['x-envoy-peer-metadata'] ?? '');
        return r.ok ? r.peer.labels : {};
      };
      expect(labels(headers)).toMatchObject({ team: 'books' });
      const explicit: Record<string, string> = {};
      createMeshtelEmbedding({ metadata: withRole, additionalLabels: ['role'] }).exchange.injectRequest(explicit, (c, k, v) => (c[k] = v));
      expect(labels(explicit)).toMatchObject({ role: 'frontend' });
      expect(labels(explicit)).not.toHaveProperty('team');
      void fromEnv.close();
    } finally {
      if (previous === undefined) delete process.env.PILOT_MX_ADDITIONAL_LABELS;
      else process.env.PILOT_MX_ADDITIONAL_LABELS = previous;
    }
  });

  it('refuses what is not a label key, and more than 32 keys, with MESHTEL_ERR_INVALID_CONFIG', () => {
    expect(parseAdditionalLabels(' a, b.io/c ,a,')).toEqual(['a', 'b.io/c']);
    expect(() => resolveSidecarOptions({ env: { PILOT_MX_ADDITIONAL_LABELS: 'role,bad key' } })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG', message: expect.stringContaining('"bad key"') }));
    expect(() => parseAdditionalLabels(Array.from({ length: 33 }, (_, i) => `l${i}`).join(','))).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
  });
});

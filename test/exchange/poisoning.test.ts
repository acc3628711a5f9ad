/**
 * Issue 11.4 through the sidecar's real wiring (createSidecarTelemetry, as startSidecar builds it): a TCP frame or
 * a flood plus one forged request must not move a real peer's later traffic to a forged workload.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createSidecarTelemetry } from '../../src/sidecar/telemetry-binding.js';
import { createHttpMetadataExchange } from '../../src/exchange/http-exchange.js';
import { createTcpMetadataExchange } from '../../src/exchange/tcp-exchange.js';
import { HEADER_PEER_METADATA as MX, HEADER_PEER_METADATA_ID as MX_ID } from '../../src/metadata/mx-header.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { productpageReduced } from '../metadata/fixtures.js';

const server = createWorkloadMetadata({ name: 'reviews-v1-0', namespace: 'default', workload: 'reviews-v1', labels: { app: 'reviews' } });
const real = createHttpMetadataExchange({ local: productpageReduced() });
const forgedMeta = createWorkloadMetadata({ name: 'forged-0', namespace: 'attacker', workload: 'forged' });

function telemetry() {
  const registry = new Registry();
  return { registry, t: createSidecarTelemetry({ local: server, nodeId: 'sidecar~10.0.0.2~reviews-v1-0.default~default.svc.cluster.local', enabled: true, registry }) };
}

describe('peer cache poisoning through the sidecar wiring (issue 11.4)', () => {
  it('one plain-text TCP frame under the real id does not change the real peer\'s HTTP identity', () => {
    const { t } = telemetry();
    expect(t.readRequestPeer({ [MX]: real.headerValue, [MX_ID]: real.headerId }).result).toMatchObject({ peer: { workload: 'productpage-v1' } });
    // The attacker's frame claims the real peer's node id.
    const forged = createTcpMetadataExchange({ local: forgedMeta, nodeId: real.headerId });
    const step = t.createTcpParser().push(forged.frame);
    expect(step).toMatchObject({ done: true, peerId: real.headerId, result: { ok: true, peer: { workload: 'forged' } } });
    for (let i = 0; i < 20; i++) {
      expect(t.readRequestPeer({ [MX]: real.headerValue, [MX_ID]: real.headerId }).result).toMatchObject({ peer: { workload: 'productpage-v1', namespace: 'default' } });
      // Even an id-only request keeps the real peer: the frame was never cached.
      expect(t.readRequestPeer({ [MX_ID]: real.headerId }).result).toMatchObject({ peer: { workload: 'productpage-v1' } });
    }
  });

  it('a 600-id flood and one forged request: the real peer keeps its identity, every conflict is counted in meshtel_peer_cache_conflicts_total', async () => {
    const { t, registry } = telemetry();
    const forged = createHttpMetadataExchange({ local: forgedMeta }).headerValue;
    t.readRequestPeer({ [MX]: real.headerValue, [MX_ID]: real.headerId });
    for (let i = 0; i < 600; i++) t.readRequestPeer({ [MX]: forged, [MX_ID]: `flood-${i}` });
    expect(t.readRequestPeer({ [MX]: forged, [MX_ID]: real.headerId }).result).toMatchObject({ peer: { workload: 'forged' } });
    let moved = 0;
    for (let i = 0; i < 100; i++) {
      const r = t.readRequestPeer({ [MX]: real.headerValue, [MX_ID]: real.headerId }).result;
      if (!r.ok || r.peer.workload !== 'productpage-v1') moved++;
    }
    expect(moved).toBe(0);
    expect(await registry.getSingleMetricAsString('meshtel_peer_cache_conflicts_total')).toMatch(/^meshtel_peer_cache_conflicts_total 100$/m);
  });
});

/**
 * A closed sidecar leaves nothing behind: every timer, server and socket it created is gone once
 * `close()` resolves (issue 11.10: the stats stage's intervals outlived the sidecar).
 */
import { createHook } from 'node:async_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { httpApp, reviewsMesh, send, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Resource types that keep a process busy or hold a descriptor. */
const TRACKED = new Set(['Timeout', 'TCPSERVERWRAP', 'TCPWRAP', 'HTTP2SESSION', 'TLSWRAP']);

/** Records live resources whose creation stack passes through src/ (not vitest's own). */
function trackResources(): { live: Map<number, string>; stop(): void } {
  const live = new Map<number, string>();
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 60;
  const hook = createHook({
    init(id, type) {
      if (!TRACKED.has(type)) return;
      const stack = new Error().stack ?? '';
      if (!/\/src\/(sidecar|stats|exchange|tracing|record|core)\//.test(stack)) return;
      const where = stack.split('\n').find((l) => /\/src\//.test(l)) ?? '';
      live.set(id, `${type} ${where.trim()}`);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    live,
    stop() {
      hook.disable();
      Error.stackTraceLimit = limit;
    },
  };
}

describe('Sidecar lifecycle', () => {
  it('leaves no timer, server or socket once close() resolves', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const track = trackResources();
    try {
      // Reporting interval and series TTL on: the stats stage runs both intervals.
      const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, reportingIntervalMs: 1000 });
      const client = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), mesh: reviewsMesh(server.ports.inbound), reportingIntervalMs: 1000 });
      for (let i = 0; i < 5; i++) expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
      expect(track.live.size).toBeGreaterThan(0);
      await client.close();
      await server.close();
      // destroy hooks run after the close callbacks; undici's shared timer wheel (one process-wide
      // timer, not per pool) stops at its next tick once no timer of a closed pool is left (≤ 1 s).
      const deadline = Date.now() + 3000;
      while (track.live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect([...track.live.values()]).toEqual([]);
    } finally {
      track.stop();
    }
  });
});

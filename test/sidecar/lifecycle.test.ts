/**
 * A closed sidecar leaves nothing behind: every timer, server and socket it created is gone once
 * `close()` resolves (issue 11.10: the stats stage's intervals outlived the sidecar).
 */
import { createHook } from 'node:async_hooks';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { formatNodeId } from '../../src/metadata/node-id.js';
import { DEFAULT_SHUTDOWN_TIMEOUT_MS } from '../../src/tracing/config.js';
import { createTracing } from '../../src/tracing/tracer.js';
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

describe('Sidecar shutdown with the trace backend hanging', () => {
  // Issue 11.11: close() took 9-11 s with the backend down (0.15 s otherwise). The tracer's drain bound
  // (shutdownTimeoutMillis, 2 s by default) is what close() may wait for the spans it still holds.
  it('resolves close() within the tracer\'s drain bound, with the default export timeouts', async () => {
    const held = new Set<http.ServerResponse>();
    const backend = http.createServer((_req, res) => void held.add(res));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          backend.closeAllConnections();
          backend.close(() => r());
        }),
    );
    const app = await httpApp();
    cleanups.push(app.close);
    const metadata = workload('reviews', 'bookinfo-reviews');
    const endpoint = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/v1/traces`;
    const tracer = createTracing({ local: metadata, nodeId: formatNodeId(metadata), exporter: 'otlp', endpoint, samplingPercent: 100, scheduledDelayMillis: 5 });
    const sc = await sidecar({ metadata, app: { port: app.port }, tracer });
    for (let i = 0; i < 20; i++) expect((await send(sc.ports.inbound, { host: 'reviews:9080' })).status).toBe(200);
    // An export is in flight on the backend that never answers.
    const deadline = Date.now() + 3000;
    while (held.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(held.size).toBeGreaterThan(0);
    const started = Date.now();
    await sc.close();
    const took = Date.now() - started;
    expect(took).toBeLessThan(DEFAULT_SHUTDOWN_TIMEOUT_MS + 1500);
  });
});

/**
 * The upstream pools' own resources: no per-request listener left on a pooled HTTP/2 session, and
 * sessions closed after Envoy's idle timeout (issue 11.10).
 */
import http2 from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createUpstreamPool } from '../../src/sidecar/upstream.js';
import type { UpstreamPool, UpstreamResponse } from '../../src/sidecar/upstream.js';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function h2App(): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

function get(pool: UpstreamPool, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    pool.request({ host: '127.0.0.1', port, h2: true, tls: false }, 'GET', '/', `127.0.0.1:${port}`, {}, null, {
      onUpstreamResponse(res: UpstreamResponse) {
        res.pipeBody({ onBodyData() {}, onBodyEnd: () => resolve(res.status), onBodyError: reject, onBodyAborted() {} });
      },
      onUpstreamError: (_kind, err) => reject(err),
    });
  });
}

describe('HTTP/2 upstream pool', () => {
  it('leaves no listener per request on a pooled session (200 requests queued while it connects)', async () => {
    const port = await h2App();
    const sessions: ClientHttp2Session[] = [];
    const connect = http2.connect.bind(http2);
    vi.spyOn(http2, 'connect').mockImplementation(((...args: Parameters<typeof http2.connect>) => {
      const s = connect(...args);
      sessions.push(s);
      return s;
    }) as typeof http2.connect);
    const pool = createUpstreamPool();
    cleanup.push(() => pool.close());
    // All 200 are queued before the session has connected: each used to add an 'error' listener.
    const codes = await Promise.all(Array.from({ length: 200 }, () => get(pool, port)));
    expect(codes.every((c) => c === 200)).toBe(true);
    expect(sessions).toHaveLength(1);
    const s = sessions[0] as ClientHttp2Session;
    const errorListeners = s.listenerCount('error');
    const connectListeners = s.listenerCount('connect');
    expect(errorListeners).toBeLessThanOrEqual(2);
    expect(connectListeners).toBeLessThanOrEqual(1);
    // And 200 more on the connected session add nothing either.
    await Promise.all(Array.from({ length: 200 }, () => get(pool, port)));
    expect(s.listenerCount('error')).toBe(errorListeners);
    expect(s.listenerCount('connect')).toBe(connectListeners);
    expect(s.listenerCount('close')).toBeLessThanOrEqual(3);
  });

  it('closes a session with no stream open after the idle timeout, and opens a fresh one later', async () => {
    const port = await h2App();
    const sessions: ClientHttp2Session[] = [];
    const connect = http2.connect.bind(http2);
    vi.spyOn(http2, 'connect').mockImplementation(((...args: Parameters<typeof http2.connect>) => {
      const s = connect(...args);
      sessions.push(s);
      return s;
    }) as typeof http2.connect);
    const pool = createUpstreamPool({ idleTimeoutMs: 150 });
    cleanup.push(() => pool.close());
    expect(await get(pool, port)).toBe(200);
    expect(pool.h2Sessions).toBe(1);
    // Activity keeps it: a request every 60 ms for 300 ms.
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 60));
      expect(await get(pool, port)).toBe(200);
    }
    expect(sessions).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(pool.h2Sessions).toBe(0);
    expect(sessions[0]?.closed).toBe(true);
    expect(await get(pool, port)).toBe(200);
    expect(sessions).toHaveLength(2);
  });
});

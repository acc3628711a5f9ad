/**
 * Pooled upstream HTTP/1.1 connections are closed before the app closes them (issue 11, upstream keep-alive):
 * a request must never be written on a connection the app has already given up, the classic ECONNRESET race
 * that a proxy without a retry turns into 503 `UC`. The pool closes an idle socket after
 * `limits.upstreamKeepAliveTimeoutMs` (4 s, under node's 5 s server default), sooner when the app's
 * `Keep-Alive: timeout=` hint says so; both pools (undici for bodyless requests, node:http for bodies) do it.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LISTENER_LIMITS } from '../../src/sidecar/listener-limits.js';
import { eventually, requestCount, send, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A GET (undici path) and a POST with a body (node:http path) through the sidecar's inbound listener. */
async function both(port: number): Promise<number[]> {
  const get = await send(port, { host: 'reviews' });
  const post = await send(port, { host: 'reviews', method: 'POST', body: 'hello' });
  return [get.status, post.status];
}

async function reviewsSidecar(appPort: number, limits: { upstreamKeepAliveTimeoutMs?: number } = {}): Promise<Awaited<ReturnType<typeof sidecar>>> {
  const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort }, limits });
  cleanups.push(sc.close);
  return sc;
}

/**
 * An app server that drops a connection idle for `idleMs` without telling the client: no `Keep-Alive` hint,
 * and the next bytes on it are answered with a reset. That is the race window made deterministic: the
 * request of a client that reuses the connection crosses the app's close.
 */
async function forgetfulApp(idleMs: number): Promise<{ port: number; connections: () => number; resets: () => number }> {
  let connections = 0;
  let resets = 0;
  const server = net.createServer((socket: Socket) => {
    connections++;
    let last = Date.now();
    let buffered = '';
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      if (Date.now() - last > idleMs) {
        resets++;
        socket.resetAndDestroy();
        return;
      }
      buffered += d.toString('latin1');
      // One request at a time: a head, then content-length bytes of body.
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        last = Date.now();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, resets: () => resets };
}

describe('Upstream HTTP/1.1 keep-alive', () => {
  it('defaults to 4 s, under node’s 5 s server keepAliveTimeout', () => {
    expect(DEFAULT_LISTENER_LIMITS.upstreamKeepAliveTimeoutMs).toBe(4000);
    expect(DEFAULT_LISTENER_LIMITS.upstreamKeepAliveTimeoutMs).toBeLessThan(new http.Server().keepAliveTimeout);
  });

  it('follows a node app’s keepAliveTimeout of 1 s: a request after it is answered 200 and counted once, no UC', async () => {
    const app = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    app.keepAliveTimeout = 1000;
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          app.closeAllConnections();
          app.close(() => r());
        }),
    );
    const sc = await reviewsSidecar((app.address() as AddressInfo).port);
    expect(await both(sc.ports.inbound)).toEqual([200, 200]);
    await sleep(1300);
    expect(await both(sc.ports.inbound)).toEqual([200, 200]);
    await eventually(async () => expect(await requestCount(sc)).toBe(4));
    expect(await requestCount(sc, { response_code: '200' })).toBe(4);
  });

  it('closes an idle pooled socket after upstreamKeepAliveTimeoutMs, before an app that gives no hint drops it', async () => {
    const app = await forgetfulApp(1000);
    const sc = await reviewsSidecar(app.port, { upstreamKeepAliveTimeoutMs: 500 });
    expect(await both(sc.ports.inbound)).toEqual([200, 200]);
    await sleep(1300);
    expect(await both(sc.ports.inbound)).toEqual([200, 200]);
    expect(app.resets()).toBe(0);
    // Each pool opened a fresh connection for the second round: 2 per round.
    expect(app.connections()).toBe(4);
    await eventually(async () => expect(await requestCount(sc, { response_code: '200' })).toBe(4));
    expect(await requestCount(sc, { response_flags: 'UC' })).toBe(0);
  });

  it('(why the limit must stay under the app’s) held longer than the app keeps it, the reused socket is reset: 503 UC', async () => {
    const app = await forgetfulApp(1000);
    const sc = await reviewsSidecar(app.port, { upstreamKeepAliveTimeoutMs: 10_000 });
    expect(await both(sc.ports.inbound)).toEqual([200, 200]);
    await sleep(1300);
    expect(await both(sc.ports.inbound)).toEqual([503, 503]);
    expect(app.resets()).toBe(2);
    await eventually(async () => expect(await requestCount(sc, { response_code: '503', response_flags: 'UC' })).toBe(2));
  });
});

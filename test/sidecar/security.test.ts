/**
 * Security defaults of the sidecar's listeners (issue 11.2, 11.3): what binds where, the outbound
 * listener never reaching the sidecar itself or loopback, and Envoy-like connection limits. Every
 * refusal is asserted through its `meshtel_proxy_refused_total{listener,reason}` count.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isMeshtelError } from '../../src/core/errors.js';
import { createDestinationGuard, isLoopbackHost } from '../../src/sidecar/destination-guard.js';
import { DEFAULT_LISTENER_LIMITS } from '../../src/sidecar/listener-limits.js';
import { resolveSidecarOptions } from '../../src/sidecar/options.js';
import { eventually, get, httpApp, rawExchange, refused, send, series, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isMeshtelError(err) ? err.code : `not a meshtel error: ${String(err)}`;
  }
  return 'no error';
}

describe('Sidecar security defaults', () => {
  describe('binding', () => {
    it('binds the outbound listeners to 127.0.0.1 and the inbound/agent ones to 0.0.0.0 by default', () => {
      const o = resolveSidecarOptions({ env: {} });
      expect([o.outboundBindAddress, o.bindAddress, o.loopbackPassthrough]).toEqual(['127.0.0.1', '0.0.0.0', false]);
      const e = resolveSidecarOptions({ env: { MESHTEL_OUTBOUND_BIND_ADDRESS: '10.0.0.1', MESHTEL_LOOPBACK_PASSTHROUGH: 'true' } });
      expect([e.outboundBindAddress, e.loopbackPassthrough]).toEqual(['10.0.0.1', true]);
    });

    it('leaves the admin port unreachable from a non-loopback address', async () => {
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews') });
      cleanups.push(sc.close);
      // Connect from the first non-loopback interface address of this host, if it has one.
      const os = await import('node:os');
      const external = Object.values(os.networkInterfaces())
        .flat()
        .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
      if (external === undefined) return;
      const err = await new Promise<string>((resolve) => {
        const c = net.connect({ host: external.address, port: sc.ports.admin });
        c.on('connect', () => {
          c.destroy();
          resolve('connected');
        });
        c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      expect(err).toBe('ECONNREFUSED');
    });
  });

  describe('outbound listener never reaches the sidecar itself', () => {
    it('refuses POST /quitquitquit sent through the outbound listener (absolute form) and keeps running', async () => {
      const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage') });
      cleanups.push(sc.close);
      const res = await send(sc.ports.outbound, { method: 'POST', path: `http://127.0.0.1:${sc.ports.admin}/quitquitquit`, body: '' });
      expect(res.status).toBe(502);
      expect(await refused(sc, 'outbound', 'own_port')).toBe(1);
      // Still alive: admin answers directly, and the outbound listener still serves.
      expect((await get(`http://127.0.0.1:${sc.ports.admin}/ready`)).body).toBe('LIVE\n');
      const settled = await Promise.race([sc.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('running'), 200))]);
      expect(settled).toBe('running');
      await eventually(async () => {
        const lines = await series(sc, 'istio_requests_total');
        expect(lines[0]).toContain('destination_service_name="BlackHoleCluster"');
        expect(lines[0]).toContain('response_code="502"');
      });
    });

    it.each([
      { name: 'Host localhost', host: (p: number) => `localhost:${p}` },
      { name: 'Host 127.0.0.1', host: (p: number) => `127.0.0.1:${p}` },
      { name: 'Host [::1]', host: (p: number) => `[::1]:${p}` },
    ])('refuses GET /config_dump through the outbound listener ($name), even with loopback passthrough on', async ({ host }) => {
      const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), loopbackPassthrough: true });
      cleanups.push(sc.close);
      const res = await send(sc.ports.outbound, { path: '/config_dump', host: host(sc.ports.admin) });
      expect(res.status).toBe(502);
      expect(res.body).not.toContain('node');
      expect(await refused(sc, 'outbound', 'own_port')).toBe(1);
    });

    it('refuses every own port: prometheus, status, health, inbound and the outbound listener itself', async () => {
      const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), loopbackPassthrough: true });
      cleanups.push(sc.close);
      const { prometheus, status, health, outbound } = sc.ports;
      for (const p of [prometheus, status, health, outbound]) {
        expect((await send(sc.ports.outbound, { path: '/', host: `127.0.0.1:${p}` })).status).toBe(502);
      }
      expect(await refused(sc, 'outbound', 'own_port')).toBe(4);
    });
  });

  describe('loopback passthrough', () => {
    it('answers a loopback destination like BlackHoleCluster by default, without contacting it', async () => {
      const local = await httpApp();
      cleanups.push(local.close);
      const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), loopbackPassthrough: false });
      cleanups.push(sc.close);
      for (const host of [`127.0.0.1:${local.port}`, `localhost:${local.port}`]) {
        expect((await send(sc.ports.outbound, { host })).status).toBe(502);
      }
      expect((await send(sc.ports.outbound, { path: `http://127.0.0.1:${local.port}/x` })).status).toBe(502);
      expect(local.seen).toHaveLength(0);
      expect(await refused(sc, 'outbound', 'loopback_destination')).toBe(3);
    });

    it('recognises loopback hosts in every spelling', () => {
      for (const h of ['127.0.0.1', '127.8.9.10', 'LOCALHOST', 'app.localhost', 'localhost.', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '0.0.0.0', '::']) {
        expect([h, isLoopbackHost(h)]).toEqual([h, true]);
      }
      for (const h of ['10.0.0.1', 'reviews', 'localhost.example.com', '::2', '128.0.0.1']) expect([h, isLoopbackHost(h)]).toEqual([h, false]);
      const guard = createDestinationGuard([15000], ['10.1.2.3']);
      expect([guard.check('10.1.2.3', 15000), guard.check('10.1.2.3', 80), guard.check('10.9.9.9', 15000), guard.check('127.0.0.1', 80)]).toEqual([
        'own_port',
        undefined,
        undefined,
        'loopback_destination',
      ]);
    });
  });

  describe('listener limits', () => {
    it('defaults to a 10 s header timeout, 60 s idle timeout, 4096 connections and Envoy\'s 60 KiB headers', () => {
      expect(resolveSidecarOptions({ env: {} }).limits).toEqual(DEFAULT_LISTENER_LIMITS);
      expect(DEFAULT_LISTENER_LIMITS).toEqual({
        headersTimeoutMs: 10_000,
        idleTimeoutMs: 60_000,
        maxConnections: 4096,
        maxRequestHeadersBytes: 61_440,
        // Envoy's DEFAULT_MAX_HEADERS_COUNT.
        maxRequestHeadersCount: 100,
        // Envoy's upstream idle_timeout and tcp_proxy idle_timeout defaults.
        upstreamIdleTimeoutMs: 3_600_000,
        // Under node's 5 s server keepAliveTimeout (test/sidecar/upstream-keepalive.test.ts).
        upstreamKeepAliveTimeoutMs: 4000,
        tcpIdleTimeoutMs: 3_600_000,
      });
      const env = {
        MESHTEL_REQUEST_HEADERS_TIMEOUT: '2s',
        MESHTEL_IDLE_TIMEOUT: '5m',
        MESHTEL_MAX_CONNECTIONS: '10',
        MESHTEL_MAX_REQUEST_HEADERS_KB: '96',
        MESHTEL_MAX_REQUEST_HEADERS_COUNT: '150',
        MESHTEL_UPSTREAM_IDLE_TIMEOUT: '10m',
        MESHTEL_UPSTREAM_KEEPALIVE_TIMEOUT: '2s',
        MESHTEL_TCP_IDLE_TIMEOUT: '30s',
      };
      expect(resolveSidecarOptions({ env }).limits).toEqual({
        headersTimeoutMs: 2000,
        idleTimeoutMs: 300_000,
        maxConnections: 10,
        maxRequestHeadersBytes: 96 * 1024,
        maxRequestHeadersCount: 150,
        upstreamIdleTimeoutMs: 600_000,
        upstreamKeepAliveTimeoutMs: 2000,
        tcpIdleTimeoutMs: 30_000,
      });
      // Options win over the environment.
      expect(resolveSidecarOptions({ env, limits: { maxConnections: 3 } }).limits.maxConnections).toBe(3);
    });

    it.each([
      { name: 'a zero header timeout', o: { limits: { headersTimeoutMs: 0 } } },
      { name: 'a negative idle timeout', o: { limits: { idleTimeoutMs: -1 } } },
      { name: 'NaN max connections', o: { limits: { maxConnections: Number.NaN } } },
      { name: 'a zero TCP idle timeout', o: { limits: { tcpIdleTimeoutMs: 0 } } },
      { name: 'an upstream idle timeout that is not a duration (env)', o: { env: { MESHTEL_UPSTREAM_IDLE_TIMEOUT: 'later' } } },
      { name: 'a zero upstream keep-alive timeout', o: { limits: { upstreamKeepAliveTimeoutMs: 0 } } },
      { name: 'zero max connections (env)', o: { env: { MESHTEL_MAX_CONNECTIONS: '0' } } },
      { name: 'a header limit over 8192 KiB (env)', o: { env: { MESHTEL_MAX_REQUEST_HEADERS_KB: '8193' } } },
      { name: 'a zero header count', o: { limits: { maxRequestHeadersCount: 0 } } },
      { name: 'a fractional header count', o: { limits: { maxRequestHeadersCount: 1.5 } } },
      { name: 'a header count over 10000 (env)', o: { env: { MESHTEL_MAX_REQUEST_HEADERS_COUNT: '10001' } } },
      { name: 'a header count that is not a number (env)', o: { env: { MESHTEL_MAX_REQUEST_HEADERS_COUNT: 'many' } } },
      { name: 'a header timeout that is not a duration (env)', o: { env: { MESHTEL_REQUEST_HEADERS_TIMEOUT: 'soon' } } },
    ])('refuses $name with MESHTEL_ERR_INVALID_CONFIG', ({ o }) => {
      expect(configError(() => resolveSidecarOptions({ env: {}, ...o }))).toBe('MESHTEL_ERR_INVALID_CONFIG');
    });

    it('closes slowloris connections after the header timeout and still serves real requests', async () => {
      const app = await httpApp();
      cleanups.push(app.close);
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, limits: { headersTimeoutMs: 500 } });
      cleanups.push(sc.close);
      const started = performance.now();
      const closedAfter = await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<{ ms: number; reply: string }>((resolve) => {
              let reply = '';
              const c = net.connect(sc.ports.inbound, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nhost: reviews\r\n'));
              // One more header byte every 100 ms: never a complete head.
              const drip = setInterval(() => c.writable && c.write('x'), 100);
              c.on('data', (d: Buffer) => (reply += d.toString()));
              c.on('error', () => {});
              c.on('close', () => {
                clearInterval(drip);
                resolve({ ms: performance.now() - started, reply });
              });
            }),
        ),
      );
      for (const { ms, reply } of closedAfter) {
        expect(ms).toBeGreaterThanOrEqual(450);
        expect(ms).toBeLessThan(2500);
        expect(reply.startsWith('HTTP/1.1 408')).toBe(true);
      }
      expect(await refused(sc, 'inbound', 'headers_timeout')).toBe(20);
      expect((await send(sc.ports.inbound, {})).status).toBe(200);
    });

    it('closes a keep-alive connection idle past the idle timeout', async () => {
      const app = await httpApp();
      cleanups.push(app.close);
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, limits: { idleTimeoutMs: 300 } });
      cleanups.push(sc.close);
      let started = 0;
      const { reply, idleMs } = await new Promise<{ reply: string; idleMs: number }>((resolve) => {
        let r = '';
        const c = net.connect(sc.ports.inbound, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nhost: reviews\r\n\r\n'));
        c.on('data', (d: Buffer) => {
          r += d.toString();
          started = performance.now();
        });
        c.on('close', () => resolve({ reply: r, idleMs: performance.now() - started }));
      });
      expect(reply.startsWith('HTTP/1.1 200')).toBe(true);
      expect(idleMs).toBeGreaterThanOrEqual(250);
      expect(idleMs).toBeLessThan(2000);
      expect(await refused(sc, 'inbound', 'idle_timeout')).toBe(1);
    });

    it('closes an HTTP/2 session with no frame for the idle timeout (GOAWAY), counted', async () => {
      const app = http2.createServer((_req, res) => res.end('ok'));
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
      const appPort = (app.address() as AddressInfo).port;
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'http2' }, limits: { idleTimeoutMs: 300 } });
      cleanups.push(sc.close);
      const session = http2.connect(`http://127.0.0.1:${sc.ports.inbound}`);
      session.on('error', () => {});
      const closed = new Promise<number>((resolve) => session.on('close', () => resolve(performance.now())));
      const goaway = new Promise<boolean>((resolve) => session.once('goaway', () => resolve(true)));
      const status = await new Promise<number>((resolve) => {
        const stream = session.request({ ':path': '/', ':authority': 'reviews:9080' });
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.resume();
      });
      const idleFrom = performance.now();
      expect(status).toBe(200);
      expect(await goaway).toBe(true);
      const idleMs = (await closed) - idleFrom;
      expect(idleMs).toBeGreaterThanOrEqual(250);
      expect(idleMs).toBeLessThan(2000);
      expect(await refused(sc, 'inbound', 'idle_timeout')).toBe(1);
    });

    it('refuses connections over maxConnections, counts them, and serves again once they close', async () => {
      const app = await httpApp();
      cleanups.push(app.close);
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, limits: { maxConnections: 5 } });
      cleanups.push(sc.close);
      const idle: net.Socket[] = [];
      for (let i = 0; i < 5; i++) {
        const c = net.connect(sc.ports.inbound, '127.0.0.1');
        await new Promise<void>((r) => c.once('connect', () => r()));
        idle.push(c);
      }
      await eventually(async () => {
        // The 6th connection is accepted by the kernel, then closed by the listener without a byte.
        const reply = await rawExchange(sc.ports.inbound, 'GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n');
        expect(reply).toBe('');
        expect(await refused(sc, 'inbound', 'max_connections')).toBeGreaterThanOrEqual(1);
      });
      await Promise.all(idle.map((c) => new Promise<void>((r) => (c.once('close', () => r()), c.destroy()))));
      await eventually(async () => expect((await send(sc.ports.inbound, {})).status).toBe(200));
    });

    it('passes a 40 KiB request header and answers 431 to a 70 KiB one', async () => {
      // The app accepts large heads itself (node's own default is 16 KiB).
      const big = http.createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => res.end(String(req.headers['x-big']?.length ?? 0)));
      await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => (big.closeAllConnections(), big.close(() => r()))));
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: (big.address() as AddressInfo).port } });
      cleanups.push(sc.close);
      const ok = await send(sc.ports.inbound, { headers: { 'x-big': 'a'.repeat(40 * 1024) } });
      expect([ok.status, ok.body]).toEqual([200, String(40 * 1024)]);
      const reply = await rawExchange(sc.ports.inbound, `GET / HTTP/1.1\r\nhost: reviews\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
      expect(reply.startsWith('HTTP/1.1 431 ')).toBe(true);
      expect(await refused(sc, 'inbound', 'headers_too_large')).toBe(1);
    });
  });
});

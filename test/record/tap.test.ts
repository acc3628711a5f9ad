import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createTapHandler, isLoopbackAddress, parseTapQuery, publishHttpTap, tapChannel } from '../../src/record/tap.js';
import type { TapRecord } from '../../src/record/tap.js';
import type { HttpStreamAttributes } from '../../src/stats/types.js';
import { ResponseFlag } from '../../src/stats/types.js';
import { bookinfoPair, send } from '../sidecar/helpers.js';
import type { Cleanups } from '../sidecar/helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

const LOCAL = { workload: 'reviews-v1', namespace: 'default' };

function attrs(over: Partial<HttpStreamAttributes> = {}): HttpStreamAttributes {
  return {
    reporter: 'destination',
    peer: null,
    peerUnknownReason: 'no_header',
    peerPrincipal: '',
    localPrincipal: '',
    service: null,
    authority: 'reviews:9080',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: 1.23456,
    requestBytes: 10,
    responseBytes: 20,
    method: 'GET',
    path: '/reviews/1?token=secret',
    requestHeaders: { authorization: 'Bearer secret', cookie: 'c=secret' },
    ...over,
  };
}

/** Start a server mounting the handler; returns its port. */
async function tapServer(handler: ReturnType<typeof createTapHandler>): Promise<number> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return (server.address() as AddressInfo).port;
}

interface Session {
  status: number;
  lines: string[];
  records: () => TapRecord[];
  close: () => void;
  opened: Promise<void>;
}

function openSession(port: number, path = '/tap', headers: Record<string, string> = {}): Session {
  const lines: string[] = [];
  let buf = '';
  let req!: http.ClientRequest;
  const s: Session = {
    status: 0,
    lines,
    records: () => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TapRecord),
    close: () => req.destroy(),
    opened: new Promise<void>((resolve, reject) => {
      req = http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
        s.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          const parts = buf.split('\n');
          buf = parts.pop() ?? '';
          lines.push(...parts);
        });
        res.on('error', () => undefined);
        resolve();
      });
      req.on('error', reject);
    }),
  };
  return s;
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('tap channel', () => {
  it('has no subscribers until a session opens, and none after it closes', async () => {
    const port = await tapServer(createTapHandler({ local: LOCAL }));
    expect(tapChannel.hasSubscribers).toBe(false);
    const s = openSession(port);
    await s.opened;
    expect(tapChannel.hasSubscribers).toBe(true);
    s.close();
    await until(() => !tapChannel.hasSubscribers);
  });

  it('streams only the fields of a record: no header value, no query string', async () => {
    const port = await tapServer(createTapHandler({ local: LOCAL }));
    const s = openSession(port);
    await s.opened;
    publishHttpTap(LOCAL, attrs({ responseFlags: ResponseFlag.UF | ResponseFlag.URX, responseCode: 503, traceId: 'ab'.repeat(16) }));
    await until(() => s.records().length === 1);
    const line = s.lines.find((l) => l.startsWith('{')) as string;
    expect(line).not.toContain('secret');
    expect(s.records()[0]).toEqual({
      time: expect.any(Number),
      reporter: 'destination',
      direction: 'inbound',
      workload: 'reviews-v1',
      namespace: 'default',
      peerWorkload: 'unknown',
      peerNamespace: 'unknown',
      peerUnknownReason: 'no_header',
      protocol: 'http',
      method: 'GET',
      authority: 'reviews:9080',
      path: '/reviews/1',
      code: 503,
      flags: 'UF,URX',
      durationMs: 1.235,
      traceId: 'ab'.repeat(16),
    });
    s.close();
  });

  it('keeps only its own workload and the asked-for peer', async () => {
    const port = await tapServer(createTapHandler({ local: LOCAL }));
    const s = openSession(port, '/tap?peer=productpage-v1');
    await s.opened;
    const peer = { workload: 'productpage-v1', namespace: 'default' } as HttpStreamAttributes['peer'];
    publishHttpTap({ workload: 'reviews-v2', namespace: 'default' }, attrs({ peer, path: '/other-workload' }));
    publishHttpTap(LOCAL, attrs({ path: '/unknown-peer' }));
    publishHttpTap(LOCAL, attrs({ peer, path: '/wanted' }));
    await until(() => s.records().length >= 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.records().map((r) => r.path)).toEqual(['/wanted']);
    s.close();
  });

  it('samples an exact share and rate-limits, counting the drops', async () => {
    const registry = new Registry();
    const port = await tapServer(createTapHandler({ local: LOCAL, registry, maxRate: 10 }));
    const sampled = openSession(port, '/tap?sample=0.25');
    await sampled.opened;
    for (let i = 0; i < 8; i++) publishHttpTap(LOCAL, attrs({ path: `/${i}` }));
    await until(() => sampled.records().length === 2);
    expect(sampled.records().map((r) => r.path)).toEqual(['/3', '/7']);
    sampled.close();

    const limited = openSession(port, '/tap?rate=5');
    await limited.opened;
    for (let i = 0; i < 20; i++) publishHttpTap(LOCAL, attrs());
    await until(() => limited.records().length === 5);
    const text = await registry.metrics();
    expect(text).toContain('meshtel_tap_dropped_total{reason="rate_limited"} 15');
    expect(text).toContain('meshtel_tap_records_total 7');
    limited.close();
  });

  it('refuses too many sessions and bad parameters, counting each reason', async () => {
    const registry = new Registry();
    const port = await tapServer(createTapHandler({ local: LOCAL, registry, maxSessions: 1 }));
    const first = openSession(port);
    await first.opened;
    const second = openSession(port);
    await second.opened;
    expect(second.status).toBe(429);
    const bad = openSession(port, '/tap?sample=2');
    await bad.opened;
    expect(bad.status).toBe(400);
    const text = await registry.metrics();
    expect(text).toContain('meshtel_tap_refused_total{reason="too_many_sessions"} 1');
    expect(text).toContain('meshtel_tap_refused_total{reason="bad_request"} 1');
    first.close();
  });

  it('speaks SSE when asked', async () => {
    const port = await tapServer(createTapHandler({ local: LOCAL }));
    const s = openSession(port, '/tap', { accept: 'text/event-stream' });
    await s.opened;
    publishHttpTap(LOCAL, attrs());
    await until(() => s.lines.some((l) => l.startsWith('data: {')));
    expect(JSON.parse((s.lines.find((l) => l.startsWith('data: ')) as string).slice(6)).path).toBe('/reviews/1');
    s.close();
  });

  it('accepts loopback addresses only', () => {
    expect(isLoopbackAddress('127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('::1')).toBe(true);
    expect(isLoopbackAddress('10.0.0.1')).toBe(false);
    expect(isLoopbackAddress('::ffff:10.0.0.1')).toBe(false);
    expect(isLoopbackAddress(undefined)).toBe(false);
    expect(parseTapQuery('/tap?rate=0', undefined, 100)).toBeNull();
    expect(parseTapQuery('/tap?rate=101', undefined, 100)).toBeNull();
  });
});

describe('sidecar admin /tap', () => {
  it('streams the requests a real sidecar proxies, inbound and outbound', async () => {
    const { server, client } = await bookinfoPair(cleanups);
    const inbound = openSession(server.ports.admin);
    const outbound = openSession(client.ports.admin);
    await Promise.all([inbound.opened, outbound.opened]);
    expect(inbound.status).toBe(200);
    const res = await send(client.ports.outbound, { host: 'reviews:9080', path: '/reviews/7?user=x' });
    expect(res.status).toBe(200);
    await until(() => inbound.records().length === 1 && outbound.records().length === 1);
    expect(inbound.records()[0]).toMatchObject({ direction: 'inbound', workload: server.metadata.workload, peerWorkload: client.metadata.workload, path: '/reviews/7', code: 200 });
    expect(outbound.records()[0]).toMatchObject({ direction: 'outbound', workload: client.metadata.workload, peerWorkload: server.metadata.workload, method: 'GET' });
    inbound.close();
    outbound.close();
  });
});

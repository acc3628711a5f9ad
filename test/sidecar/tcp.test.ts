import { spawn } from 'node:child_process';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MintedWorkload } from '../../src/sidecar/certs.js';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import { deadPort, eventually, mintDefaultWorkloads, series, sidecar, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

let certDir: string;
let reviewsCert: MintedWorkload;
let productpageCert: MintedWorkload;
beforeAll(() => {
  certDir = mkdtempSync(path.join(tmpdir(), 'meshtel-tcp-'));
  [reviewsCert, productpageCert] = mintDefaultWorkloads(certDir, 'bookinfo-reviews', 'bookinfo-productpage') as [MintedWorkload, MintedWorkload];
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

/** An echo server (the "app"). */
async function echoApp(): Promise<number> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** Connect, write `payload`, half-close, and collect everything until the other side closes. */
function roundTrip(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.end(payload));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', reject);
  });
}

async function tcpPair(tls: boolean): Promise<{ server: Sidecar; client: Sidecar }> {
  const appPort = await echoApp();
  const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'tcp' }, ...(tls ? { tls: reviewsCert } : {}) });
  cleanups.push(server.close);
  const client = await sidecar({
    metadata: workload('productpage', 'bookinfo-productpage'),
    mesh: { services: [{ name: 'reviews', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: server.ports.inbound } }] }] },
    serviceListeners: [{ host: 'reviews', port: 9000, listenPort: 0 }],
    ...(tls ? { tls: productpageCert } : {}),
  });
  cleanups.push(client.close);
  return { server, client };
}

/** TCP labels (23 tags) of productpage → reviews. */
function tcpLabels(reporter: 'source' | 'destination', tls: boolean): string {
  const pp = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';
  const rv = 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews';
  const destService = reporter === 'source' ? 'reviews.default.svc.cluster.local' : 'reviews';
  const pairs = [
    ['reporter', reporter],
    ['source_workload', 'productpage-v1'],
    ['source_canonical_service', 'productpage'],
    ['source_canonical_revision', 'v1'],
    ['source_workload_namespace', 'default'],
    ['source_principal', tls ? pp : 'unknown'],
    ['source_app', 'productpage'],
    ['source_version', 'v1'],
    ['source_cluster', 'Kubernetes'],
    ['destination_workload', 'reviews-v1'],
    ['destination_workload_namespace', 'default'],
    ['destination_principal', tls ? rv : 'unknown'],
    ['destination_app', 'reviews'],
    ['destination_version', 'v1'],
    // The server's registry has no reviews service here: Istio falls back to the local canonical name.
    ['destination_service', destService],
    ['destination_canonical_service', 'reviews'],
    ['destination_canonical_revision', 'v1'],
    ['destination_service_name', 'reviews'],
    ['destination_service_namespace', 'default'],
    ['destination_cluster', 'Kubernetes'],
    ['request_protocol', 'tcp'],
    ['response_flags', '-'],
    ['connection_security_policy', reporter === 'source' ? 'unknown' : tls ? 'mutual_tls' : 'none'],
  ];
  return `{${pairs.map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

describe.each([{ tls: false }, { tls: true }])('Sidecar over TCP (mTLS: $tls)', ({ tls }) => {
  it('exchanges istio-peer-exchange frames invisibly and reports the connection on both sides', async () => {
    const { server, client } = await tcpPair(tls);
    const payload = 'hello over tcp';
    expect(await roundTrip(client.ports.serviceListeners[0]!, payload)).toBe(payload);
    const n = payload.length;
    // Both sides count app bytes only: the MX frames the sidecars exchange are not traffic (Envoy's tcp_proxy counts).
    await eventually(async () => {
      const s = tcpLabels('source', tls);
      const d = tcpLabels('destination', tls);
      expect(await series(client, 'istio_tcp_connections_opened_total')).toEqual([`istio_tcp_connections_opened_total${s} 1`]);
      expect(await series(client, 'istio_tcp_connections_closed_total')).toEqual([`istio_tcp_connections_closed_total${s} 1`]);
      expect(await series(client, 'istio_tcp_received_bytes_total')).toEqual([`istio_tcp_received_bytes_total${s} ${n}`]);
      expect(await series(client, 'istio_tcp_sent_bytes_total')).toEqual([`istio_tcp_sent_bytes_total${s} ${n}`]);
      expect(await series(server, 'istio_tcp_connections_opened_total')).toEqual([`istio_tcp_connections_opened_total${d} 1`]);
      expect(await series(server, 'istio_tcp_connections_closed_total')).toEqual([`istio_tcp_connections_closed_total${d} 1`]);
      expect(await series(server, 'istio_tcp_received_bytes_total')).toEqual([`istio_tcp_received_bytes_total${d} ${n}`]);
      expect(await series(server, 'istio_tcp_sent_bytes_total')).toEqual([`istio_tcp_sent_bytes_total${d} ${n}`]);
    });
  });
});

describe('Sidecar inbound TCP', () => {
  it('under PERMISSIVE serves a plain-text client and a mutual TLS sidecar on the same port', async () => {
    const appPort = await echoApp();
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'tcp' }, tls: reviewsCert, mtlsMode: 'PERMISSIVE' });
    cleanups.push(server.close);
    const client = await sidecar({
      metadata: workload('productpage', 'bookinfo-productpage'),
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: server.ports.inbound } }] }] },
      serviceListeners: [{ host: 'reviews', port: 9000, listenPort: 0 }],
      tls: productpageCert,
    });
    cleanups.push(client.close);
    expect(await roundTrip(server.ports.inbound, 'plain bytes')).toBe('plain bytes');
    expect(await roundTrip(client.ports.serviceListeners[0]!, 'over mtls')).toBe('over mtls');
    await eventually(async () => {
      const opened = await series(server, 'istio_tcp_connections_opened_total');
      expect(opened).toHaveLength(2);
      expect(opened.find((l) => l.includes('connection_security_policy="none"'))).toMatch(/source_workload="unknown".* 1$/);
      expect(opened.find((l) => l.includes('connection_security_policy="mutual_tls"'))).toMatch(/source_workload="productpage-v1".* 1$/);
    });
  });

  it('lets a client without a sidecar through untouched and reports it with an unknown peer', async () => {
    const { server } = await tcpPair(false);
    // Starts with bytes that are not the MX magic: they flow through and no frame is sent back.
    expect(await roundTrip(server.ports.inbound, 'GET / plain')).toBe('GET / plain');
    await eventually(async () => {
      const opened = await series(server, 'istio_tcp_connections_opened_total');
      expect(opened).toHaveLength(1);
      expect(opened[0]).toMatch(/source_workload="unknown".*destination_workload="reviews-v1".* 1$/);
      expect((await series(server, 'istio_tcp_received_bytes_total'))[0]).toMatch(/ 11$/);
      expect(await series(server, 'meshtel_peer_unknown_total')).toContain('meshtel_peer_unknown_total{reason="not_mx",reporter="destination"} 1');
    });
  });
});

describe('Sidecar TCP reporting interval', () => {
  it('reports byte deltas of an open connection every interval, before it closes', async () => {
    const appPort = await echoApp();
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'tcp' }, reportingIntervalMs: 50 });
    cleanups.push(server.close);
    const sock = net.connect(server.ports.inbound, '127.0.0.1');
    const echoed = new Promise<void>((resolve) => sock.once('data', () => resolve()));
    sock.write('first');
    await echoed;
    await eventually(async () => {
      expect((await series(server, 'istio_tcp_received_bytes_total'))[0]).toMatch(/ 5$/);
      expect((await series(server, 'istio_tcp_sent_bytes_total'))[0]).toMatch(/ 5$/);
      expect(await series(server, 'istio_tcp_connections_closed_total')).toEqual([]);
    });
    sock.end('second');
    await new Promise<void>((resolve) => sock.on('close', () => resolve()));
    await eventually(async () => {
      expect((await series(server, 'istio_tcp_received_bytes_total'))[0]).toMatch(/ 11$/);
      expect(await series(server, 'istio_tcp_connections_closed_total')).toHaveLength(1);
    });
  });
});

describe('Sidecar outbound TCP failures', () => {
  it('closes the app connection and reports the attempt with UF when the endpoint refuses', async () => {
    const port = await deadPort();
    const client = await sidecar({
      metadata: workload('productpage', 'bookinfo-productpage'),
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: port } }] }] },
      serviceListeners: [{ host: 'reviews', port: 9000, listenPort: 0 }],
    });
    cleanups.push(client.close);
    expect(await roundTrip(client.ports.serviceListeners[0]!, 'lost')).toBe('');
    await eventually(async () => {
      const closed = await series(client, 'istio_tcp_connections_closed_total');
      expect(closed).toHaveLength(1);
      expect(closed[0]).toContain('request_protocol="tcp",response_flags="UF"');
    });
  });

  it('reports an inbound connection to a dead app with UF and closes it', async () => {
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: await deadPort(), protocol: 'tcp' } });
    cleanups.push(server.close);
    expect(await roundTrip(server.ports.inbound, 'hello')).toBe('');
    await eventually(async () => {
      const closed = await series(server, 'istio_tcp_connections_closed_total');
      expect(closed).toHaveLength(1);
      expect(closed[0]).toContain('request_protocol="tcp",response_flags="UF"');
    });
  });
});

/** An app that accepts connections and never reads them (its receive buffer fills, then the window closes). */
async function stuckApp(): Promise<number> {
  const held: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.pause();
    held.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => (held.forEach((s) => s.destroy()), server.close(() => r()))));
  return (server.address() as AddressInfo).port;
}

/**
 * Push up to `total` bytes as fast as the peer takes them (honouring the client's own backpressure)
 * for at most `ms`; return how many bytes the peer accepted.
 */
async function push(port: number, total: number, ms: number): Promise<number> {
  const s = net.connect(port, '127.0.0.1');
  cleanups.push(async () => void s.destroy());
  await new Promise<void>((r) => s.once('connect', () => r()));
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const deadline = performance.now() + ms;
  let sent = 0;
  while (sent < total && performance.now() < deadline) {
    sent += chunk.length;
    if (!s.write(chunk)) {
      await Promise.race([new Promise((r) => s.once('drain', r)), new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())))]);
    }
  }
  return s.bytesWritten - s.writableLength;
}

/**
 * A listening port whose connections never complete: a child process listens with a backlog of 1 and then blocks
 * (it never accepts), and filler connections fill the kernel's accept queue, so a new connection's SYN is dropped
 * and it stays connecting (the kernel retries the SYN for about two minutes).
 */
async function unansweredPort(): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         process.stdout.write(s.address().port + '\\n');
         setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000), 20);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: net.Socket[] = [];
  cleanups.push(async () => {
    for (const c of fillers) c.destroy();
    child.kill();
  });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 4; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    fillers.push(c);
  }
  // The queue holds two; the probe must see a third stay connecting.
  await new Promise((r) => setTimeout(r, 300));
  const probe = net.connect(port, '127.0.0.1');
  probe.on('error', () => {});
  fillers.push(probe);
  await new Promise((r) => setTimeout(r, 300));
  expect(probe.connecting).toBe(true);
  return port;
}

describe('Sidecar TCP backpressure', () => {
  // The upstream either stays connecting (node queues the writes made while connecting; past its 16 KiB mark the
  // client is paused) or never reads (only the kernel's loopback buffers, a few MiB each way, and one 16 KiB write
  // buffer hold data). Without backpressure the sidecar read all 64 MiB into memory.
  const upstreams = [
    { what: 'is still connecting', start: unansweredPort, pushMs: 2000 },
    { what: 'does not read (64 MiB pushed)', start: stuckApp, pushMs: 3000 },
  ];

  it.each(upstreams)('bounds what it buffers toward an inbound app that $what', async ({ start, pushMs }) => {
    const appPort = await start();
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'tcp' } });
    cleanups.push(sc.close);
    const rssBefore = process.memoryUsage().rss;
    const accepted = await push(sc.ports.inbound, 64 * 1024 * 1024, pushMs);
    const grown = process.memoryUsage().rss - rssBefore;
    expect(accepted).toBeLessThan(24 * 1024 * 1024);
    expect(grown).toBeLessThan(48 * 1024 * 1024);
  });

  it.each(upstreams)('bounds what it buffers toward an outbound endpoint that $what', async ({ start, pushMs }) => {
    const endpointPort = await start();
    const client = await sidecar({
      metadata: workload('productpage', 'bookinfo-productpage'),
      mesh: { services: [{ name: 'sink', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: endpointPort }, sidecar: false }] }] },
      serviceListeners: [{ host: 'sink', port: 9000, listenPort: 0 }],
    });
    cleanups.push(client.close);
    expect(await push(client.ports.serviceListeners[0]!, 64 * 1024 * 1024, pushMs)).toBeLessThan(24 * 1024 * 1024);
  });
});

describe('Sidecar TCP idle timeout', () => {
  it('closes a connection idle for tcpIdleTimeoutMs on both listeners, counts it and records the close', async () => {
    const appPort = await echoApp();
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'tcp' }, limits: { tcpIdleTimeoutMs: 300 } });
    cleanups.push(server.close);
    const client = await sidecar({
      metadata: workload('productpage', 'bookinfo-productpage'),
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: server.ports.inbound } }] }] },
      serviceListeners: [{ host: 'reviews', port: 9000, listenPort: 0 }],
      limits: { tcpIdleTimeoutMs: 600 },
    });
    cleanups.push(client.close);
    const started = Date.now();
    const echoed = await new Promise<{ data: string; closedAfter: number }>((resolve, reject) => {
      let data = '';
      const s = net.connect(client.ports.serviceListeners[0]!, '127.0.0.1', () => s.write('ping'));
      s.on('data', (c: Buffer) => (data += c.toString()));
      // Activity resets the timer: a byte every 150 ms for 600 ms keeps the connection open.
      let n = 0;
      const t = setInterval(() => (n++ < 4 ? s.write('.') : clearInterval(t)), 150);
      s.on('close', () => resolve({ data, closedAfter: Date.now() - started }));
      s.on('error', reject);
    });
    expect(echoed.data.startsWith('ping....')).toBe(true);
    // Closed by the inbound side's 300 ms once the client stopped writing (not before 600 ms of activity).
    expect(echoed.closedAfter).toBeGreaterThanOrEqual(600);
    expect(echoed.closedAfter).toBeLessThan(5000);
    await eventually(async () => {
      const refusedLine = (await series(server, 'meshtel_proxy_refused_total')).find((l) => l.includes('reason="tcp_idle_timeout"'));
      expect(refusedLine?.endsWith(' 1')).toBe(true);
      const closed = await series(server, 'istio_tcp_connections_closed_total');
      expect(closed).toHaveLength(1);
      expect(closed[0]).toContain('response_flags="-"');
      expect((await series(client, 'istio_tcp_connections_closed_total')).length).toBe(1);
    });
  });
});

/**
 * Upgrades through two sidecars (issue 11.12): a WebSocket handshake passes through and the upgraded
 * stream is spliced (Istio enables `upgrade_configs: websocket`); it is recorded as Envoy records an
 * upgraded stream (code 101, the stream's wire bytes both ways, duration until close). CONNECT gets
 * Envoy's answer for a sidecar route without `connect_config` (404 NR), other upgrade types 403.
 * The handshake is written by hand (Node 20 has no WebSocket client; `ws` is not a dependency).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, rawExchange, requestCount, reviewsMesh, series, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const accept = (key: string): string => createHash('sha1').update(key + GUID).digest('base64');

/** A WebSocket echo app: answers the handshake (RFC 6455 §4.2.2) and echoes every byte; `bye` closes from the server. */
async function wsApp(): Promise<{ port: number; seen: http.IncomingHttpHeaders[] }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const upgraded = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.end('plain'));
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    seen.push(req.headers);
    upgraded.add(socket);
    // node's HTTP server sockets are half-open: answer the peer's FIN with ours.
    socket.on('end', () => socket.end());
    socket.on('close', () => upgraded.delete(socket));
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept(String(req.headers['sec-websocket-key']))}\r\n\r\n`);
    socket.on('data', (d: Buffer) => {
      socket.write(d);
      if (unmask(d) === 'bye') socket.end();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), upgraded.forEach((s) => s.destroy()), server.close(() => r()))));
  return { port: (server.address() as AddressInfo).port, seen };
}

/** The text of one short masked client frame. */
function unmask(d: Buffer): string {
  if (d.length < 6) return '';
  const len = (d[1] as number) & 0x7f;
  return Buffer.from(d.subarray(6, 6 + len).map((b, i) => b ^ (d[2 + (i % 4)] as number))).toString();
}

/** A masked client text frame (RFC 6455 §5.2). */
function frame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** Open a WebSocket through `port` with host `host`: resolves with the head and a socket for the frames. */
function openWs(port: number, host: string): Promise<{ head: string; socket: net.Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const socket = net.connect(port, '127.0.0.1', () =>
      socket.write(`GET /chat HTTP/1.1\r\nhost: ${host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`),
    );
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      resolve({ head: buf.subarray(0, end).toString('latin1'), socket, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('error', reject);
  });
}

function readUntil(socket: net.Socket, initial: Buffer, text: string): Promise<Buffer> {
  return new Promise((resolve) => {
    let buf = initial;
    if (buf.includes(frame(text))) return resolve(buf);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.includes(frame(text))) {
        socket.off('data', onData);
        resolve(buf);
      }
    };
    socket.on('data', onData);
  });
}

async function pair(): Promise<{ client: Awaited<ReturnType<typeof sidecar>>; server: Awaited<ReturnType<typeof sidecar>>; app: Awaited<ReturnType<typeof wsApp>> }> {
  const app = await wsApp();
  const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] } });
  cleanups.push(server.close);
  const client = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), mesh: reviewsMesh(server.ports.inbound) });
  cleanups.push(client.close);
  return { client, server, app };
}

describe('WebSocket through two sidecars', () => {
  it('passes the handshake, splices frames both ways, and records 101 with the stream bytes and lifetime', async () => {
    const { client, server, app } = await pair();
    const ws = await openWs(client.ports.outbound, 'reviews:9080');
    expect(ws.head.split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
    expect(ws.head.toLowerCase()).toContain(`sec-websocket-accept: ${accept(Buffer.from('0123456789abcdef').toString('base64')).toLowerCase()}`);
    // The app saw the upgrade headers, and the mesh's MX (the source sidecar's identity).
    expect(app.seen[0]?.upgrade).toBe('websocket');
    expect(app.seen[0]?.['sec-websocket-key']).toBeDefined();
    expect(app.seen[0]?.['x-envoy-peer-metadata-id']).toBeUndefined();
    const big = 'x'.repeat(100);
    for (const msg of ['hello', big]) {
      ws.socket.write(frame(msg));
      await readUntil(ws.socket, ws.rest, msg);
    }
    // Nothing is recorded while the stream is open (Envoy records at stream end).
    expect(await requestCount(client)).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    // The server ends the stream: no flag on either reporter.
    ws.socket.write(frame('bye'));
    await new Promise<void>((r) => ws.socket.once('close', () => r()));
    await eventually(async () => {
      expect(await requestCount(client, { reporter: 'source', response_code: '101', response_flags: '-', source_workload: 'productpage-v1', destination_workload: 'reviews-v1' })).toBe(1);
      expect(await requestCount(server, { reporter: 'destination', response_code: '101', response_flags: '-', source_workload: 'productpage-v1' })).toBe(1);
    });
    // Request bytes: the handshake plus every frame the client sent (> 100 + 5 + 3 payload bytes + heads).
    const reqBytes = (await series(client, 'istio_request_bytes_sum')).find((l) => l.includes('response_code="101"'));
    expect(Number(reqBytes?.split(' ').pop())).toBeGreaterThan(100 + 150);
    const respBytes = (await series(server, 'istio_response_bytes_sum')).find((l) => l.includes('response_code="101"'));
    expect(Number(respBytes?.split(' ').pop())).toBeGreaterThan(108);
    // Duration is the stream's life (≥ the 200 ms it stayed open).
    const duration = (await series(client, 'istio_request_duration_milliseconds_sum')).find((l) => l.includes('response_code="101"'));
    expect(Number(duration?.split(' ').pop())).toBeGreaterThanOrEqual(200);
  });

  it('records DC when the client closes the upgraded stream', async () => {
    const { client, server } = await pair();
    const ws = await openWs(client.ports.outbound, 'reviews:9080');
    ws.socket.destroy();
    await eventually(async () => {
      expect(await requestCount(client, { response_code: '101', response_flags: 'DC' })).toBe(1);
      expect(await requestCount(server, { response_code: '101' })).toBe(1);
    });
  });
});

describe('CONNECT and other upgrades', () => {
  it('answers CONNECT 404 NR on both listeners and records it, never a silently closed connection', async () => {
    const { client, server } = await pair();
    for (const sc of [client, server]) {
      const port = sc === client ? sc.ports.outbound : sc.ports.inbound;
      const reply = await rawExchange(port, 'CONNECT reviews:9080 HTTP/1.1\r\nhost: reviews:9080\r\n\r\n');
      expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
      expect(reply).toContain('route not found');
    }
    await eventually(async () => {
      expect(await requestCount(client, { reporter: 'source', response_code: '404', response_flags: 'NR' })).toBe(1);
      expect(await requestCount(server, { reporter: 'destination', response_code: '404', response_flags: 'NR' })).toBe(1);
    });
  });

  it('refuses an upgrade type Istio does not enable with 403 and closes', async () => {
    const { client } = await pair();
    const reply = await rawExchange(client.ports.outbound, 'GET / HTTP/1.1\r\nhost: reviews:9080\r\nupgrade: spdy/3\r\nconnection: upgrade\r\n\r\n');
    expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 403 Forbidden');
    await eventually(async () => expect(await requestCount(client, { reporter: 'source', response_code: '403', destination_service_name: 'reviews' })).toBe(1));
  });

  it('serves an h2c upgrade request as the plain request Envoy makes of it', async () => {
    const { client } = await pair();
    const reply = await rawExchange(client.ports.outbound, 'GET / HTTP/1.1\r\nhost: reviews:9080\r\nupgrade: h2c\r\nconnection: upgrade, http2-settings\r\nhttp2-settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n');
    expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(reply.endsWith('plain')).toBe(true);
  });
});

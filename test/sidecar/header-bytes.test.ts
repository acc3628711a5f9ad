import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sidecar, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A raw app answering one response whose `x-name` header carries the UTF-8 bytes of "é" (obs-text). */
async function rawApp(): Promise<number> {
  const app = net.createServer((s) => {
    s.once('data', () => {
      s.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nx-name: '), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\ncontent-length: 2\r\n\r\nok')]));
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
  return (app.address() as AddressInfo).port;
}

/** Send one raw request and return every byte of the response. */
function rawExchange(port: number, request: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const c = net.connect(port, '127.0.0.1', () => c.write(request));
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('end', () => resolve(Buffer.concat(parts)));
    c.on('error', reject);
  });
}

function headerBytes(raw: Buffer, name: string): number[] {
  const at = raw.indexOf(`${name}: `);
  const end = raw.indexOf('\r\n', at);
  return [...raw.subarray(at + name.length + 2, end)];
}

describe('Sidecar header bytes', () => {
  it('passes non-ASCII response header bytes through the inbound listener unchanged', async () => {
    const port = await rawApp();
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port } });
    cleanups.push(sc.close);
    const raw = await rawExchange(sc.ports.inbound, 'GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n');
    expect(headerBytes(raw, 'x-name')).toEqual([0xc3, 0xa9]);
  });

  it('passes them through the outbound listener (HTTP_PROXY, passthrough) unchanged', async () => {
    const port = await rawApp();
    const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage') });
    cleanups.push(sc.close);
    const raw = await rawExchange(sc.ports.outbound, `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n\r\n`);
    expect(headerBytes(raw, 'x-name')).toEqual([0xc3, 0xa9]);
  });
});

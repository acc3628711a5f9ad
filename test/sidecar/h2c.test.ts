import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bookinfoLabels, eventually, series, sidecar, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** One h2c request; resolves with status, headers and body. */
function h2Request(port: number, path: string, body?: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, 'x-custom': 'kept' });
    let head: http2.IncomingHttpHeaders = {};
    let data = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: string) => (data += c));
    stream.on('end', () => {
      session.close();
      resolve({ status: Number(head[':status']), headers: head, body: data });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

describe('Sidecar over HTTP/2 cleartext (http2 port)', () => {
  it('proxies h2c end to end, strips MX headers on both legs and reports both sides', async () => {
    const seen: http2.IncomingHttpHeaders[] = [];
    const app = http2.createServer((req, res) => {
      seen.push(req.headers);
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => res.end(`echo:${b}`));
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
    const appPort = (app.address() as AddressInfo).port;
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'http2' } });
    cleanups.push(server.close);
    const client = await sidecar({
      metadata: workload('productpage', 'bookinfo-productpage'),
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'http2', protocol: 'http2', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http2: server.ports.inbound } }] }] },
      serviceListeners: [{ host: 'reviews', port: 9080, listenPort: 0 }],
    });
    cleanups.push(client.close);

    const res = await h2Request(client.ports.serviceListeners[0]!, '/h2?x=1', 'ping');
    expect(res).toMatchObject({ status: 200, body: 'echo:ping' });
    expect(res.headers['x-envoy-peer-metadata']).toBeUndefined();
    expect(seen[0]?.[':path']).toBe('/h2?x=1');
    expect(seen[0]?.['x-custom']).toBe('kept');
    expect(seen[0]?.['x-envoy-peer-metadata-id']).toBeUndefined();
    await eventually(async () => {
      expect(await series(client, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('source')} 1`]);
      expect(await series(server, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('destination', { destination_service: 'reviews' })} 1`]);
      // h2 has no per-stream socket counters: bytes are estimated from frames, so only check they are counted.
      const bytes = await series(server, 'istio_request_bytes_sum');
      expect(Number(bytes[0]?.split(' ').pop())).toBeGreaterThan('ping'.length);
    });
  });
});

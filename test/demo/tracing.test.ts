import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { startDemo } from '../../src/demo/demo.js';

describe('startDemo({ tracing })', () => {
  it('exports spans of every hop to the OTLP endpoint, flushed when the demo closes', async () => {
    const bodies: Buffer[] = [];
    const paths: string[] = [];
    // A stand-in collector: accepts OTLP/HTTP protobuf posts and keeps the raw bodies.
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        bodies.push(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    try {
      const demo = await startDemo({ rate: 0, failRate: 0, delayMs: 0, tracing: { endpoint } });
      expect(demo.tracingEndpoint).toBe(endpoint);
      for (let i = 0; i < 3; i++) await (await request(demo.gatewayUrl)).body.dump();
      await demo.close();
      expect(paths.every((p) => p.startsWith('POST /v1/traces application/x-protobuf'))).toBe(true);
      // Resource service.name is `<canonical service>.<namespace>` (Istio's naming) for every hop.
      const all = Buffer.concat(bodies).toString('latin1');
      for (const service of ['istio-ingressgateway.istio-system', 'productpage.bookinfo', 'details.bookinfo', 'reviews.bookinfo', 'ratings.bookinfo']) {
        expect(all).toContain(service);
      }
    } finally {
      await new Promise<void>((r) => collector.close(() => r()));
    }
  }, 60_000);
});

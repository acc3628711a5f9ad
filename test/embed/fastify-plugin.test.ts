/**
 * meshtelFastify's recording lifecycle over real sockets (issue 16): a finished response is recorded from node:http's
 * response-finish channel, a response that never finishes when its connection closes, each exactly once; response
 * headers reach Telemetry expressions only when one reads them; a body route re-enters the trace context even when
 * the interceptor is created after the routes.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createMeshtelEmbedding, meshtelFastify } from '../../src/embed/index.js';
import type { MeshtelEmbedding } from '../../src/embed/index.js';
import { inboundTraceContext, readInboundTraceContext } from '../../src/embed/trace-context.js';
import { createHttpMetadataExchange } from '../../src/exchange/http-exchange.js';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import { clientMeta, serverMeta, seriesOf } from './support.js';

const REQUESTS = new Set(['istio_requests_total']);
const client = createHttpMetadataExchange({ local: clientMeta });

let app: FastifyInstance | undefined;
let mesh: MeshtelEmbedding | undefined;

afterEach(async () => {
  await app?.close();
  await mesh?.close();
  app = undefined;
  mesh = undefined;
});

async function start(options: { telemetry?: ReturnType<typeof parseTelemetry>; routes: (a: FastifyInstance) => void }): Promise<number> {
  mesh = createMeshtelEmbedding({ metadata: serverMeta, ...(options.telemetry ? { telemetry: options.telemetry } : {}) });
  app = Fastify();
  await app.register(meshtelFastify, { embedding: mesh });
  options.routes(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as AddressInfo).port;
}

/** istio_requests_total by `response_code/response_flags`, summed over the other labels. */
async function countsByOutcome(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(await seriesOf(mesh!.metrics(), REQUESTS))) {
    const code = /response_code="([^"]*)"/.exec(key)?.[1];
    const flags = /response_flags="([^"]*)"/.exec(key)?.[1];
    out[`${code}/${flags}`] = (out[`${code}/${flags}`] ?? 0) + value;
  }
  return out;
}

const mxHeaders = `x-envoy-peer-metadata-id: ${client.headerId}\r\nx-envoy-peer-metadata: ${client.headerValue}\r\n`;

describe('meshtelFastify', () => {
  describe('recording', () => {
    it('records each of three pipelined requests on one connection once, with the MX answer on each', async () => {
      const port = await start({ routes: (a) => a.get('/p/:n', (_req, reply) => void reply.send('ok')) });
      const socket = net.connect(port, '127.0.0.1');
      let received = '';
      socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
      const oneRequest = (n: number): string => `GET /p/${n} HTTP/1.1\r\nhost: httpbin:8000\r\n${mxHeaders}\r\n`;
      // One write: node:http parses all three before the first response is written.
      socket.write(oneRequest(1) + oneRequest(2) + oneRequest(3));
      await expect.poll(() => received.split('HTTP/1.1 200').length - 1).toBe(3);
      expect(received.split(`x-envoy-peer-metadata-id: ${mesh!.nodeId}`).length - 1).toBe(3);
      socket.destroy();
      await new Promise((r) => socket.once('close', r));
      expect(await countsByOutcome()).toEqual({ '200/-': 3 });
      // The connection closing afterwards records nothing more.
      await new Promise((r) => setTimeout(r, 50));
      expect(await countsByOutcome()).toEqual({ '200/-': 3 });
    });

    it('records a request whose client left before the response once, as DC with code 0, when the connection closes', async () => {
      let answered!: () => void;
      const answeredLate = new Promise<void>((r) => (answered = r));
      const port = await start({
        routes: (a) =>
          a.get('/slow', (_req, reply) => {
            setTimeout(() => {
              reply.send('late');
              answered();
            }, 150);
          }),
      });
      const socket = net.connect(port, '127.0.0.1');
      socket.write(`GET /slow HTTP/1.1\r\nhost: httpbin:8000\r\n${mxHeaders}\r\n`);
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
      await expect.poll(countsByOutcome).toEqual({ '0/DC': 1 });
      // The handler's late send neither throws nor counts again.
      await answeredLate;
      await new Promise((r) => setTimeout(r, 30));
      expect(await countsByOutcome()).toEqual({ '0/DC': 1 });
    });

    it('records a request of fastify inject() (no node:http response to publish) once, as finished (200, no flags)', async () => {
      await start({ routes: (a) => a.get('/ok', (_req, reply) => void reply.send('ok')) });
      const res = await app!.inject({ url: '/ok', headers: { 'x-envoy-peer-metadata-id': client.headerId, 'x-envoy-peer-metadata': client.headerValue } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-envoy-peer-metadata-id']).toBe(mesh!.nodeId);
      await expect.poll(countsByOutcome).toEqual({ '200/-': 1 });
    });
  });

  describe('response headers', () => {
    it('are not copied when no expression reads them, and reach a tag override that reads one', async () => {
      expect(createMeshtelEmbedding({ metadata: serverMeta }).stats.readsHeaders).toBe(false);
      const telemetry = parseTelemetry({
        apiVersion: 'telemetry.istio.io/v1',
        kind: 'Telemetry',
        metadata: { name: 't', namespace: 'istio-system' },
        spec: { metrics: [{ overrides: [{ tagOverrides: { cache: { value: "response.headers['x-cache']" } } }] }] },
      });
      const port = await start({ telemetry, routes: (a) => a.get('/c', (_req, reply) => void reply.header('x-cache', 'HIT').send('ok')) });
      expect(mesh!.stats.readsHeaders).toBe(true);
      await request(`http://127.0.0.1:${port}/c`).then((r) => r.body.dump());
      const keys = Object.keys(await seriesOf(mesh!.metrics(), REQUESTS));
      expect(keys.some((k) => k.includes('cache="HIT"'))).toBe(true);
    });

    it("read a grpc-status set through fastify's reply (handed to writeHead, not kept on the raw response)", async () => {
      const port = await start({
        routes: (a) => {
          a.addContentTypeParser('application/grpc', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
          a.post('/g', (_req, reply) => void reply.header('content-type', 'application/grpc').header('grpc-status', '5').send(''));
        },
      });
      // No MX headers: the raw response has no header of its own, so node keeps none of fastify's.
      const r = await request(`http://127.0.0.1:${port}/g`, { method: 'POST', body: Buffer.from([0, 0, 0, 0, 0]), headers: { 'content-type': 'application/grpc' } });
      await r.body.dump();
      expect(r.headers['grpc-status']).toBe('5');
      const keys = Object.keys(await seriesOf(mesh!.metrics(), REQUESTS));
      expect(keys.map((k) => /grpc_response_status="([^"]*)"/.exec(k)?.[1])).toEqual(['5']);
    });
  });

  describe('trace context', () => {
    it('re-enters it after body parsing on a POST route declared before the interceptor exists', async () => {
      const seen: (string | undefined)[] = [];
      const port = await start({
        routes: (a) =>
          a.post('/body', (req, reply) => {
            seen.push(inboundTraceContext.getStore()?.['x-request-id']);
            void reply.send(req.body);
          }),
      });
      // What createMeshtelInterceptor does: from now on something reads the context.
      readInboundTraceContext();
      const res = await request(`http://127.0.0.1:${port}/body`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'with-body' },
        body: JSON.stringify({ a: 1 }),
      });
      expect(await res.body.json()).toEqual({ a: 1 });
      expect(seen).toEqual(['with-body']);
    });
  });
});

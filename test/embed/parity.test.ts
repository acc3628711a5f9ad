import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMeshtelEmbedding, createMeshtelInterceptor, meshtelFastify } from '../../src/embed/index.js';
import { SERVICE, clientMeta, serverMeta, seriesOf } from './support.js';
import { startSidecar } from '../../src/sidecar/sidecar.js';
import type { Sidecar } from '../../src/sidecar/sidecar.js';


function app(): FastifyInstance {
  const a = Fastify();
  a.get('/status/:code', async (req, reply) => reply.code(Number((req.params as { code: string }).code)).send('status'));
  a.post('/anything', async (req) => ({ got: req.body }));
  return a;
}

const COMPARED = new Set([
  'istio_requests_total',
  'istio_request_duration_milliseconds_count',
  'istio_request_bytes_count',
  'istio_response_bytes_count',
  'istio_request_bytes_bucket',
  'istio_response_bytes_bucket',
  'istio_request_bytes_sum',
]);

describe('proxyless embedding vs sidecar: identical series for the same traffic', () => {
  const proxyless = createMeshtelEmbedding({ metadata: serverMeta });
  const clientA = createMeshtelEmbedding({ metadata: clientMeta, resolveService: () => SERVICE });
  const clientB = createMeshtelEmbedding({ metadata: clientMeta, resolveService: () => SERVICE });
  let appA: FastifyInstance;
  let appB: FastifyInstance;
  let sidecar: Sidecar;
  let urlA = '';
  let urlB = '';
  const agentA: Dispatcher = new Agent().compose(createMeshtelInterceptor(clientA));
  const agentB: Dispatcher = new Agent().compose(createMeshtelInterceptor(clientB));

  async function traffic(url: string, dispatcher: Dispatcher): Promise<void> {
    const host = 'httpbin.default.svc.cluster.local:8000';
    const calls: [string, string, string | undefined][] = [
      ...Array.from({ length: 5 }, () => ['GET', '/status/200', undefined] as [string, string, undefined]),
      ...Array.from({ length: 3 }, () => ['GET', '/status/503', undefined] as [string, string, undefined]),
      ['GET', '/status/404', undefined],
      ['POST', '/anything', '{"a":1}'],
      ['POST', '/anything', '{"b":2}'],
    ];
    for (const [method, path, body] of calls) {
      const res = await request(`${url}${path}`, {
        method: method as 'GET' | 'POST',
        dispatcher,
        headers: { host, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body } : {}),
      });
      await res.body.dump();
    }
  }

  beforeAll(async () => {
    appA = app();
    await appA.register(meshtelFastify, { embedding: proxyless });
    await appA.listen({ port: 0, host: '127.0.0.1' });
    urlA = `http://127.0.0.1:${(appA.server.address() as AddressInfo).port}`;
    appB = app();
    await appB.listen({ port: 0, host: '127.0.0.1' });
    sidecar = await startSidecar({
      metadata: serverMeta,
      bindAddress: '127.0.0.1',
      env: {},
      ports: { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 },
      app: { host: '127.0.0.1', port: (appB.server.address() as AddressInfo).port, protocol: 'http' },
    });
    urlB = `http://127.0.0.1:${sidecar.ports.inbound}`;
    await traffic(urlA, agentA);
    await traffic(urlB, agentB);
  }, 30_000);

  afterAll(async () => {
    await sidecar?.close();
    await appA?.close();
    await appB?.close();
    await Promise.all([proxyless.close(), clientA.close(), clientB.close(), agentA.close(), agentB.close()]);
  });

  it('records the same reporter=destination series in the app as the sidecar does', async () => {
    const ours = await seriesOf(proxyless.metrics(), COMPARED);
    const theirs = await seriesOf(sidecar.registry.metrics(), COMPARED);
    expect(Object.keys(ours).length).toBeGreaterThan(0);
    expect(ours).toEqual(theirs);
  });

  it('gives the calling client the same reporter=source series whichever server answered', async () => {
    const a = await seriesOf(clientA.metrics(), COMPARED);
    const b = await seriesOf(clientB.metrics(), COMPARED);
    expect(Object.keys(a).some((k) => k.includes('destination_workload="httpbin-v1"'))).toBe(true);
    expect(a).toEqual(b);
  });
});

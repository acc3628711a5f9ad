import type { AddressInfo } from 'node:net';
import { decodeProtobufPage } from '../../src/stats/exposition-protobuf.js';
import { PROTOBUF_CONTENT_TYPE } from '../../src/stats/media-types.js';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMeshtelEmbedding, createMeshtelInterceptor, kubernetesServiceResolver, meshtelFastify } from '../../src/embed/index.js';
import type { MeshtelEmbedding } from '../../src/embed/index.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import type { Sample } from '../../src/stats/exposition-parser.js';
import { isMeshtelError } from '../../src/core/errors.js';

const meta = (workload: string, app: string) =>
  createWorkloadMetadata({
    name: `${workload}-abc12`,
    namespace: 'bookinfo',
    workload,
    owner: `kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/${workload}`,
    labels: { app, version: 'v1' },
    cluster: 'Kubernetes',
    instanceIps: ['127.0.0.1'],
  });

async function series(e: MeshtelEmbedding, name: string): Promise<Sample[]> {
  return parseExposition(await e.metrics()).filter((s) => s.name === name);
}

describe('proxyless embedding: fastify plugin (inbound) + undici interceptor (outbound)', () => {
  const front = createMeshtelEmbedding({ metadata: meta('productpage-v1', 'productpage'), resolveService: () => null });
  const back = createMeshtelEmbedding({ metadata: meta('details-v1', 'details') });
  let backApp: FastifyInstance;
  let frontApp: FastifyInstance;
  let frontUrl = '';
  const seenByBackend: Record<string, string | string[] | undefined>[] = [];
  const seenByFront: Record<string, string | string[] | undefined>[] = [];
  const agent = new Agent().compose(createMeshtelInterceptor(front));

  beforeAll(async () => {
    backApp = Fastify();
    await backApp.register(meshtelFastify, { embedding: back });
    backApp.get('/details/:id', async (req, reply) => {
      seenByBackend.push({ ...req.headers });
      if ((req.params as { id: string }).id === '0') return reply.code(503).send({ error: 'down' });
      return { id: 1, author: 'William Shakespeare' };
    });
    await backApp.listen({ port: 0, host: '127.0.0.1' });
    const backPort = (backApp.server.address() as AddressInfo).port;
    // The backend is the `details` service: the outbound resolver maps its loopback authority to it.
    const detailsService = { host: 'details.bookinfo.svc.cluster.local', name: 'details', namespace: 'bookinfo' };
    const frontWithService = createMeshtelInterceptor(
      Object.assign(Object.create(front) as MeshtelEmbedding, { resolveService: (a: string) => (a.endsWith(`:${backPort}`) ? detailsService : null) }),
    );
    const frontAgent = new Agent().compose(frontWithService);
    frontApp = Fastify();
    await frontApp.register(meshtelFastify, { embedding: front });
    frontApp.get('/productpage', async (req) => {
      const id = (req.query as { id?: string }).id ?? '1';
      const res = await request(`http://127.0.0.1:${backPort}/details/${id}`, { dispatcher: frontAgent });
      seenByFront.push({ ...res.headers });
      return { details: await res.body.json(), status: res.statusCode };
    });
    await frontApp.listen({ port: 0, host: '127.0.0.1' });
    frontUrl = `http://127.0.0.1:${(frontApp.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await frontApp.close();
    await backApp.close();
    await front.close();
    await back.close();
    await agent.close();
  });

  it('exchanges metadata both ways and strips the MX headers before handlers see them', async () => {
    const res = await request(`${frontUrl}/productpage`, { headers: { 'x-request-id': 'e2e-trace-1' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ status: 200, details: { author: 'William Shakespeare' } });
    const atBackend = seenByBackend.at(-1) ?? {};
    expect(atBackend['x-envoy-peer-metadata']).toBeUndefined();
    expect(atBackend['x-envoy-peer-metadata-id']).toBeUndefined();
    const atFront = seenByFront.at(-1) ?? {};
    expect(atFront['x-envoy-peer-metadata']).toBeUndefined();
    expect(atFront['x-envoy-peer-metadata-id']).toBeUndefined();
    // A client without a sidecar sent no MX headers, so none come back (Istio answers only what it got).
    expect(res.headers['x-envoy-peer-metadata']).toBeUndefined();
  });

  it('carries the inbound x-request-id to the outbound call without the app copying it', async () => {
    await request(`${frontUrl}/productpage`, { headers: { 'x-request-id': 'propagate-me' } }).then((r) => r.body.dump());
    expect(seenByBackend.at(-1)?.['x-request-id']).toBe('propagate-me');
  });

  it('records reporter=destination at the backend with the caller as source', async () => {
    const before = (await series(back, 'istio_requests_total')).filter((s) => s.labels.response_code === '200').reduce((n, s) => n + s.value, 0);
    await request(`${frontUrl}/productpage`).then((r) => r.body.dump());
    const rows = (await series(back, 'istio_requests_total')).filter((s) => s.labels.response_code === '200');
    expect(rows).toHaveLength(1);
    expect(rows[0]?.value).toBe(before + 1);
    expect(rows[0]?.labels).toMatchObject({
      reporter: 'destination',
      source_workload: 'productpage-v1',
      source_canonical_service: 'productpage',
      source_workload_namespace: 'bookinfo',
      source_app: 'productpage',
      destination_workload: 'details-v1',
      destination_service_name: 'details',
      request_protocol: 'http',
      response_flags: '-',
      connection_security_policy: 'none',
    });
  });

  it('records reporter=source at the caller with the answering peer as destination, for every code', async () => {
    await request(`${frontUrl}/productpage?id=0`).then((r) => r.body.dump());
    const rows = (await series(front, 'istio_requests_total')).filter((s) => s.labels.reporter === 'source');
    const byCode = Object.fromEntries(rows.map((s) => [s.labels.response_code, s]));
    expect(byCode['503']?.labels).toMatchObject({
      source_workload: 'productpage-v1',
      destination_workload: 'details-v1',
      destination_canonical_service: 'details',
      destination_service: 'details.bookinfo.svc.cluster.local',
      destination_service_name: 'details',
      destination_service_namespace: 'bookinfo',
      connection_security_policy: 'unknown',
    });
    expect(byCode['503']?.value).toBe(1);
    expect(byCode['200']?.value).toBeGreaterThanOrEqual(3);
  });

  it('counts every request exactly once per reporter and fills the histograms', async () => {
    const n = 20;
    const count = async (e: MeshtelEmbedding, name: string, reporter: string) =>
      (await series(e, name)).filter((s) => s.labels.reporter === reporter).reduce((a, s) => a + s.value, 0);
    const beforeDest = await count(back, 'istio_requests_total', 'destination');
    const beforeSrc = await count(front, 'istio_requests_total', 'source');
    await Promise.all(Array.from({ length: n }, () => request(`${frontUrl}/productpage`).then((r) => r.body.dump())));
    expect(await count(back, 'istio_requests_total', 'destination')).toBe(beforeDest + n);
    expect(await count(front, 'istio_requests_total', 'source')).toBe(beforeSrc + n);
    expect(await count(back, 'istio_request_duration_milliseconds_count', 'destination')).toBe(beforeDest + n);
    const sizes = (await series(back, 'istio_request_bytes_sum')).reduce((a, s) => a + s.value, 0);
    // Each request is a few hundred wire bytes (request line and headers, MX header included).
    expect(sizes / (beforeDest + n)).toBeGreaterThan(100);
  });

  it('counts the plain client as an unknown peer with its reason', async () => {
    const unknown = parseExposition(await front.metrics()).filter((s) => s.name === 'meshtel_peer_unknown_total' && s.labels.reason === 'no_header' && s.labels.reporter === 'destination');
    expect(unknown[0]?.value).toBeGreaterThan(0);
  });
});

describe('meshtelFastify ignorePaths', () => {
  it('leaves ignored paths out of the series and passes their MX headers through', async () => {
    const e = createMeshtelEmbedding({ metadata: meta('details-v1', 'details') });
    const app = Fastify();
    await app.register(meshtelFastify, { embedding: e, ignorePaths: ['/metrics'] });
    let seen: string | undefined;
    app.get('/metrics', async (req) => {
      seen = req.headers['x-envoy-peer-metadata-id'] as string | undefined;
      return e.metrics();
    });
    app.get('/ok', async () => 'ok');
    try {
      await app.inject({ url: '/metrics?x=1', headers: { 'x-envoy-peer-metadata-id': 'scraper' } });
      await app.inject({ url: '/ok' });
      const rows = await series(e, 'istio_requests_total');
      expect(rows.reduce((n, s) => n + s.value, 0)).toBe(1);
      expect(seen).toBe('scraper');
    } finally {
      await app.close();
      await e.close();
    }
  });
});

describe('kubernetesServiceResolver()', () => {
  const resolve = kubernetesServiceResolver('bookinfo');
  it.each([
    ['reviews:9080', { host: 'reviews.bookinfo.svc.cluster.local', name: 'reviews', namespace: 'bookinfo' }],
    ['reviews.other', { host: 'reviews.other.svc.cluster.local', name: 'reviews', namespace: 'other' }],
    ['reviews.other.svc.cluster.local:80', { host: 'reviews.other.svc.cluster.local', name: 'reviews', namespace: 'other' }],
    ['127.0.0.1:8080', null],
    ['[::1]:8080', null],
    ['api.github.com', null],
  ])('%s → %j', (authority, expected) => {
    expect(resolve(authority)).toEqual(expected);
  });
});

describe('configuration errors', () => {
  it('refuses the plugin without an embedding (MESHTEL_ERR_INVALID_CONFIG)', async () => {
    const app = Fastify();
    const err = await Promise.resolve(app.register(meshtelFastify, {} as never).ready()).then(() => undefined, (e: unknown) => e);
    expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_CONFIG')).toBe(true);
    await app.close();
  });

  it('refuses the interceptor without an embedding', () => {
    expect(() => createMeshtelInterceptor(undefined as never)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
  });
});

describe('MeshtelEmbedding .metricsResponse()', () => {
  it('serves the same series as metrics(), with the app metrics of a shared registry, gzip and OpenMetrics on request', async () => {
    const { Counter, Registry } = await import('prom-client');
    const { gunzipSync } = await import('node:zlib');
    const registry = new Registry();
    const appHits = new Counter({ name: 'app_hits_total', help: 'app hits', registers: [registry] });
    appHits.inc(3);
    const e = createMeshtelEmbedding({ metadata: meta('details-v1', 'details'), registry });
    const app = Fastify();
    await app.register(meshtelFastify, { embedding: e, ignorePaths: ['/metrics'] });
    app.get('/metrics', async (req, reply) => {
      const r = e.metricsResponse(req.headers);
      reply.headers(r.headers);
      return reply.send(r.body);
    });
    app.get('/ok', async () => 'ok');
    try {
      await app.inject({ url: '/ok' });
      const text = await app.inject({ url: '/metrics' });
      expect(text.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      const samples = parseExposition(text.body);
      expect(samples.filter((s) => s.name === 'istio_requests_total').reduce((n, s) => n + s.value, 0)).toBe(1);
      expect(samples.find((s) => s.name === 'app_hits_total')?.value).toBe(3);
      expect(parseExposition(await e.metrics()).filter((s) => s.name === 'istio_requests_total')).toEqual(samples.filter((s) => s.name === 'istio_requests_total'));

      const zipped = await app.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0', 'accept-encoding': 'gzip' } });
      expect(zipped.headers['content-encoding']).toBe('gzip');
      expect(zipped.headers['content-type']).toContain('application/openmetrics-text');
      expect(gunzipSync(zipped.rawPayload).toString('utf8').endsWith('# EOF\n')).toBe(true);

      // Prometheus with native histograms asks for protobuf first: the same series, app metrics included.
      const pb = await app.inject({ url: '/metrics', headers: { accept: 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,text/plain;q=0.5' } });
      expect(pb.headers['content-type']).toBe(PROTOBUF_CONTENT_TYPE);
      const page = decodeProtobufPage(pb.rawPayload);
      if (!page.ok) throw new Error(page.reason);
      expect(page.families.find((f) => f.name === 'istio_requests_total')?.metric.reduce((n, m) => n + (m.counter?.value ?? 0), 0)).toBe(1);
      expect(page.families.find((f) => f.name === 'app_hits_total')?.metric[0]?.counter?.value).toBe(3);
    } finally {
      await app.close();
      await e.close();
    }
  });
});

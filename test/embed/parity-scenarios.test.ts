/**
 * Issue 12.1: one scenario table through a sidecar and through the embedding, identical series and span tags.
 *
 * Each reporter is compared against its own counterpart with everything else held equal:
 * - source reporter: a client sidecar (plain undici app → outbound listener) and the undici interceptor call the
 *   same kind of server (a fastify app with meshtelFastify, one per client so the server series stay apart);
 * - destination reporter: the same kind of client (the interceptor) calls a server sidecar in front of a plain
 *   node:http app and a fastify app with meshtelFastify, both answering every scenario the same way.
 * The series (istio_requests_total and the three histograms' counts) and the span tags must be equal. Byte sums
 * are not compared: a sidecar counts socket bytes, the interceptor estimates them above the socket.
 * A refused connection (UF) has no server, so it runs in a describe of its own (client sidecar vs interceptor).
 * gRPC (content-type application/grpc, POST with a body) is in the table twice: the status in the trailers of an
 * HTTP 200, and no status at all (mapped from the HTTP status). TCP has no embedded counterpart (an app has no TCP
 * filter); test/sidecar/grpc.test.ts has the HTTP/2 gRPC cases.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMeshtelEmbedding, createMeshtelInterceptor, meshtelFastify } from '../../src/embed/index.js';
import type { MeshtelEmbedding } from '../../src/embed/index.js';
import { formatNodeId } from '../../src/metadata/node-id.js';
import type { WorkloadMetadata } from '../../src/metadata/types.js';
import { SERVICE, clientMeta, serverMeta, seriesOf } from './support.js';
import { startSidecar } from '../../src/sidecar/sidecar.js';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import { createTracing } from '../../src/tracing/tracer.js';

const AUTHORITY = 'httpbin.default.svc.cluster.local:8000';
/** The client sidecar's route timeout and the interceptor's headers timeout: the same bound on both sides. */
const TIMEOUT_MS = 1500;
const SLOW_MS = 4000;

/** What the client does in a scenario. */
type ClientAction = 'read' | 'abort-after-head';

interface Scenario {
  readonly path: string;
  readonly client: ClientAction;
  /** A gRPC call: POST with a body and content-type application/grpc. */
  readonly grpc?: boolean;
  /** What the server app does with the request (the same in node:http and in fastify's raw response). */
  readonly serve: (res: http.ServerResponse) => void;
}

const SCENARIOS: readonly Scenario[] = [
  { path: '/ok', client: 'read', serve: (res) => res.end('ok') },
  { path: '/fail', client: 'read', serve: (res) => ((res.statusCode = 503), res.end('unavailable')) },
  { path: '/not-found', client: 'read', serve: (res) => ((res.statusCode = 404), res.end('none')) },
  // The app resets the connection before a response head.
  { path: '/reset-before', client: 'read', serve: (res) => res.socket?.destroy() },
  // The app sends the head and part of the body, then resets.
  {
    path: '/reset-during',
    client: 'read',
    serve: (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 50);
    },
  },
  // The client leaves once the head arrived; the body would have come later.
  {
    path: '/abort',
    client: 'abort-after-head',
    serve: (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      setTimeout(() => res.end('late'), SLOW_MS).unref();
    },
  },
  // Nothing comes back within the timeout.
  { path: '/slow', client: 'read', serve: (res) => void setTimeout(() => res.end('late'), SLOW_MS).unref() },
  // gRPC: HTTP 200 with grpc-status 7 (PERMISSION_DENIED) in the trailers.
  {
    path: '/grpc-trailers',
    client: 'read',
    grpc: true,
    serve: (res) => {
      res.writeHead(200, { 'content-type': 'application/grpc', trailer: 'grpc-status' });
      res.write(Buffer.from([0, 0, 0, 0, 0]));
      res.addTrailers({ 'grpc-status': '7' });
      res.end();
    },
  },
  // gRPC without any grpc-status: the HTTP 503 maps to UNAVAILABLE (14).
  { path: '/grpc-unavailable', client: 'read', grpc: true, serve: (res) => ((res.statusCode = 503), res.end()) },
  // A plain HTTP request whose response carries a grpc-status header: not gRPC, so neither path reads it (no
  // grpc_response_status, no span grpc.status_code), as Envoy reads the status of gRPC requests only.
  {
    path: '/http-with-grpc-status',
    client: 'read',
    serve: (res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'grpc-status': '5' });
      res.end('not grpc');
    },
  },
];

function serveScenario(path: string, res: http.ServerResponse): void {
  const s = SCENARIOS.find((x) => x.path === path);
  if (s === undefined) {
    res.statusCode = 500;
    res.end('no scenario');
    return;
  }
  s.serve(res);
}

function recorder(): SpanExporter & { spans: ReadableSpan[] } {
  const spans: ReadableSpan[] = [];
  return { spans, export: (batch, done) => (spans.push(...batch), done({ code: 0 })), shutdown: () => Promise.resolve() };
}

function tracerFor(meta: WorkloadMetadata, exporter: SpanExporter) {
  return createTracing({ local: meta, nodeId: formatNodeId(meta), exporter, samplingPercent: 100, scheduledDelayMillis: 10 });
}

/** A fastify app with meshtelFastify answering every scenario from the raw response. */
async function embeddedServer(embedding: MeshtelEmbedding): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify();
  await app.register(meshtelFastify, { embedding });
  // fastify answers 415 to a content type it has no parser for; the gRPC scenarios' app takes the bytes as they are.
  app.addContentTypeParser('application/grpc', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.all('/*', (req, reply) => {
    reply.hijack();
    serveScenario(req.url, reply.raw);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as AddressInfo).port };
}

/**
 * An undici agent whose connections to the service authority land on a loopback port, as DNS and kube-proxy
 * would take `httpbin.default.svc.cluster.local:8000` to a pod: the app calls the service URL, not the port.
 */
function serviceAgent(port: number): Agent {
  return new Agent({
    connect: (_options, callback) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => callback(null, socket));
      socket.once('error', (err) => callback(err, null));
    },
  });
}

/** Run every scenario once against `url` through `dispatcher`. */
async function runScenarios(url: string, dispatcher: Dispatcher): Promise<void> {
  for (const s of SCENARIOS) {
    const ac = new AbortController();
    try {
      const call = s.grpc === true ? { method: 'POST' as const, body: Buffer.from([0, 0, 0, 0, 0]), headers: { host: AUTHORITY, 'content-type': 'application/grpc' } } : { headers: { host: AUTHORITY } };
      const res = await request(`${url}${s.path}`, { dispatcher, ...call, headersTimeout: TIMEOUT_MS, signal: ac.signal });
      if (s.client === 'abort-after-head') {
        ac.abort();
        await res.body.dump().catch(() => undefined);
      } else {
        await res.body.text().catch(() => undefined);
      }
    } catch {
      // resets, timeouts and aborts surface here; the reporters record them
    }
  }
}

/** The compared series: requests and the three histograms' counts (byte sums differ by nature, see above). */
const COMPARED = new Set(['istio_requests_total', 'istio_request_duration_milliseconds_count', 'istio_request_bytes_count', 'istio_response_bytes_count']);

/**
 * Span tags without what differs by nature between two runs (ids, addresses, timings); `appPort` (the port the
 * server app listens on, which names the inbound cluster) reads as `<app-port>`.
 */
function tagsOf(spans: readonly ReadableSpan[], appPort?: number): Record<string, unknown>[] {
  const port = (v: unknown): unknown => (appPort !== undefined && typeof v === 'string' ? v.split(`|${appPort}|`).join('|<app-port>|') : v);
  // Sizes differ by nature too: a sidecar counts socket bytes, the interceptor estimates them above the socket.
  const varying = /(^|\.)(peer\.address|upstream_address|downstream_address|guid:x-request-id|node_id|request_size|response_size)$|_port$|_address$/;
  return spans
    .map((s) => {
      const tags: Record<string, unknown> = { kind: s.kind, name: s.name };
      for (const [k, v] of Object.entries(s.attributes)) if (!varying.test(k)) tags[k] = port(v);
      return tags;
    })
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

async function until(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const total = (s: Record<string, number>, prefix = 'istio_requests_total{'): number =>
  Object.entries(s).reduce((n, [k, v]) => (k.startsWith(prefix) ? n + v : n), 0);

describe('parity: one scenario table through a sidecar and through the embedding', () => {
  const spans = { c1: recorder(), c2: recorder(), s1: recorder(), s2: recorder(), other: recorder() };
  // Source side: client sidecar C1 and interceptor C2, each calling its own embedded server.
  const serverForC1 = createMeshtelEmbedding({ metadata: serverMeta, inboundService: SERVICE, tracer: tracerFor(serverMeta, spans.other) });
  const serverForC2 = createMeshtelEmbedding({ metadata: serverMeta, inboundService: SERVICE, tracer: tracerFor(serverMeta, spans.s2) });
  const c2 = createMeshtelEmbedding({ metadata: clientMeta, resolveService: () => SERVICE, tracer: tracerFor(clientMeta, spans.c2) });
  // Destination side: the same interceptor client shape calls server sidecar S1 (in front of node:http).
  const c2ForS1 = createMeshtelEmbedding({ metadata: clientMeta, resolveService: () => SERVICE, tracer: tracerFor(clientMeta, spans.other) });
  let agentC2: Dispatcher;
  let agentC2ForS1: Dispatcher;
  const plainAgent = new Agent();
  let appForC1: FastifyInstance;
  let appForC2: FastifyInstance;
  let rawApp: http.Server;
  let embeddedPortForC2 = 0;
  let c1: Sidecar;
  let s1: Sidecar;

  beforeAll(async () => {
    const forC1 = await embeddedServer(serverForC1);
    appForC1 = forC1.app;
    const forC2 = await embeddedServer(serverForC2);
    appForC2 = forC2.app;
    embeddedPortForC2 = forC2.port;
    rawApp = http.createServer((req, res) => serveScenario(req.url ?? '/', res));
    await new Promise<void>((r) => rawApp.listen(0, '127.0.0.1', r));
    const ports = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 };
    const mesh = (port: number) => ({
      services: [{ name: 'httpbin', namespace: 'default', ports: [{ name: 'http', protocol: 'http' as const, port: 8000 }], endpoints: [{ address: '127.0.0.1', ports: { http: port } }] }],
    });
    s1 = await startSidecar({
      metadata: serverMeta,
      bindAddress: '127.0.0.1',
      env: {},
      ports,
      reportingIntervalMs: 0,
      mesh: { services: [{ name: 'httpbin', namespace: 'default', ports: [{ name: 'http', protocol: 'http', port: 8000 }] }] },
      app: { host: '127.0.0.1', port: (rawApp.address() as AddressInfo).port, protocol: 'http' },
      tracer: tracerFor(serverMeta, spans.s1),
    });
    agentC2 = serviceAgent(forC2.port).compose(createMeshtelInterceptor(c2));
    agentC2ForS1 = serviceAgent(s1.ports.inbound).compose(createMeshtelInterceptor(c2ForS1));
    c1 = await startSidecar({
      metadata: clientMeta,
      bindAddress: '127.0.0.1',
      env: {},
      ports,
      reportingIntervalMs: 0,
      timeoutMs: TIMEOUT_MS,
      retries: 0,
      mesh: mesh(forC1.port),
      tracer: tracerFor(clientMeta, spans.c1),
    });
    await Promise.all([
      runScenarios(`http://127.0.0.1:${c1.ports.outbound}`, plainAgent),
      runScenarios(`http://${AUTHORITY}`, agentC2),
      runScenarios(`http://${AUTHORITY}`, agentC2ForS1),
    ]);
    // Every reporter has recorded every scenario (aborts and resets are recorded when the stream closes).
    const n = SCENARIOS.length;
    await until(async () => total(await seriesOf(c1.registry.metrics(), COMPARED)) >= n && total(await seriesOf(c2.metrics(), COMPARED)) >= n);
    await until(async () => total(await seriesOf(s1.registry.metrics(), COMPARED)) >= n && total(await seriesOf(serverForC2.metrics(), COMPARED)) >= n);
  }, 60_000);

  afterAll(async () => {
    // Clients first, then every server drops what is left (a response still pending after its client left).
    await Promise.all([agentC2?.destroy(), agentC2ForS1?.destroy(), plainAgent.destroy()]);
    await c1?.close();
    await s1?.close();
    for (const app of [appForC1, appForC2]) {
      app?.server.closeAllConnections();
      await app?.close();
    }
    rawApp?.closeAllConnections();
    await new Promise<void>((r) => (rawApp ? rawApp.close(() => r()) : r()));
    await Promise.all([serverForC1.close(), serverForC2.close(), c2.close(), c2ForS1.close()]);
  });

  it('records one request per scenario on every reporter', async () => {
    for (const text of [c1.registry.metrics(), c2.metrics(), s1.registry.metrics(), serverForC2.metrics()]) {
      expect(total(await seriesOf(text, COMPARED))).toBe(SCENARIOS.length);
    }
  });

  it('gives the source reporter identical series from the client sidecar and from the interceptor', async () => {
    const sidecarSeries = await seriesOf(c1.registry.metrics(), COMPARED);
    const embeddedSeries = await seriesOf(c2.metrics(), COMPARED);
    expect(embeddedSeries).toEqual(sidecarSeries);
  });

  it('gives the destination reporter identical series from the server sidecar and from the fastify plugin', async () => {
    const sidecarSeries = await seriesOf(s1.registry.metrics(), COMPARED);
    const embeddedSeries = await seriesOf(serverForC2.metrics(), COMPARED);
    expect(embeddedSeries).toEqual(sidecarSeries);
  });

  it('tags client spans and server spans identically on both paths', async () => {
    // close() flushes the tracers (the spans of streams still open were ended when they closed).
    await c1.close();
    await s1.close();
    await Promise.all([c2.close(), serverForC2.close()]);
    expect(spans.c1.spans).toHaveLength(SCENARIOS.length);
    expect(tagsOf(spans.c2.spans)).toEqual(tagsOf(spans.c1.spans));
    expect(spans.s1.spans).toHaveLength(SCENARIOS.length);
    expect(tagsOf(spans.s2.spans, embeddedPortForC2)).toEqual(tagsOf(spans.s1.spans, (rawApp.address() as AddressInfo).port));
  });
});

describe('parity: a refused connection through a client sidecar and through the interceptor', () => {
  // A port nothing listens on: both clients fail to connect (ECONNREFUSED), no server records anything.
  const spans = { c1: recorder(), c2: recorder() };
  const c2 = createMeshtelEmbedding({ metadata: clientMeta, resolveService: () => SERVICE, tracer: tracerFor(clientMeta, spans.c2) });
  const plainAgent = new Agent();
  let agentC2: Dispatcher;
  let c1: Sidecar;

  beforeAll(async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    c1 = await startSidecar({
      metadata: clientMeta,
      bindAddress: '127.0.0.1',
      env: {},
      ports: { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 },
      reportingIntervalMs: 0,
      timeoutMs: TIMEOUT_MS,
      // No retries on either side: the interceptor does not retry, so neither may add URX.
      retries: 0,
      mesh: { services: [{ name: 'httpbin', namespace: 'default', ports: [{ name: 'http', protocol: 'http', port: 8000 }], endpoints: [{ address: '127.0.0.1', ports: { http: closedPort } }] }] },
      tracer: tracerFor(clientMeta, spans.c1),
    });
    agentC2 = serviceAgent(closedPort).compose(createMeshtelInterceptor(c2));
    for (const [url, dispatcher] of [
      [`http://127.0.0.1:${c1.ports.outbound}`, plainAgent],
      [`http://${AUTHORITY}`, agentC2],
    ] as const) {
      try {
        const res = await request(`${url}/refused`, { dispatcher, headers: { host: AUTHORITY }, headersTimeout: TIMEOUT_MS });
        await res.body.text();
      } catch {
        // the interceptor's caller sees the connect error; the sidecar's caller gets its 503
      }
    }
    await until(async () => total(await seriesOf(c1.registry.metrics(), COMPARED)) >= 1 && total(await seriesOf(c2.metrics(), COMPARED)) >= 1);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([agentC2?.destroy(), plainAgent.destroy()]);
    await c1?.close();
    await c2.close();
  });

  it('records 503 UF on both, in identical series', async () => {
    const sidecarSeries = await seriesOf(c1.registry.metrics(), COMPARED);
    expect(Object.keys(sidecarSeries).some((k) => k.startsWith('istio_requests_total{') && k.includes('response_code="503"') && k.includes('response_flags="UF"'))).toBe(true);
    expect(await seriesOf(c2.metrics(), COMPARED)).toEqual(sidecarSeries);
  });

  it('tags both client spans UF with the same cluster', async () => {
    await c1.close();
    await c2.close();
    expect(spans.c1.spans).toHaveLength(1);
    const tags = tagsOf(spans.c2.spans);
    expect(tags).toEqual(tagsOf(spans.c1.spans));
    expect(tags[0]).toMatchObject({ response_flags: 'UF', 'http.status_code': '503', upstream_cluster: 'outbound|8000||httpbin.default.svc.cluster.local' });
  });
});

/**
 * The embedding emits its spans through the application's own OpenTelemetry SDK (libraries use the API,
 * applications configure the SDK): an app running NodeSDK finds meshtel's server and client spans inside its
 * own traces, with its resource, and meshtel registers no provider of its own.
 */
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { AlwaysOnSampler, ParentBasedSampler, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMeshtelEmbedding, createMeshtelInterceptor, meshtelFastify } from '../../src/embed/index.js';
import type { MeshtelEmbedding } from '../../src/embed/index.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { TRACER_NAME } from '../../src/tracing/hop-tracer.js';
import { createRecordingExporter } from '../tracing/support/recording-exporter.js';

const meta = (workload: string) =>
  createWorkloadMetadata({ name: `${workload}-abc12`, namespace: 'bookinfo', workload, labels: { app: workload, version: 'v1' }, instanceIps: ['127.0.0.1'] });

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  trace.disable();
  context.disable();
  propagation.disable();
  vi.restoreAllMocks();
});

/** front (fastify + undici interceptor) calls back (fastify); `handler` runs inside front's route. */
async function twoServices(
  front: MeshtelEmbedding,
  back: MeshtelEmbedding,
  handler: (call: () => Promise<string>) => Promise<string>,
  beforeMeshtel?: (app: FastifyInstance) => void,
): Promise<{ frontUrl: string; backHeaders: Record<string, string | string[] | undefined>[] }> {
  const backHeaders: Record<string, string | string[] | undefined>[] = [];
  const backApp = Fastify();
  await backApp.register(meshtelFastify, { embedding: back });
  backApp.get('/details', async (req) => (backHeaders.push({ ...req.headers }), 'details'));
  await backApp.listen({ port: 0, host: '127.0.0.1' });
  cleanups.push(() => backApp.close());
  const agent = new Agent().compose(createMeshtelInterceptor(front));
  cleanups.push(() => agent.close());
  const frontApp = Fastify();
  beforeMeshtel?.(frontApp);
  await frontApp.register(meshtelFastify, { embedding: front });
  const backPort = (backApp.server.address() as AddressInfo).port;
  const call = async (): Promise<string> => {
    const r = await request(`http://127.0.0.1:${backPort}/details`, { dispatcher: agent, headers: { host: 'details:9080' } });
    return r.body.text();
  };
  frontApp.get('/productpage', () => handler(call));
  await frontApp.listen({ port: 0, host: '127.0.0.1' });
  cleanups.push(() => frontApp.close());
  return { frontUrl: `http://127.0.0.1:${(frontApp.server.address() as AddressInfo).port}/productpage`, backHeaders };
}

function only(spans: ReadableSpan[], pred: (s: ReadableSpan) => boolean, what: string): ReadableSpan {
  const found = spans.filter(pred);
  if (found.length !== 1) throw new Error(`expected one ${what}, got ${found.length}: ${JSON.stringify(spans.map((s) => [s.name, s.kind]))}`);
  return found[0]!;
}

describe('embedding tracing through the application’s tracer provider', () => {
  it('puts meshtel’s server and client spans inside the app’s NodeSDK traces, with Envoy/Istio tags, and registers no provider', async () => {
    const exporter = createRecordingExporter();
    const sdk = new NodeSDK({
      serviceName: 'productpage-app',
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
      instrumentations: [],
      metricReaders: [],
      logRecordProcessors: [],
    });
    sdk.start();
    cleanups.push(() => sdk.shutdown());
    // From here on, nothing may register a tracer provider: meshtel is a library.
    const setGlobal = vi.spyOn(trace, 'setGlobalTracerProvider');

    const front = createMeshtelEmbedding({ metadata: meta('productpage-v1'), tracing: true });
    const back = createMeshtelEmbedding({ metadata: meta('details-v1'), tracing: true });
    cleanups.push(() => front.close(), () => back.close());
    const appTracer = trace.getTracer('productpage-app-code');
    const { frontUrl, backHeaders } = await twoServices(front, back, (call) =>
      // The app's own span around its outbound call, as app code instrumented with the API would have.
      appTracer.startActiveSpan('load reviews', async (span) => {
        try {
          return await call();
        } finally {
          span.end();
        }
      }),
    );
    const res = await request(frontUrl, { headers: { 'user-agent': 'curl/8.5.0' } });
    expect(await res.body.text()).toBe('details');
    await vi.waitFor(() => expect(exporter.spans.length).toBeGreaterThanOrEqual(4), { timeout: 5000 });

    const spans = exporter.spans;
    const meshtel = spans.filter((s) => s.instrumentationScope.name === TRACER_NAME);
    expect(meshtel).toHaveLength(3);
    const frontServer = only(meshtel, (s) => s.kind === SpanKind.SERVER && s.attributes['istio.canonical_service'] === 'productpage-v1', 'front server span');
    const client = only(meshtel, (s) => s.kind === SpanKind.CLIENT, 'client span');
    const backServer = only(meshtel, (s) => s.kind === SpanKind.SERVER && s.attributes['istio.canonical_service'] === 'details-v1', 'back server span');
    const appSpan = only(spans, (s) => s.name === 'load reviews', 'app span');

    // One trace: meshtel server span → the app's span → meshtel client span → the next service's server span.
    const traceId = frontServer.spanContext().traceId;
    for (const s of [client, backServer, appSpan]) expect(s.spanContext().traceId).toBe(traceId);
    expect(frontServer.parentSpanContext).toBeUndefined();
    expect(appSpan.parentSpanContext?.spanId).toBe(frontServer.spanContext().spanId);
    expect(client.parentSpanContext?.spanId).toBe(appSpan.spanContext().spanId);
    expect(backServer.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    // The next service's handler sees its server span in both formats Istio asks apps to forward, B3 naming the
    // client span as the parent.
    expect(backHeaders[0]?.traceparent).toBe(`00-${traceId}-${backServer.spanContext().spanId}-01`);
    expect(backHeaders[0]?.['x-b3-parentspanid']).toBe(client.spanContext().spanId);

    // The app's resource, Envoy's span names and tags.
    for (const s of meshtel) expect(s.resource.attributes['service.name']).toBe('productpage-app');
    expect(frontServer.name).toMatch(/^127\.0\.0\.1:\d+\/\*$/);
    // The interceptor names the hop by the port it dialled (the loopback port of the test server).
    expect(client.attributes['http.url']).toBe('http://details:9080/details');
    expect(client.name).toMatch(/^details\.bookinfo\.svc\.cluster\.local:\d+\/\*$/);
    expect(frontServer.attributes).toMatchObject({
      component: 'proxy',
      'http.method': 'GET',
      'http.status_code': '200',
      'user_agent': 'curl/8.5.0',
      'response_flags': '-',
      'istio.namespace': 'bookinfo',
    });
    expect(client.attributes).toMatchObject({
      component: 'proxy',
      'http.status_code': '200',
      'istio.destination_workload': 'details-v1',
    });
    expect(client.attributes['upstream_cluster']).toMatch(/^outbound\|\d+\|\|details\.bookinfo\.svc\.cluster\.local$/);
    expect(backServer.attributes['istio.source_workload']).toBe('productpage-v1');
    // One x-request-id across the request, as Envoy keeps it.
    const requestId = frontServer.attributes['guid:x-request-id'];
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(client.attributes['guid:x-request-id']).toBe(requestId);
    expect(backServer.attributes['guid:x-request-id']).toBe(requestId);

    expect(setGlobal).not.toHaveBeenCalled();
  });

  it('takes the app’s active request span (http/fastify instrumentation) as the parent of its server span', async () => {
    const exporter = createRecordingExporter();
    const sdk = new NodeSDK({ spanProcessors: [new SimpleSpanProcessor(exporter)], instrumentations: [], metricReaders: [], logRecordProcessors: [] });
    sdk.start();
    cleanups.push(() => sdk.shutdown());
    const front = createMeshtelEmbedding({ metadata: meta('productpage-v1'), tracing: true });
    const back = createMeshtelEmbedding({ metadata: meta('details-v1') });
    cleanups.push(() => front.close(), () => back.close());
    const instrumentation = trace.getTracer('instrumentation-like');
    // What @fastify/otel / instrumentation-http do: a request span made active before the app's hooks run.
    const { frontUrl } = await twoServices(front, back, (call) => call(), (app) =>
      app.addHook('onRequest', (_req, reply, next) => {
        const span = instrumentation.startSpan('GET /productpage', { kind: SpanKind.SERVER });
        reply.raw.once('close', () => span.end());
        context.with(trace.setSpan(context.active(), span), next);
      }),
    );
    await (await request(frontUrl)).body.text();
    await vi.waitFor(() => expect(exporter.spans.some((s) => s.name === 'GET /productpage')).toBe(true), { timeout: 5000 });
    const outer = only(exporter.spans, (s) => s.name === 'GET /productpage', 'instrumentation span');
    const server = only(exporter.spans, (s) => s.instrumentationScope.name === TRACER_NAME && s.kind === SpanKind.SERVER, 'meshtel server span');
    const client = only(exporter.spans, (s) => s.instrumentationScope.name === TRACER_NAME && s.kind === SpanKind.CLIENT, 'meshtel client span');
    expect(server.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
    expect(server.spanContext().traceId).toBe(outer.spanContext().traceId);
    expect(client.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
  });

  it('without an SDK in the app records nothing and passes the caller’s trace context through', async () => {
    const front = createMeshtelEmbedding({ metadata: meta('productpage-v1'), tracing: true });
    const back = createMeshtelEmbedding({ metadata: meta('details-v1') });
    cleanups.push(() => front.close(), () => back.close());
    const { frontUrl, backHeaders } = await twoServices(front, back, (call) => call());
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await (await request(frontUrl, { headers: { traceparent: incoming } })).body.text();
    // The no-op API keeps the caller's span context: the next hop continues the caller's trace.
    expect(backHeaders[0]?.traceparent).toBe(incoming);
    expect(backHeaders[0]?.['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

/**
 * What reaches the tracing backend, decoded from the real wire formats: OTLP/HTTP protobuf (the default,
 * Jaeger's port 4318) and the Jaeger exporter's Thrift batches (older collectors). Two sidecars:
 * productpage (inbound server span, then an outbound client span) and reviews (inbound server span).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTracing } from '../../src/tracing/tracer.js';
import type { HeaderBag, HopTracer } from '../../src/tracing/types.js';
import { INBOUND, NODE_ID, OK_END, OUTBOUND, reviewsPeer, withEnv, workload } from './support/fixtures.js';
import { startJaegerAgent, startJaegerCollector, startOtlpReceiver } from './support/receivers.js';
import type { ReceivedSpan, TraceReceiver } from './support/receivers.js';

const REVIEWS_NODE = 'sidecar~10.52.1.7~reviews-v2-5b64f47978-abcde.default~default.svc.cluster.local';

let receiver: TraceReceiver | undefined;
const tracers: HopTracer[] = [];
afterEach(async () => {
  await Promise.all(tracers.splice(0).map((t) => t.shutdown()));
  vi.unstubAllEnvs();
  await receiver?.close();
  receiver = undefined;
});

/** Drive one request through productpage's sidecar (in and out) and reviews' sidecar (in). */
function twoHops(productpage: HopTracer, reviews: HopTracer): void {
  // Ingress → productpage sidecar (inbound): no trace headers, 100 % sampling starts the trace.
  const inbound: HeaderBag = { 'user-agent': 'curl/8.5.0' };
  const ppServer = productpage.startSpan(inbound, { ...INBOUND, serviceHost: 'productpage.default.svc.cluster.local', authority: 'productpage:9080', url: 'http://productpage:9080/productpage' });
  const toApp: HeaderBag = { ...inbound };
  ppServer.inject(toApp);
  // The app forwards the trace headers on its call to reviews; productpage's sidecar (outbound).
  const outbound: HeaderBag = { ...toApp };
  const ppClient = productpage.startSpan(outbound, OUTBOUND);
  ppClient.inject(outbound);
  // reviews' sidecar (inbound).
  const atReviews: HeaderBag = { ...outbound };
  const rvServer = reviews.startSpan(atReviews, INBOUND);
  rvServer.end({ ...OK_END, upstreamCluster: 'inbound|9080||', peer: null });
  ppClient.end({ ...OK_END, peer: reviewsPeer() });
  ppServer.end({ ...OK_END, upstreamCluster: 'inbound|9080||', responseSize: 5179 });
}

function byKindAndService(spans: ReceivedSpan[], kind: string, service: string): ReceivedSpan {
  const s = spans.find((x) => x.kind === kind && x.serviceName === service);
  if (!s) throw new Error(`no ${kind} span of ${service} in ${JSON.stringify(spans.map((x) => [x.kind, x.serviceName]))}`);
  return s;
}

describe.each([
  { backend: 'OTLP/HTTP protobuf', exporter: 'otlp' as const, start: startOtlpReceiver, kindTag: 'server' },
  { backend: 'Jaeger Thrift over HTTP', exporter: 'jaeger' as const, start: startJaegerCollector, kindTag: 'server' },
])('createTracing() exporting to $backend', ({ exporter, start }) => {
  async function run(): Promise<ReceivedSpan[]> {
    receiver = await start();
    const common = { exporter, endpoint: receiver.url, samplingPercent: 100, scheduledDelayMillis: 20 };
    const productpage = createTracing({ ...common, local: workload(), nodeId: NODE_ID });
    // Jaeger's sender fixes the process (service name) per exporter, so each sidecar has its own exporter, as in a mesh.
    const reviews = createTracing({
      ...common,
      local: workload({ name: 'reviews-v2-5b64f47978-abcde', workload: 'reviews-v2', canonicalService: 'reviews', canonicalRevision: 'v2', app: 'reviews', version: 'v2' }),
      nodeId: REVIEWS_NODE,
    });
    tracers.push(productpage, reviews);
    twoHops(productpage, reviews);
    await Promise.all([productpage.shutdown(), reviews.shutdown()]);
    return receiver.waitForSpans(3);
  }

  it('links the three spans of two hops into one trace: server → client → server', async () => {
    const spans = await run();
    expect(spans).toHaveLength(3);
    const ppServer = byKindAndService(spans, 'server', 'productpage.default');
    const ppClient = byKindAndService(spans, 'client', 'productpage.default');
    const rvServer = byKindAndService(spans, 'server', 'reviews.default');
    expect(ppServer.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(ppServer.parentSpanId).toBe('');
    expect(ppClient.parentSpanId).toBe(ppServer.spanId);
    expect(rvServer.parentSpanId).toBe(ppClient.spanId);
  });

  it('names spans host:port/* after the service host', async () => {
    const spans = await run();
    expect(byKindAndService(spans, 'server', 'productpage.default').name).toBe('productpage.default.svc.cluster.local:9080/*');
    expect(byKindAndService(spans, 'client', 'productpage.default').name).toBe('reviews.default.svc.cluster.local:9080/*');
    expect(byKindAndService(spans, 'server', 'reviews.default').name).toBe('reviews.default.svc.cluster.local:9080/*');
  });

  it("carries Envoy's tags as strings and Istio's service tags", async () => {
    const spans = await run();
    const client = byKindAndService(spans, 'client', 'productpage.default');
    expect(client.tags).toMatchObject({
      component: 'proxy',
      node_id: NODE_ID,
      zone: 'us-east1-b',
      'http.method': 'GET',
      'http.url': 'http://reviews:9080/reviews/0',
      'http.protocol': 'HTTP/1.1',
      'http.status_code': '200',
      response_flags: '-',
      upstream_cluster: 'outbound|9080||reviews.default.svc.cluster.local',
      request_size: '0',
      response_size: '295',
      user_agent: 'curl/8.5.0',
      downstream_cluster: '-',
      'istio.canonical_revision': 'v1',
      'istio.canonical_service': 'productpage',
      'istio.cluster_id': 'client-cluster',
      'istio.mesh_id': 'mesh',
      'istio.namespace': 'default',
    });
    expect(client.tags['guid:x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(client.tags.error).toBeUndefined();
    // x-request-id is the same on all hops.
    expect(new Set(spans.map((s) => s.tags['guid:x-request-id'])).size).toBe(1);
    const rv = byKindAndService(spans, 'server', 'reviews.default');
    expect(rv.tags).toMatchObject({ 'peer.address': '10.52.0.34', node_id: REVIEWS_NODE, 'istio.canonical_service': 'reviews' });
  });

  it('names the peer learned by metadata exchange with istio.destination_* on client spans', async () => {
    const spans = await run();
    expect(byKindAndService(spans, 'client', 'productpage.default').tags).toMatchObject({
      'istio.destination_workload': 'reviews-v2',
      'istio.destination_namespace': 'default',
      'istio.destination_canonical_service': 'reviews',
      'istio.destination_canonical_revision': 'v2',
      'istio.destination_cluster_id': 'server-cluster',
      'istio.destination_workload_type': 'deployment',
    });
  });
});

describe('createTracing() configured only by OTEL_* variables', () => {
  it('sends to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces with OTEL_SERVICE_NAME and OTEL_TRACES_SAMPLER', async () => {
    receiver = await startOtlpReceiver();
    const env = {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: new URL(receiver.url).origin,
      OTEL_SERVICE_NAME: 'productpage-from-env',
      OTEL_TRACES_SAMPLER: 'always_on',
      OTEL_PROPAGATORS: 'tracecontext',
    };
    const t = withEnv(env, () => createTracing({ local: workload(), nodeId: NODE_ID, scheduledDelayMillis: 20 }));
    tracers.push(t);
    t.startSpan({}, OUTBOUND).end(OK_END);
    await t.shutdown();
    const [span] = await receiver.waitForSpans(1);
    expect(span).toMatchObject({ serviceName: 'productpage-from-env', name: 'reviews.default.svc.cluster.local:9080/*', kind: 'client' });
  });
});

describe('createTracing() with the console exporter', () => {
  it('prints each sampled span with its name and tags', async () => {
    const dir = vi.spyOn(console, 'dir').mockImplementation(() => {});
    try {
      const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter: 'console', samplingPercent: 100 });
      t.startSpan({}, OUTBOUND).end(OK_END);
      await t.shutdown();
      expect(dir).toHaveBeenCalledTimes(1);
      const printed = dir.mock.calls[0]![0] as { name: string; attributes: Record<string, unknown> };
      expect(printed.name).toBe('reviews.default.svc.cluster.local:9080/*');
      expect(printed.attributes.component).toBe('proxy');
    } finally {
      dir.mockRestore();
    }
  });
});

describe('createTracing() with the Jaeger exporter and no collector endpoint', () => {
  it('sends Thrift emitBatch datagrams to the agent named by OTEL_EXPORTER_JAEGER_AGENT_HOST/PORT', async () => {
    const agent = await startJaegerAgent();
    receiver = agent;
    // The Jaeger exporter is imported lazily and reads its variables when it is built: set until the test ends.
    vi.stubEnv('OTEL_EXPORTER_JAEGER_AGENT_HOST', agent.host);
    vi.stubEnv('OTEL_EXPORTER_JAEGER_AGENT_PORT', String(agent.port));
    const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter: 'jaeger', samplingPercent: 100, scheduledDelayMillis: 20 });
    tracers.push(t);
    const server = t.startSpan({}, INBOUND);
    const out: HeaderBag = {};
    server.inject(out);
    const client = t.startSpan(out, OUTBOUND);
    client.end(OK_END);
    server.end(OK_END);
    await t.shutdown();
    const spans = await agent.waitForSpans(2);
    const s = byKindAndService(spans, 'server', 'productpage.default');
    const c = byKindAndService(spans, 'client', 'productpage.default');
    expect(c.traceId).toBe(s.traceId);
    expect(c.parentSpanId).toBe(s.spanId);
    expect(s.tags).toMatchObject({ component: 'proxy', 'istio.canonical_service': 'productpage', 'peer.address': '10.52.0.34' });
  });
});

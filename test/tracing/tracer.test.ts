/** createTracing() / createNoopTracing(): the span a hop records and what the filters can rely on. */
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanKind } from '@opentelemetry/api';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createNoopTracing, createTracing } from '../../src/tracing/tracer.js';
import type { TracingOptions } from '../../src/tracing/config.js';
import { METRIC_SPANS_DROPPED } from '../../src/tracing/span-metrics.js';
import type { HeaderBag, SpanEndInfo, SpanStartInfo } from '../../src/tracing/types.js';
import { INBOUND, NODE_ID, OK_END, OUTBOUND, reviewsPeer, workload } from './support/fixtures.js';
import { createRecordingExporter } from './support/recording-exporter.js';

/** Record one request through a fresh tracer at 100 % and return the exported span. */
async function record(
  start: SpanStartInfo = INBOUND,
  end: SpanEndInfo = OK_END,
  options: Partial<TracingOptions> = {},
  headers: HeaderBag = {},
): Promise<ReadableSpan> {
  const exporter = createRecordingExporter();
  const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter, samplingPercent: 100, ...options });
  t.startSpan(headers, start).end(end);
  await t.shutdown();
  expect(exporter.spans).toHaveLength(1);
  return exporter.spans[0]!;
}

describe('createTracing()', () => {
  describe('.startSpan()', () => {
    it.each([
      { name: 'the service host', start: OUTBOUND, expected: 'reviews.default.svc.cluster.local:9080/*' },
      { name: 'the authority host without its port', start: { ...OUTBOUND, serviceHost: undefined, authority: 'reviews:9080' }, expected: 'reviews:9080/*' },
      { name: 'an IPv6 authority', start: { ...OUTBOUND, serviceHost: undefined, authority: '[fd00::1]:8080', port: 8080 }, expected: '[fd00::1]:8080/*' },
    ])('names the span host:port/* from $name', async ({ start, expected }) => {
      expect((await record(start)).name).toBe(expected);
    });

    it.each([
      { kind: 'server' as const, otel: SpanKind.SERVER },
      { kind: 'client' as const, otel: SpanKind.CLIENT },
    ])('records a $kind span as OTel kind $otel', async ({ kind, otel }) => {
      expect((await record({ ...INBOUND, kind })).kind).toBe(otel);
    });

    it("uses Istio's service name <canonical service>.<namespace> for the resource", async () => {
      const span = await record(INBOUND, OK_END, { local: workload({ canonicalService: 'ratings', namespace: 'bookinfo' }) });
      expect(span.resource.attributes['service.name']).toBe('ratings.bookinfo');
    });

    it('never throws into the proxy: a failing header object yields an untraced span and a counted drop', async () => {
      const registry = new Registry();
      const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter: 'none', samplingPercent: 100, registry });
      const hostile = new Proxy({} as HeaderBag, {
        get() {
          throw new Error('boom');
        },
      });
      const span = t.startSpan(hostile, INBOUND);
      expect(span.sampled).toBe(false);
      expect(() => span.end(OK_END)).not.toThrow();
      const dropped = (await registry.getSingleMetric(METRIC_SPANS_DROPPED)!.get()).values.find((v) => v.labels.reason === 'internal_error');
      expect(dropped?.value).toBe(1);
      await t.shutdown();
    });

    it('starts unsampled spans after shutdown', async () => {
      const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter: createRecordingExporter(), samplingPercent: 100 });
      await t.shutdown();
      const span = t.startSpan({}, INBOUND);
      expect(span.sampled).toBe(false);
      expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
    });
  });

  describe('HopSpan.end()', () => {
    it("writes Envoy's tags as strings", async () => {
      const span = await record(
        INBOUND,
        { ...OK_END, upstreamCluster: 'inbound|9080||', upstreamAddress: '10.52.1.7:9080', requestSize: 12, responseSize: 345 },
        {},
        { 'user-agent': 'Go-http-client/1.1', 'x-client-trace-id': 'client-1', 'x-envoy-downstream-service-cluster': 'productpage' },
      );
      expect(span.attributes).toMatchObject({
        component: 'proxy',
        node_id: NODE_ID,
        zone: 'us-east1-b',
        'http.method': 'GET',
        'http.url': 'http://reviews:9080/reviews/0',
        'http.protocol': 'HTTP/1.1',
        'http.status_code': '200',
        'peer.address': '10.52.0.34',
        request_size: '12',
        response_size: '345',
        response_flags: '-',
        upstream_cluster: 'inbound|9080||',
        'upstream_cluster.name': 'inbound|9080||',
        upstream_address: '10.52.1.7:9080',
        user_agent: 'Go-http-client/1.1',
        downstream_cluster: 'productpage',
        'guid:x-client-trace-id': 'client-1',
      });
      expect(String(span.attributes['guid:x-request-id'])[14]).toBe('b');
      expect(span.attributes.error).toBeUndefined();
    });

    it.each([
      { name: 'a 503 with UH', end: { ...OK_END, statusCode: 503, responseFlags: 'UH' }, error: 'true' },
      { name: 'no response at all (code 0, UC)', end: { ...OK_END, statusCode: 0, responseFlags: 'UC' }, error: 'true' },
      { name: 'a 404', end: { ...OK_END, statusCode: 404, responseFlags: 'NR' }, error: undefined },
      { name: 'gRPC status 14 on HTTP 200', end: { ...OK_END, grpcStatus: '14' }, error: 'true' },
      { name: 'gRPC status 0', end: { ...OK_END, grpcStatus: '0' }, error: undefined },
    ])('sets error for $name', async ({ end, error }) => {
      const span = await record(INBOUND, end);
      expect(span.attributes.error).toBe(error);
      expect(span.attributes.response_flags).toBe(end.responseFlags);
      if (end.grpcStatus !== undefined) expect(span.attributes['grpc.status_code']).toBe(end.grpcStatus);
    });

    it('cuts the path of http.url at 256 characters, as Envoy max_path_tag_length', async () => {
      const long = `http://reviews:9080/${'a'.repeat(400)}`;
      const url = String((await record({ ...INBOUND, url: long })).attributes['http.url']);
      expect(url).toBe(long.slice(0, 'http://reviews:9080'.length + 256));
    });

    it("writes Istio's five service tags, with defaults for missing local values", async () => {
      const span = await record(INBOUND, OK_END, { local: workload({ canonicalService: '', canonicalRevision: '', cluster: '', meshId: '', namespace: '' }) });
      expect(span.attributes).toMatchObject({
        'istio.canonical_revision': 'latest',
        'istio.canonical_service': 'unknown',
        'istio.cluster_id': 'unknown',
        'istio.mesh_id': 'unknown',
        'istio.namespace': 'default',
      });
    });

    it('names the MX peer istio.source_* on server spans and leaves out fields the peer did not send', async () => {
      const span = await record(INBOUND, { ...OK_END, peer: reviewsPeer({ cluster: '', version: '' }) });
      expect(span.attributes).toMatchObject({
        'istio.source_workload': 'reviews-v2',
        'istio.source_namespace': 'default',
        'istio.source_canonical_service': 'reviews',
        'istio.source_canonical_revision': 'v2',
        'istio.source_app': 'reviews',
        'istio.source_workload_type': 'deployment',
        'istio.source_instance_name': 'reviews-v2-5b64f47978-abcde',
      });
      expect(span.attributes['istio.source_cluster_id']).toBeUndefined();
      expect(span.attributes['istio.source_app_version']).toBeUndefined();
      expect(Object.keys(span.attributes).some((k) => k.startsWith('istio.destination_'))).toBe(false);
    });

    it('writes no istio.* tag when istioTags is false', async () => {
      const span = await record(INBOUND, { ...OK_END, peer: reviewsPeer() }, { istioTags: false });
      expect(Object.keys(span.attributes).filter((k) => k.startsWith('istio.'))).toEqual([]);
      expect(span.attributes.component).toBe('proxy');
    });

    it('ends a span once; a second end() is ignored', async () => {
      const exporter = createRecordingExporter();
      const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter, samplingPercent: 100 });
      const span = t.startSpan({}, INBOUND);
      span.end(OK_END);
      span.end({ ...OK_END, statusCode: 500 });
      await t.shutdown();
      expect(exporter.spans).toHaveLength(1);
      expect(exporter.spans[0]!.attributes['http.status_code']).toBe('200');
    });

    it('exports nothing for unsampled spans, but they still carry a trace id', async () => {
      const exporter = createRecordingExporter();
      const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter, samplingPercent: 0 });
      const span = t.startSpan({ 'x-request-id': '00000064-1111-4222-8333-444455556666' }, INBOUND);
      span.end(OK_END);
      await t.shutdown();
      expect(span.sampled).toBe(false);
      expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(exporter.spans).toHaveLength(0);
    });
  });
});

describe('createNoopTracing()', () => {
  it('generates x-request-id without a trace mark and touches no trace header', () => {
    const t = createNoopTracing();
    const incoming: HeaderBag = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };
    const span = t.startSpan(incoming, INBOUND);
    const out: HeaderBag = { ...incoming };
    span.inject(out);
    span.end(OK_END);
    expect(span.sampled).toBe(false);
    expect(span.traceId).toBe('');
    expect(String(incoming['x-request-id'])).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    expect(out['x-request-id']).toBe(incoming['x-request-id']);
    expect(out.traceparent).toBe(incoming.traceparent);
  });

  it('keeps an existing x-request-id', () => {
    const headers: HeaderBag = { 'x-request-id': 'my-id' };
    createNoopTracing().startSpan(headers, INBOUND);
    expect(headers['x-request-id']).toBe('my-id');
  });
});

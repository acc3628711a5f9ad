/**
 * OTLP push of the same series the Prometheus scrape shows: a loopback collector (otlp-collector.ts) decodes the
 * OTLP/HTTP protobuf requests and the values are compared with the scrape of the same recorder.
 */
import Fastify from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMeshtelEmbedding, meshtelFastify } from '../../src/embed/index.js';
import type { MeshtelEmbeddingOptions } from '../../src/embed/index.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import type { Sample } from '../../src/stats/exposition-parser.js';
import { METRIC_OTLP_EXPORTS, METRIC_OTLP_POINTS_DROPPED, startOtlpMetricsPush } from '../../src/stats/otlp-push.js';
import { collector, type Point, type Received } from './otlp-collector.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An embedding that served `n` requests (a mix of 200 and 503) through its fastify plugin. */
async function served(n: number, options: Partial<MeshtelEmbeddingOptions> = {}) {
  const mesh = createMeshtelEmbedding({
    metadata: createWorkloadMetadata({ name: 'reviews-v1-abc12', namespace: 'bookinfo', workload: 'reviews-v1', labels: { app: 'reviews', version: 'v1' }, instanceIps: ['127.0.0.1'] }),
    ...options,
  });
  cleanups.push(() => mesh.close());
  const app = Fastify();
  await app.register(meshtelFastify, { embedding: mesh });
  app.get('/r/:i', async (req, reply) => (Number((req.params as { i: string }).i) % 3 === 0 ? reply.code(503).send('no') : 'ok'));
  for (let i = 0; i < n; i++) await app.inject({ method: 'GET', url: `/r/${i}`, headers: { host: 'reviews:9080' } });
  await app.close();
  return mesh;
}

function attrs(p: Point): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of p.attributes ?? []) out[kv.key] = kv.value.string_value ?? '';
  return out;
}

function sameLabels(s: Sample, a: Record<string, string>): boolean {
  const { le: _le, ...labels } = s.labels;
  return Object.keys(labels).length === Object.keys(a).length && Object.entries(labels).every(([k, v]) => a[k] === v);
}

describe('OTLP metrics push', () => {
  it('pushes every istio_* and meshtel_* series with the scrape’s values, cumulative, with start times and timestamps', async () => {
    const c = await collector();
    cleanups.push(() => c.close());
    const mesh = await served(30);
    const scrape = parseExposition(await mesh.metrics());
    const before = BigInt(Date.now() - 1) * 1_000_000n;
    const push = startOtlpMetricsPush({ families: () => mesh.stats.families(), registry: mesh.registry, serviceName: 'reviews.bookinfo', endpoint: c.url, intervalMillis: 600_000 });
    cleanups.push(() => push.shutdown());
    await push.flush();
    expect(c.requests).toHaveLength(1);
    const { resource, metrics } = c.requests[0]!;
    expect(resource['service.name']).toBe('reviews.bookinfo');
    const byName = new Map(metrics.map((m) => [m.name, m]));

    // Counters: one cumulative monotonic point per scraped series, same labels, same value.
    const requests = byName.get('istio_requests_total')!;
    expect(requests.sum?.aggregation_temporality).toBe('AGGREGATION_TEMPORALITY_CUMULATIVE');
    expect(requests.sum?.is_monotonic).toBe(true);
    const scraped = scrape.filter((s) => s.name === 'istio_requests_total');
    expect(scraped.length).toBeGreaterThanOrEqual(2);
    expect(requests.sum!.data_points).toHaveLength(scraped.length);
    for (const p of requests.sum!.data_points) {
      const match = scraped.find((s) => sameLabels(s, attrs(p)));
      expect(match, JSON.stringify(attrs(p))).toBeDefined();
      expect(p.as_double).toBe(match!.value);
      expect(BigInt(p.start_time_unix_nano)).toBeLessThanOrEqual(BigInt(p.time_unix_nano));
      expect(BigInt(p.start_time_unix_nano)).toBeLessThanOrEqual(before);
    }
    expect(requests.sum!.data_points.reduce((a, p) => a + (p.as_double ?? 0), 0)).toBe(30);

    // Classic histogram: Envoy's bounds, per-bucket counts that add up to the scrape's cumulative buckets.
    const duration = byName.get('istio_request_duration_milliseconds')!;
    expect(duration.unit).toBe('ms');
    expect(duration.histogram?.aggregation_temporality).toBe('AGGREGATION_TEMPORALITY_CUMULATIVE');
    for (const p of duration.histogram!.data_points) {
      const a = attrs(p);
      const buckets = scrape.filter((s) => s.name === 'istio_request_duration_milliseconds_bucket' && sameLabels(s, a));
      const bounds = buckets.filter((s) => s.labels.le !== '+Inf').map((s) => Number(s.labels.le));
      expect(p.explicit_bounds).toEqual(bounds);
      let cum = 0;
      const cumulative = (p.bucket_counts ?? []).map((n) => (cum += Number(n)));
      expect(cumulative).toEqual(buckets.map((s) => s.value));
      expect(Number(p.count)).toBe(scrape.find((s) => s.name === 'istio_request_duration_milliseconds_count' && sameLabels(s, a))!.value);
    }

    // meshtel_* from the recorder and from the registry (the push's own counters are there too).
    expect(byName.has('meshtel_metric_overflow_total') || [...byName.keys()].some((n) => n.startsWith('meshtel_'))).toBe(true);
    expect(byName.get(METRIC_OTLP_EXPORTS)?.sum?.data_points.length).toBe(2);
  });

  it('sends native histograms as OTLP exponential histograms with the same schema, count and sum', async () => {
    const c = await collector();
    cleanups.push(() => c.close());
    const mesh = await served(12, { stats: { nativeHistograms: true } });
    const scrape = parseExposition(await mesh.metrics());
    const push = startOtlpMetricsPush({ families: () => mesh.stats.families(), serviceName: 'reviews.bookinfo', endpoint: c.url, intervalMillis: 600_000 });
    cleanups.push(() => push.shutdown());
    await push.flush();
    const m = c.requests[0]!.metrics.find((x) => x.name === 'istio_request_duration_milliseconds')!;
    expect(m.exponential_histogram?.aggregation_temporality).toBe('AGGREGATION_TEMPORALITY_CUMULATIVE');
    for (const p of m.exponential_histogram!.data_points) {
      const a = attrs(p);
      expect(p.scale).toBe(3);
      const inBuckets = (p.positive?.bucket_counts ?? []).reduce((s, n) => s + Number(n), 0) + Number(p.zero_count ?? 0);
      expect(inBuckets).toBe(Number(p.count));
      expect(Number(p.count)).toBe(scrape.find((s) => s.name === 'istio_request_duration_milliseconds_count' && sameLabels(s, a))!.value);
      expect(p.sum ?? 0).toBeCloseTo(scrape.find((s) => s.name === 'istio_request_duration_milliseconds_sum' && sameLabels(s, a))!.value, 6);
    }
  });

  it('splits a push into requests of at most maxPointsPerRequest points, losing none', async () => {
    const c = await collector();
    cleanups.push(() => c.close());
    const mesh = await served(9);
    const push = startOtlpMetricsPush({ families: () => mesh.stats.families(), serviceName: 'r', endpoint: c.url, intervalMillis: 600_000, maxPointsPerRequest: 3 });
    cleanups.push(() => push.shutdown());
    await push.flush();
    const count = (r: Received): number =>
      r.metrics.reduce((a, m) => a + (m.sum ?? m.gauge ?? m.histogram ?? m.exponential_histogram)!.data_points.length, 0);
    expect(c.requests.length).toBeGreaterThan(1);
    for (const r of c.requests) expect(count(r)).toBeLessThanOrEqual(3);
    const all = startOtlpMetricsPush({ families: () => mesh.stats.families(), serviceName: 'r', endpoint: c.url, intervalMillis: 600_000 });
    cleanups.push(() => all.shutdown());
    const n = c.requests.length;
    await all.flush();
    expect(c.requests.slice(0, n).reduce((a, r) => a + count(r), 0)).toBe(count(c.requests[n]!));
  });

  it('counts a failed push (collector answers 400) in meshtel_otlp_metric_exports_total and the dropped points', async () => {
    const c = await collector(400);
    cleanups.push(() => c.close());
    const mesh = await served(3);
    const push = startOtlpMetricsPush({ families: () => mesh.stats.families(), registry: mesh.registry, serviceName: 'r', endpoint: c.url, intervalMillis: 600_000 });
    cleanups.push(() => push.shutdown());
    await push.flush();
    const scrape = parseExposition(await mesh.metrics());
    expect(scrape.find((s) => s.name === METRIC_OTLP_EXPORTS && s.labels.result === 'failed')?.value).toBe(1);
    expect(scrape.find((s) => s.name === METRIC_OTLP_POINTS_DROPPED && s.labels.reason === 'export_failed')?.value).toBeGreaterThan(0);
  });

  it('is started by the embedding option and pushes on its interval', async () => {
    const c = await collector();
    cleanups.push(() => c.close());
    await served(2, { otlpMetrics: { endpoint: c.url, intervalMillis: 200 } });
    await vi.waitFor(() => expect(c.requests.length).toBeGreaterThan(0), { timeout: 5000 });
    expect(c.requests[0]!.resource['service.name']).toBe('reviews.bookinfo');
    expect(c.requests[0]!.metrics.some((m) => m.name === 'istio_requests_total')).toBe(true);
  });

  it('refuses an OTLP transport it does not ship', () => {
    vi.stubEnv('OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', 'grpc');
    try {
      expect(() => startOtlpMetricsPush({ families: () => [], serviceName: 'r' })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

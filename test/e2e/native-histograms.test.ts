/**
 * The protobuf exposition and native histograms through a real Prometheus 2.42 with
 * `--enable-feature=native-histograms` (issue 14). Prometheus then asks every target for protobuf first.
 *
 * - reviews (server, native histograms on) records the load; a second Prometheus without the feature flag scrapes
 *   the same :15090 in OpenMetrics and stores its classic buckets, so both quantiles come from the same observations.
 * - Behind the three merged :15020 endpoints the apps speak protobuf (with a native histogram), text 0.0.4
 *   and OpenMetrics; every target must be up with the app's series stored.
 * - Prometheus 2.42 keeps only the native part of a histogram that has both: reviews' classic `_bucket`
 *   series are absent (the documented reason native histograms are off by default).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import { encodeProtobufFamilies } from '../../src/stats/exposition-protobuf.js';
import { METRIC_TYPE } from '../../src/stats/client-model.js';
import { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE } from '../../src/stats/media-types.js';
import { httpApp, reviewsMesh, send, sidecar, workload } from '../sidecar/helpers.js';
import { hasPrometheus, startPrometheus, waitFor } from './support/prometheus.js';
import type { PrometheusHandle } from './support/prometheus.js';

/** Request delays the load generator asks the app for (ms): 5, 10, …, 200. */
const DELAYS = Array.from({ length: 40 }, (_, i) => (i + 1) * 5);

/** A client_golang-style native histogram of the protobuf app: 2 observations of 1 (key 0) and 1 of 2 (key 8), schema 3. */
const PROTOBUF_APP = encodeProtobufFamilies([
  {
    name: 'app_latency_seconds',
    help: 'App latency.',
    type: METRIC_TYPE.HISTOGRAM,
    metric: [
      {
        label: [],
        histogram: {
          sampleCount: 3,
          sampleSum: 4,
          schema: 3,
          zeroThreshold: 2 ** -128,
          zeroCount: 0,
          positiveSpan: [
            { offset: 0, length: 1 },
            { offset: 7, length: 1 },
          ],
          positiveDelta: [2, -1],
        },
      },
    ],
  },
]);
const TEXT_APP = '# HELP app_jobs_total Jobs.\n# TYPE app_jobs_total counter\napp_jobs_total 9\n';
const OM_APP = '# HELP app_requests Requests.\n# TYPE app_requests counter\napp_requests_total 5 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 1 1700000000.123\n# EOF\n';

async function metricsApp(contentType: string, page: Buffer | string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': contentType });
    res.end(page);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const annotations = (port: number): string => JSON.stringify({ scrape: 'true', path: '/metrics', port: String(port) });

describe.runIf(hasPrometheus())('native histograms and protobuf with a real Prometheus (--enable-feature=native-histograms)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let prom: PrometheusHandle;
  /** A Prometheus without native histograms: classic buckets of the same series. */
  let classicProm: PrometheusHandle;
  let server: Sidecar;
  let client: Sidecar;
  let ratings: Sidecar;
  const value = async (expr: string): Promise<number | undefined> => {
    const r = await prom.query(expr);
    return r.length === 0 ? undefined : Number(r[0]?.value[1]);
  };

  beforeAll(async () => {
    const pbApp = await metricsApp(PROTOBUF_CONTENT_TYPE, PROTOBUF_APP);
    const textApp = await metricsApp(PROMETHEUS_TEXT_CONTENT_TYPE, TEXT_APP);
    const omApp = await metricsApp(OPENMETRICS_CONTENT_TYPE, OM_APP);
    cleanups.push(pbApp.close, textApp.close, omApp.close);
    // The traffic app answers after the delay the request names.
    const app = await httpApp((req, res) => {
      const d = Number(new URL(req.url, 'http://x').searchParams.get('d') ?? 0);
      setTimeout(() => res.end('ok'), d);
    });
    cleanups.push(app.close);
    server = await sidecar({
      metadata: workload('reviews', 'bookinfo-reviews'),
      app: { port: app.port },
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] },
      prometheusAnnotations: annotations(pbApp.port),
      nativeHistograms: true,
    });
    cleanups.push(server.close);
    client = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), mesh: reviewsMesh(server.ports.inbound), prometheusAnnotations: annotations(textApp.port) });
    cleanups.push(client.close);
    ratings = await sidecar({ metadata: workload('ratings', 'bookinfo-ratings'), prometheusAnnotations: annotations(omApp.port) });
    cleanups.push(ratings.close);

    // The load: every delay once, 8 at a time.
    const queue = [...DELAYS];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
          expect((await send(client.ports.outbound, { host: 'reviews:9080', path: `/r?d=${d}` })).status).toBe(200);
        }
      }),
    );

    const target = (port: number, path: string, pod: string): { address: string; path: string; labels: Record<string, string> } => ({
      address: `127.0.0.1:${port}`,
      path,
      labels: { pod, namespace: 'default' },
    });
    prom = await startPrometheus({
      targets: [
        target(server.ports.prometheus, '/stats/prometheus', 'reviews-v1-envoy'),
        target(server.ports.status, '/stats/prometheus', 'reviews-v1'),
        target(client.ports.status, '/stats/prometheus', 'productpage-v1'),
        target(ratings.ports.status, '/stats/prometheus', 'ratings-v1'),
      ],
      ruleFiles: [],
      interval: '1s',
      features: ['native-histograms'],
    });
    cleanups.push(() => prom.close());
    classicProm = await startPrometheus({ targets: [target(server.ports.prometheus, '/stats/prometheus', 'reviews-v1-envoy')], ruleFiles: [], interval: '1s' });
    cleanups.push(() => classicProm.close());
    await waitFor('the classic Prometheus stored the load', async () => (await classicProm.query('sum(istio_request_duration_milliseconds_count{reporter="destination"})'))[0]?.value[1] === String(DELAYS.length), 30_000);
    await waitFor('every target up with the app series stored', async () => {
      const t = await prom.targets();
      return t.length === 4 && t.every((x) => x.health === 'up') && (await value('count(app_jobs_total)')) !== undefined && (await value('count(app_requests_total)')) !== undefined;
    }, 30_000);
  }, 55_000);

  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it('scrapes every target (protobuf :15090, merged :15020 with protobuf, text and OpenMetrics apps) without an error', async () => {
    const t = await prom.targets();
    expect(t.map((x) => [x.health, x.lastError])).toEqual(t.map(() => ['up', '']));
    // The apps' series, whatever format they spoke behind the merged endpoint.
    expect(await value('app_jobs_total')).toBe(9);
    expect(await value('app_requests_total')).toBe(5);
    expect(await value('histogram_count(app_latency_seconds)')).toBe(3);
    expect(await value('histogram_sum(app_latency_seconds)')).toBe(4);
    // Two observations of 1 and one of 2: the median is in the bucket ending at 1.
    const median = await value('histogram_quantile(0.5, app_latency_seconds)');
    expect(median).toBeGreaterThan(2 ** -(1 / 8));
    expect(median).toBeLessThanOrEqual(1);
  });

  it('stores exactly the requests the load sent, per reporter, in the counter, the native and the classic histograms', async () => {
    const n = DELAYS.length;
    const proxy = `pod="reviews-v1-envoy"`;
    expect(await value(`sum(istio_requests_total{${proxy},reporter="destination"})`)).toBe(n);
    expect(await value(`histogram_count(sum(istio_request_duration_milliseconds{${proxy},reporter="destination"}))`)).toBe(n);
    expect(await value(`histogram_count(sum(istio_response_bytes{${proxy},reporter="destination"}))`)).toBe(n);
    // The same sidecar through the merged endpoint: the same native histogram.
    expect(await value(`histogram_count(sum(istio_request_duration_milliseconds{pod="reviews-v1",reporter="destination"}))`)).toBe(n);
    expect(await value(`sum(istio_request_duration_milliseconds_count{pod="productpage-v1",reporter="source"})`)).toBe(n);
    // Prometheus 2.42 keeps only the native part of a histogram that has both.
    expect(await prom.query(`istio_request_duration_milliseconds_bucket{${proxy}}`)).toEqual([]);
    // protobuf `le` values are written as Prometheus formats floats (`5.0`), text ones as written.
    expect((await prom.labelValues('le', `istio_request_duration_milliseconds_bucket{pod="productpage-v1"}`)).includes('5.0')).toBe(true);
  });

  it.each([0.5, 0.9, 0.99])('histogram_quantile(%s) over the native histogram agrees with the classic buckets within the bucket error', async (q) => {
    const series = 'istio_request_duration_milliseconds{pod="reviews-v1-envoy",reporter="destination"}';
    const native = (await value(`histogram_quantile(${q}, sum(${series}))`)) as number;
    const buckets = await classicProm.query(`sum by (le) (istio_request_duration_milliseconds_bucket{reporter="destination"})`);
    const classic = Number((await classicProm.query(`histogram_quantile(${q}, sum by (le) (istio_request_duration_milliseconds_bucket{reporter="destination"}))`))[0]?.value[1]);
    // The q-th observation lies in the first classic bucket whose cumulative count reaches q·n; the classic
    // estimate interpolates inside it, the native one is within one native bucket (2^(1/8), schema 3) of it.
    const cum = buckets.map((b) => [b.metric.le === '+Inf' ? Infinity : Number(b.metric.le), Number(b.value[1])] as const).sort((a, b) => a[0] - b[0]);
    const rank = q * DELAYS.length;
    const i = cum.findIndex(([, c]) => c >= rank);
    const upper = cum[i]?.[0] as number;
    const lower = i > 0 ? (cum[i - 1]?.[0] as number) : 0;
    expect(classic).toBeGreaterThanOrEqual(lower);
    expect(classic).toBeLessThanOrEqual(upper);
    const factor = 2 ** (1 / 8);
    expect(native).toBeGreaterThanOrEqual(lower / factor);
    expect(native).toBeLessThanOrEqual(upper * factor);
  });
});

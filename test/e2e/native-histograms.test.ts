/**
 * The protobuf exposition and native histograms of the demo mesh (src/demo) through a real Prometheus 2.42 with
 * `--enable-feature=native-histograms` (issue 14), which then asks every target for protobuf first:
 *
 * - it scrapes every sidecar's :15090 (proxy only) and its merged :15020, behind which the apps speak all three
 *   formats: reviews-v1 OpenMetrics, reviews-v2 protobuf, reviews-v3 and details text 0.0.4;
 * - a second Prometheus without the feature flag scrapes the same :15090 pages in OpenMetrics and stores their
 *   classic buckets, so both quantiles come from the same observations;
 * - the load is controlled: a few warm-up requests, then exactly K requests through the gateway, and the
 *   increase between two instants, the counter's rate and the native histogram's count rate must equal K.
 *
 * Prometheus 2.42 keeps only the native part of a histogram that has both (no `_bucket` series from a protobuf
 * target: the documented reason native histograms are off by default); 2.45+ keeps both with
 * `scrape_classic_histograms: true`. 2.42 also cannot show native histograms in its UI graph, nor federate them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { startDemo, type Demo } from '../../src/demo/demo.js';
import { REVIEWS_METRICS_FORMAT, REVIEWS_REQUESTS_TOTAL } from '../../src/demo/apps.js';
import { hasPrometheus, startPrometheus, waitFor } from './support/prometheus.js';
import type { PrometheusHandle, ScrapeTarget } from './support/prometheus.js';

/** Warm-up requests (so every series exists before the measured window), then the measured load. */
const WARMUP = 5;
const K = 60;
/** The measured load is sent at this rate (requests/s), so it spans K / RATE seconds. */
const RATE = 6;
/** Seconds of flat samples before the measured load. */
const PRE_LOAD_S = 8;
/** The load generator's view: every request answered (2xx-5xx) counts. */
const GATEWAY = 'reporter="source", source_workload="istio-ingressgateway"';

describe.runIf(hasPrometheus())('the demo mesh with native histograms through a real Prometheus 2.42 (--enable-feature=native-histograms)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let demo: Demo;
  let prom: PrometheusHandle;
  let classicProm: PrometheusHandle;
  /** Seconds since the epoch: before the measured load (after the warm-up was scraped), and after it. */
  let t0 = 0;
  let t1 = 0;
  let answered = 0;
  const scalar = async (p: PrometheusHandle, expr: string, time?: number): Promise<number> => {
    const r = await p.query(expr, time);
    return r.length === 0 ? Number.NaN : Number(r[0]?.value[1]);
  };

  beforeAll(async () => {
    demo = await startDemo({ rate: 0, nativeHistograms: true, reportingIntervalMs: 1000 });
    cleanups.push(() => demo.close());
    const targets: ScrapeTarget[] = [];
    const proxies: ScrapeTarget[] = [];
    for (const w of demo.workloads) {
      if (w.proxyMetricsUrl === undefined) continue;
      const pod = w.nodeId.split('~')[2]?.split('.')[0] ?? w.workload;
      const merged = new URL(w.metricsUrl);
      const proxy = new URL(w.proxyMetricsUrl);
      targets.push({ address: merged.host, path: merged.pathname, labels: { namespace: w.namespace, pod, endpoint: '15020' } });
      proxies.push({ address: proxy.host, path: proxy.pathname, labels: { namespace: w.namespace, pod, endpoint: '15090' } });
    }
    [prom, classicProm] = await Promise.all([
      startPrometheus({ targets: [...targets, ...proxies], ruleFiles: [], interval: '1s', features: ['native-histograms'] }),
      startPrometheus({ targets: proxies, ruleFiles: [], interval: '1s' }),
    ]);
    cleanups.push(() => prom.close(), () => classicProm.close());

    const pool = new Pool(new URL(demo.gatewayUrl).origin, { connections: 4 });
    cleanups.push(() => pool.close());
    const send = async (n: number): Promise<void> => {
      const r = await pool.request({ method: 'GET', path: `/productpage?id=${n % 10}` });
      await r.body.dump();
      answered++;
    };
    const counted = async (p: PrometheusHandle, n: number): Promise<boolean> => (await scalar(p, `sum(istio_requests_total{${GATEWAY}, endpoint="15090"})`)) === n;
    for (let i = 0; i < WARMUP; i++) await send(i);
    await waitFor('the warm-up scraped by both', async () => (await counted(prom, WARMUP)) && (await counted(classicProm, WARMUP)), 30_000);
    // Flat samples before the load, so a rate() window can start inside the series' life (PRE_LOAD_S below).
    await new Promise((r) => setTimeout(r, PRE_LOAD_S * 1000));
    t0 = Date.now() / 1000;
    // The measured load, paced: K requests over K / RATE seconds.
    const start = Date.now();
    const open: Promise<void>[] = [];
    for (let i = 0; i < K; i++) {
      const due = start + (i * 1000) / RATE;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      open.push(send(WARMUP + i));
    }
    await Promise.all(open);
    expect(answered).toBe(WARMUP + K);
    await waitFor('the load scraped by both', async () => (await counted(prom, WARMUP + K)) && (await counted(classicProm, WARMUP + K)), 30_000);
    // Let the app scrapes behind :15020 catch up too.
    await new Promise((r) => setTimeout(r, 2500));
    t1 = Date.now() / 1000;
  }, 80_000);

  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it('scrapes every :15090 and merged :15020 in protobuf without an error, the apps behind :15020 in all three formats', async () => {
    const t = await prom.targets();
    expect(t.length).toBe(2 * (demo.workloads.length - 1));
    expect(t.map((x) => [x.scrapeUrl, x.health, x.lastError])).toEqual(t.map((x) => [x.scrapeUrl, 'up', '']));
    // Each reviews version's own counter (OpenMetrics, protobuf, text) equals what its sidecar recorded as destination.
    expect(Object.keys(REVIEWS_METRICS_FORMAT).sort()).toEqual(['v1', 'v2', 'v3']);
    for (const v of Object.keys(REVIEWS_METRICS_FORMAT)) {
      const app = await scalar(prom, `sum(${REVIEWS_REQUESTS_TOTAL}{pod=~"reviews-${v}-.*", endpoint="15020"})`, t1);
      const proxy = await scalar(prom, `sum(istio_requests_total{reporter="destination", destination_workload="reviews-${v}", endpoint="15090"})`, t1);
      expect({ v, app }).toEqual({ v, app: proxy });
    }
    expect(await scalar(prom, 'sum(bookinfo_details_lookups_total{endpoint="15020"})', t1)).toBeGreaterThan(0);
    expect(await prom.query('istio_agent_scrape_failures_total > 0')).toEqual([]);
  });

  it('stores exactly the K requests of the measured window: the increase between two instants, rate() and the native histogram agree', async () => {
    const sel = `${GATEWAY}, endpoint="15090"`;
    // The increase, exactly: the counter's value after the load minus its value before it.
    expect(await scalar(prom, `sum(istio_requests_total{${sel}} @ ${t1}) - sum(istio_requests_total{${sel}} @ ${t0})`)).toBe(K);
    expect(await scalar(prom, `histogram_count(sum(istio_request_duration_milliseconds{${sel}} @ ${t1})) - histogram_count(sum(istio_request_duration_milliseconds{${sel}} @ ${t0}))`)).toBe(K);
    expect(await scalar(classicProm, `sum(istio_request_duration_milliseconds_count{${sel}} @ ${t1}) - sum(istio_request_duration_milliseconds_count{${sel}} @ ${t0})`)).toBe(K);
    // rate() over a window holding the whole load and starting inside the series' life (a window reaching back
    // before a series' first sample is extrapolated differently for counters and native histograms): the rate
    // that makes K requests in it. rate() extrapolates the first-to-last sample increase to the window's edges
    // (by up to 1.1 average scrape intervals each side, 1 s here, stretched to 2 s on a loaded machine), so
    // rate × window is K times at most window / (window - 4.4).
    const window = Math.ceil(t1 - t0) + PRE_LOAD_S - 2;
    const bound = K * (window / (window - 4.4));
    const counterRate = await scalar(prom, `sum(rate(istio_requests_total{${sel}}[${window}s]))`, t1);
    expect(counterRate * window).toBeGreaterThanOrEqual(K);
    expect(counterRate * window).toBeLessThanOrEqual(bound);
    // The native histogram's count rate is the counter's rate: same requests, same scrapes.
    const nativeRate = await scalar(prom, `histogram_count(sum(rate(istio_request_duration_milliseconds{${sel}}[${window}s])))`, t1);
    expect(nativeRate).toBeCloseTo(counterRate, 9);
    const classicRate = await scalar(classicProm, `sum(rate(istio_request_duration_milliseconds_count{${sel}}[${window}s]))`, t1);
    expect(classicRate * window).toBeGreaterThanOrEqual(K);
    expect(classicRate * window).toBeLessThanOrEqual(bound);
  });

  it('serves the same native histogram on the merged :15020 as on :15090', async () => {
    for (const w of ['reviews-v1', 'details-v1', 'istio-ingressgateway']) {
      const of = (endpoint: string): string => `histogram_count(sum(istio_request_duration_milliseconds{pod=~"${w}-.*", endpoint="${endpoint}"}))`;
      const proxy = await scalar(prom, of('15090'), t1);
      expect(proxy).toBeGreaterThan(0);
      expect({ w, merged: await scalar(prom, of('15020'), t1) }).toEqual({ w, merged: proxy });
    }
    // Prometheus 2.42 keeps only the native part of a histogram that has both.
    expect(await prom.query('istio_request_duration_milliseconds_bucket{endpoint="15090"}', t1)).toEqual([]);
    expect((await classicProm.query(`istio_request_duration_milliseconds_bucket{${GATEWAY}}`, t1)).length).toBeGreaterThan(0);
  });

  it.each([0.5, 0.9, 0.99])('histogram_quantile(%s) over the native histogram agrees with the classic buckets within the bucket error', async (q) => {
    const sel = `${GATEWAY}, endpoint="15090"`;
    const native = await scalar(prom, `histogram_quantile(${q}, sum(istio_request_duration_milliseconds{${sel}}))`, t1);
    const classic = await scalar(classicProm, `histogram_quantile(${q}, sum by (le) (istio_request_duration_milliseconds_bucket{${sel}}))`, t1);
    const buckets = await classicProm.query(`sum by (le) (istio_request_duration_milliseconds_bucket{${sel}})`, t1);
    // The q-th observation lies in the first classic bucket whose cumulative count reaches q·n; the classic
    // estimate interpolates inside it, the native one is within one native bucket (2^(1/8), schema 3) of it.
    const cum = buckets.map((b) => [b.metric.le === '+Inf' ? Infinity : Number(b.metric.le), Number(b.value[1])] as const).sort((a, b) => a[0] - b[0]);
    const n = cum[cum.length - 1]?.[1] as number;
    expect(n).toBe(WARMUP + K);
    const i = cum.findIndex(([, c]) => c >= q * n);
    const upper = cum[i]?.[0] as number;
    const lower = i > 0 ? (cum[i - 1]?.[0] as number) : 0;
    expect(classic).toBeGreaterThanOrEqual(lower);
    expect(classic).toBeLessThanOrEqual(upper);
    const factor = 2 ** (1 / 8);
    expect(native).toBeGreaterThanOrEqual(lower / factor);
    expect(native).toBeLessThanOrEqual(upper * factor);
  });
});

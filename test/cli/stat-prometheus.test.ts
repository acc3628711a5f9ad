import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasPrometheusBinary, startPrometheus } from '../../src/demo/prometheus.js';
import type { PrometheusProcess } from '../../src/demo/prometheus.js';
import { findFreePorts } from '../../src/demo/ports.js';
import type { StatRow } from '../../src/stats/golden-signals.js';
import { runMeshtel } from './support.js';

const available = hasPrometheusBinary();
if (!available && process.env.CI === 'true') throw new Error('prometheus is not on PATH; CI must install it (apt-get install prometheus)');

/**
 * A target whose counters grow by a fixed mix per scrape: of every 100 requests 10 are 503, and the
 * latency buckets hold 40 ≤ 5 ms, 50 in (5,10], 10 in (10,25]. Whatever rate() extrapolates, the ratios
 * stay exact: success 0.9, p50 = 5 + 5·(50−40)/50 = 6 ms, p99 = 10 + 15·(99−90)/10 = 23.5 ms.
 */
function body(n: number): string {
  const l = (code: string) =>
    `reporter="destination",source_workload="productpage-v1",source_workload_namespace="bookinfo",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_service_name="reviews",destination_service_namespace="bookinfo",response_code="${code}"`;
  return [
    '# TYPE istio_requests_total counter',
    `istio_requests_total{${l('200')}} ${90 * n}`,
    `istio_requests_total{${l('503')}} ${10 * n}`,
    '# TYPE istio_request_duration_milliseconds histogram',
    `istio_request_duration_milliseconds_bucket{${l('200')},le="5"} ${40 * n}`,
    `istio_request_duration_milliseconds_bucket{${l('200')},le="10"} ${90 * n}`,
    `istio_request_duration_milliseconds_bucket{${l('200')},le="25"} ${100 * n}`,
    `istio_request_duration_milliseconds_bucket{${l('200')},le="+Inf"} ${100 * n}`,
    `istio_request_duration_milliseconds_sum{${l('200')}} ${700 * n}`,
    `istio_request_duration_milliseconds_count{${l('200')}} ${100 * n}`,
    '',
  ].join('\n');
}

describe.skipIf(!available)('meshtel stat --prometheus (real Prometheus)', () => {
  let scrapes = 0;
  const target = createServer((_req, res) => {
    scrapes++;
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(body(scrapes));
  });
  let prom: PrometheusProcess;

  beforeAll(async () => {
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const [port] = await findFreePorts(1);
    const config = `global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: t\n  static_configs: [{targets: ['127.0.0.1:${(target.address() as AddressInfo).port}']}]\n`;
    prom = startPrometheus(config, port as number);
    // Wait for four scrapes so a 10s rate() window has enough samples.
    const deadline = Date.now() + 30_000;
    while (scrapes < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 500));
  }, 40_000);
  afterAll(async () => {
    await prom?.close();
    await new Promise<void>((r) => target.close(() => r()));
  });

  it('computes success rate and latency quantiles with PromQL', async () => {
    const run = await runMeshtel(['stat', 'workload', '--prometheus', prom.url, '--window', '10s', '-o', 'json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const row = (JSON.parse(run.stdout) as StatRow[]).find((r) => r.name === 'reviews-v2');
    expect(row?.successRate).toBeCloseTo(0.9, 9);
    expect(row?.p50).toBeCloseTo(6, 9);
    expect(row?.p99).toBeCloseTo(23.5, 9);
    expect(row?.rps).toBeGreaterThan(0);
  });

  it('fails with MESHTEL_ERR_SCRAPE when the server is not Prometheus', async () => {
    const run = await runMeshtel(['stat', '--prometheus', `http://127.0.0.1:${(target.address() as AddressInfo).port}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('MESHTEL_ERR_SCRAPE');
  });
});

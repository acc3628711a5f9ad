/**
 * The merged :15020 page through a real Prometheus 2.42 (issue 11.9): one sidecar whose app answers
 * OpenMetrics whatever it is asked, one whose app answers text. Prometheus asks for OpenMetrics first, so
 * the first sidecar's page used to mix an OpenMetrics app with text agent and proxy parts, and Prometheus
 * rejected it. Both targets must be up, with the app's, the agent's and the proxy's series stored.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import { send, sidecar, workload } from '../sidecar/helpers.js';
import { hasPrometheus, startPrometheus, waitFor } from './support/prometheus.js';
import type { PrometheusHandle } from './support/prometheus.js';

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const OM_PAGE = [
  '# HELP app_requests Requests served by the app.',
  '# TYPE app_requests counter',
  'app_requests_total{path="/"} 5 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 1 1700000000.123',
  'app_requests_created{path="/"} 1700000000',
  '# TYPE app_latency_seconds histogram',
  '# UNIT app_latency_seconds seconds',
  'app_latency_seconds_bucket{le="0.1"} 3',
  'app_latency_seconds_bucket{le="+Inf"} 5',
  'app_latency_seconds_sum 0.9',
  'app_latency_seconds_count 5',
  '# TYPE app_build info',
  'app_build_info{version="1.2.3"} 1',
  '# EOF',
  '',
].join('\n');
const TEXT_PAGE = '# HELP app_jobs_total Jobs.\n# TYPE app_jobs_total counter\napp_jobs_total 9\n# TYPE app_queue gauge\napp_queue 2\n';

async function app(contentType: string, page: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': contentType });
      res.end(page);
    } else res.end('ok');
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

describe.runIf(hasPrometheus())('merged :15020 scrape with a real Prometheus', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let prom: PrometheusHandle;
  let omSidecar: Sidecar;
  let textSidecar: Sidecar;

  beforeAll(async () => {
    const omApp = await app(OPENMETRICS, OM_PAGE);
    cleanups.push(omApp.close);
    const textApp = await app('text/plain; version=0.0.4; charset=utf-8', TEXT_PAGE);
    cleanups.push(textApp.close);
    const annotations = (port: number): string => JSON.stringify({ scrape: 'true', path: '/metrics', port: String(port) });
    omSidecar = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: omApp.port }, prometheusAnnotations: annotations(omApp.port) });
    cleanups.push(omSidecar.close);
    textSidecar = await sidecar({ metadata: workload('ratings', 'bookinfo-ratings'), app: { port: textApp.port }, prometheusAnnotations: annotations(textApp.port) });
    cleanups.push(textSidecar.close);
    // One request through each inbound, so the proxy part carries istio_requests_total.
    expect((await send(omSidecar.ports.inbound)).status).toBe(200);
    expect((await send(textSidecar.ports.inbound)).status).toBe(200);
    prom = await startPrometheus({
      targets: [
        { address: `127.0.0.1:${omSidecar.ports.status}`, path: '/stats/prometheus', labels: { pod: 'reviews-v1', namespace: 'default' } },
        { address: `127.0.0.1:${textSidecar.ports.status}`, path: '/stats/prometheus', labels: { pod: 'ratings-v1', namespace: 'default' } },
      ],
      ruleFiles: [],
      interval: '1s',
    });
    cleanups.push(() => prom.close());
  });

  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it('keeps both targets up and stores the app, agent and proxy series of each', async () => {
    await waitFor('two healthy targets', async () => {
      const t = await prom.targets();
      return t.length === 2 && t.every((x) => x.health === 'up');
    }, 30_000);
    const targets = await prom.targets();
    expect(targets.map((t) => t.lastError)).toEqual(['', '']);
    const has = async (expr: string): Promise<number> => {
      let n = 0;
      await waitFor(expr, async () => (n = (await prom.query(expr)).length) > 0, 15_000);
      return n;
    };
    // OpenMetrics app behind reviews.
    expect(await has('app_requests_total{pod="reviews-v1",path="/"} == 5')).toBe(1);
    expect(await has('app_latency_seconds_bucket{pod="reviews-v1",le="+Inf"} == 5')).toBe(1);
    expect(await has('app_build_info{pod="reviews-v1",version="1.2.3"}')).toBe(1);
    expect(await has('istio_agent_scrapes_total{pod="reviews-v1"}')).toBe(1);
    expect(await has('istio_requests_total{pod="reviews-v1",reporter="destination",response_code="200"} == 1')).toBe(1);
    expect(await has('istio_build{pod="reviews-v1",component="proxy"}')).toBe(1);
    // Text app behind ratings, re-rendered in OpenMetrics for the same Prometheus.
    expect(await has('app_jobs_total{pod="ratings-v1"} == 9')).toBe(1);
    expect(await has('app_queue{pod="ratings-v1"} == 2')).toBe(1);
    expect(await has('istio_agent_scrapes_total{pod="ratings-v1"}')).toBe(1);
    expect(await has('istio_requests_total{pod="ratings-v1",reporter="destination"} == 1')).toBe(1);
    // Nothing was left out or failed on either side.
    expect(await prom.query('istio_agent_scrape_failures_total > 0')).toEqual([]);
    expect(await prom.query('meshtel_app_scrape_rejected_total > 0')).toEqual([]);
  });
});

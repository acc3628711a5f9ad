/**
 * A real `meshtel sidecar` process pushing its series over OTLP (issue 14): OTEL_METRICS_EXPORTER=otlp and
 * OTEL_EXPORTER_OTLP_METRICS_ENDPOINT point it at a loopback collector, N requests go through its inbound
 * listener, and when it stops, its last push carries exactly N in istio_requests_total, the same series and
 * values as its :15090 scrape, cumulative and with start times. The interval is far longer than the test, so
 * what arrives is the push at shutdown: it must run after the last request was recorded and before the
 * recorder closes.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import { MAIN } from '../cli/support.js';
import { REPO_ROOT } from '../support/fixtures.js';
import { collector, type Point } from '../stats/otlp-collector.js';
import { startSidecar } from '../../src/sidecar/sidecar.js';
import { inboundFromGateway } from '../stats/fixtures.js';

function get(port: number, p: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

const attrs = (p: Point): Record<string, string> => Object.fromEntries((p.attributes ?? []).map((a) => [a.key, a.value.string_value ?? '']));

describe('meshtel sidecar with OTEL_METRICS_EXPORTER=otlp', () => {
  let app: http.Server;
  let sidecar: ChildProcess;
  let otlp: Awaited<ReturnType<typeof collector>>;
  let ports: { inbound: number; prometheus: number; health: number };
  let stderr = '';

  beforeAll(async () => {
    otlp = await collector();
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const zero = ['--inbound-port', '0', '--outbound-port', '0', '--prometheus-port', '0', '--status-port', '0', '--health-port', '0', '--admin-port', '0'];
    sidecar = spawn(process.execPath, ['--import', 'tsx', MAIN, 'sidecar', '--app-port', String(appPort), '--bind', '127.0.0.1', ...zero], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        POD_NAME: 'reviews-v1-abc',
        POD_NAMESPACE: 'default',
        SERVICE_ACCOUNT: 'reviews',
        MESHTEL_LOG_LEVEL: 'info',
        OTEL_METRICS_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${otlp.url}/v1/metrics`,
        // Only the push at shutdown falls inside the test.
        OTEL_METRIC_EXPORT_INTERVAL: '3600000',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    ports = await new Promise((resolve, reject) => {
      sidecar.stderr!.setEncoding('utf8');
      sidecar.stderr!.on('data', (c: string) => {
        stderr += c;
        // One JSON line per event on stderr; the ready line names the bound ports.
        for (const line of stderr.split('\n')) if (line.includes('"sidecar ready"')) resolve((JSON.parse(line) as { ports: { inbound: number; prometheus: number; health: number } }).ports);
      });
      sidecar.once('exit', (code) => reject(new Error(`sidecar exited with ${code}: ${stderr}`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (sidecar && sidecar.exitCode === null) sidecar.kill('SIGKILL');
    await new Promise((r) => app?.close(r));
    await otlp?.close();
  });

  it('pushes, when stopped, exactly the N requests it served, the same series as its scrape, cumulative with start times', async () => {
    const N = 25;
    const started = BigInt(Date.now() - 1000) * 1_000_000n;
    for (let i = 0; i < N; i++) expect((await get(ports.inbound, `/r/${i}`, { host: 'reviews:9080' })).status).toBe(200);
    const scrape = parseExposition((await get(ports.prometheus, '/stats/prometheus')).body);
    const scraped = scrape.filter((s) => s.name === 'istio_requests_total');
    expect(scraped.reduce((a, s) => a + s.value, 0)).toBe(N);
    expect(otlp.requests).toHaveLength(0);

    const exited = new Promise<number | null>((r) => sidecar.once('exit', r));
    sidecar.kill('SIGTERM');
    expect(await exited).toBe(0);

    const requests = otlp.requests.flatMap((r) => r.metrics).filter((m) => m.name === 'istio_requests_total');
    expect(requests.length).toBeGreaterThan(0);
    const points = requests.flatMap((m) => m.sum?.data_points ?? []);
    expect(requests.every((m) => m.sum?.aggregation_temporality === 'AGGREGATION_TEMPORALITY_CUMULATIVE' && m.sum.is_monotonic)).toBe(true);
    expect(points.reduce((a, p) => a + (p.as_double ?? 0), 0)).toBe(N);
    // The same series as the scrape, value for value.
    expect(points).toHaveLength(scraped.length);
    for (const p of points) {
      const a = attrs(p);
      const match = scraped.find((s) => Object.keys(s.labels).length === Object.keys(a).length && Object.entries(s.labels).every(([k, v]) => a[k] === v));
      expect(match, JSON.stringify(a)).toBeDefined();
      expect(p.as_double).toBe(match?.value);
      expect(BigInt(p.start_time_unix_nano)).toBeGreaterThan(0n);
      expect(BigInt(p.start_time_unix_nano)).toBeLessThanOrEqual(BigInt(p.time_unix_nano));
      expect(BigInt(p.time_unix_nano)).toBeGreaterThan(started);
    }
    // The histograms went too, with the same count.
    const duration = otlp.requests.flatMap((r) => r.metrics).find((m) => m.name === 'istio_request_duration_milliseconds');
    expect(duration?.histogram?.data_points.reduce((a, p) => a + Number(p.count), 0)).toBe(N);
    // service.name: Istio's `<canonical service>.<namespace>`; the pod has no app label, so its name.
    expect(otlp.requests.map((r) => r.resource['service.name'])).toEqual(otlp.requests.map(() => 'reviews-v1-abc.default'));
  }, 60_000);
});

describe('Sidecar.close() and beforeTelemetryClose (where the final OTLP push runs)', () => {
  it('runs after the listeners stopped taking requests and before the recorder closed, so what it reads is final and complete', async () => {
    const app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    let listening: boolean | undefined;
    let recordedInHook: number | undefined;
    const zero = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 };
    const s = await startSidecar({
      bindAddress: '127.0.0.1',
      ports: zero,
      app: { host: '127.0.0.1', port: (app.address() as AddressInfo).port },
      metadata: (await import('../../src/metadata/workload.js')).createWorkloadMetadata({ name: 'reviews-v1-abc', namespace: 'default', labels: { app: 'reviews' } }),
      beforeTelemetryClose: async () => {
        listening = await get(s.ports.inbound, '/').then(
          () => true,
          () => false,
        );
        // A record made now still counts: the recorder is open (a closed one ignores records).
        s.stats.recordHttp(inboundFromGateway());
        recordedInHook = (s.stats.families?.() ?? []).flatMap((f) => (f.name === 'istio_requests_total' ? [...f.series.values()] : [])).reduce((a, x) => a + (x as { value: number }).value, 0);
      },
    });
    expect((await get(s.ports.inbound, '/x', { host: 'reviews:9080' })).status).toBe(200);
    await s.close();
    await new Promise((r) => app.close(r));
    expect(listening).toBe(false);
    expect(recordedInHook).toBe(2);
  }, 30_000);
});

/**
 * `meshtel sidecar --concurrency 2`: two worker processes share the listeners and one scrape reports exact totals
 * over both (issue 16): N requests in are N in istio_requests_total, whichever worker took each.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import type { ParsedFamily } from '../../src/stats/exposition-parser.js';
import { mergeFamilies } from '../../src/sidecar/workers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function get(port: number, p: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // agent: false: a new connection per request, so the primary hands them to both workers.
    const req = http.get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('mergeFamilies()', () => {
  const page = (v: number, start: number): ParsedFamily[] => [
    { name: 'istio_requests_total', type: 'counter', help: 'h', unit: undefined, samples: [{ name: 'istio_requests_total', labels: { a: '1' }, value: v }] },
    { name: 'process_start_time_seconds', type: 'gauge', help: 'h', unit: undefined, samples: [{ name: 'process_start_time_seconds', labels: {}, value: start }] },
  ];
  it('sums a series found in several pages, keeps one-process gauges as the earliest start', () => {
    const merged = mergeFamilies([page(3, 100), page(4, 90), [{ name: 'istio_requests_total', type: 'counter', help: 'h', unit: undefined, samples: [{ name: 'istio_requests_total', labels: { a: '2' }, value: 1 }] }]]);
    expect(merged.map((f) => f.name)).toEqual(['istio_requests_total', 'process_start_time_seconds']);
    expect(merged[0]!.samples.map((s) => [s.labels.a, s.value])).toEqual([
      ['1', 7],
      ['2', 1],
    ]);
    expect(merged[1]!.samples[0]!.value).toBe(90);
  });
});

describe('meshtel sidecar --concurrency 2', () => {
  let app: http.Server;
  let sidecar: ChildProcess;
  let ports: { inbound: number; prometheus: number; health: number };

  beforeAll(async () => {
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const zero = ['--inbound-port', '0', '--outbound-port', '0', '--prometheus-port', '0', '--status-port', '0', '--health-port', '0', '--admin-port', '0'];
    sidecar = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'sidecar', '--concurrency', '2', '--app-port', String(appPort), '--bind', '127.0.0.1', ...zero], {
      cwd: root,
      env: { ...process.env, POD_NAME: 'reviews-v1-abc', POD_NAMESPACE: 'default', SERVICE_ACCOUNT: 'reviews' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    ports = await new Promise((resolve, reject) => {
      let out = '';
      sidecar.stderr!.setEncoding('utf8');
      sidecar.stderr!.on('data', (c: string) => {
        out += c;
        // The logger writes one JSON line per event on stderr; the primary's ready line names the workers.
        for (const line of out.split('\n')) {
          if (!line.includes('"workers":2')) continue;
          resolve((JSON.parse(line) as { ports: { inbound: number; prometheus: number; health: number } }).ports);
        }
      });
      sidecar.once('exit', (code) => reject(new Error(`sidecar exited with ${code}: ${out}`)));
    });
  }, 90_000);

  afterAll(async () => {
    if (sidecar && sidecar.exitCode === null) {
      const exited = new Promise((r) => sidecar.once('exit', r));
      sidecar.kill('SIGTERM');
      await exited;
    }
    await new Promise((r) => app?.close(r));
  }, 30_000);

  it('counts every request once in one merged scrape, over both workers', async () => {
    expect((await get(ports.health, '/healthz/ready')).status).toBe(200);
    const N = 40;
    for (let i = 0; i < N; i++) expect((await get(ports.inbound, `/r/${i}`, { host: 'reviews:9080' })).status).toBe(200);
    const page = await get(ports.prometheus, '/stats/prometheus');
    expect(page.status).toBe(200);
    const samples = parseExposition(page.body);
    const total = samples.filter((s) => s.name === 'istio_requests_total' && s.labels.reporter === 'destination').reduce((n, s) => n + s.value, 0);
    expect(total).toBe(N);
    const count = samples.filter((s) => s.name === 'istio_request_duration_milliseconds_count').reduce((n, s) => n + s.value, 0);
    expect(count).toBe(N);
    expect(samples.find((s) => s.name === 'meshtel_proxy_workers')?.value).toBe(2);
    // One HELP/TYPE per family on the merged page.
    expect(page.body.match(/^# TYPE istio_requests_total /gm)).toHaveLength(1);
  }, 60_000);
});

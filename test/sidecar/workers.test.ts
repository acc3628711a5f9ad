/**
 * `meshtel sidecar --concurrency 2`: two worker processes share the listeners and one scrape reports exact totals
 * over both (issue 16): N requests in are N in istio_requests_total, whichever worker took each, in every format
 * the scrape negotiates (with native histograms on: N in the native buckets of the protobuf page too, issue 14.3),
 * and on the admin /stats.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, parseExpositionFamilies } from '../../src/stats/exposition-parser.js';
import type { Sample } from '../../src/stats/exposition-parser.js';
import { decodeProtobufPage, protobufToParsed } from '../../src/stats/exposition-protobuf.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function getRaw(port: number, p: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: Buffer; type: string }> {
  return new Promise((resolve, reject) => {
    // agent: false: a new connection per request, so the primary hands them to both workers.
    const req = http.get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
  });
}

async function get(port: number, p: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  const r = await getRaw(port, p, headers);
  return { status: r.status, body: r.body.toString('utf8') };
}

const OPENMETRICS = 'application/openmetrics-text;version=1.0.0';
const PROTOBUF = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

/** The samples of a page in any of the three formats. */
function samplesOf(body: Buffer, accept: string): Sample[] {
  if (accept === PROTOBUF) {
    const page = decodeProtobufPage(body);
    if (!page.ok) throw new Error(page.reason);
    return protobufToParsed(page.families).flatMap((f) => f.samples);
  }
  const parsed = parseExpositionFamilies(body.toString('utf8'), accept === OPENMETRICS ? 'openmetrics' : 'text');
  if (!parsed.ok) throw new Error(`line ${parsed.line}: ${parsed.reason}`);
  return parsed.families.flatMap((f) => f.samples);
}

describe('meshtel sidecar --concurrency 2', () => {
  let app: http.Server;
  let sidecar: ChildProcess;
  let ports: { inbound: number; prometheus: number; status: number; health: number; admin: number };

  beforeAll(async () => {
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const zero = ['--inbound-port', '0', '--outbound-port', '0', '--prometheus-port', '0', '--status-port', '0', '--health-port', '0', '--admin-port', '0'];
    sidecar = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'sidecar', '--concurrency', '2', '--native-histograms', '--app-port', String(appPort), '--bind', '127.0.0.1', ...zero], {
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
          resolve((JSON.parse(line) as { ports: typeof ports }).ports);
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

  it('counts every request once in one merged scrape, over both workers, in every format', async () => {
    expect((await get(ports.health, '/healthz/ready')).status).toBe(200);
    const N = 40;
    for (let i = 0; i < N; i++) expect((await get(ports.inbound, `/r/${i}`, { host: 'reviews:9080' })).status).toBe(200);
    for (const [port, accept] of [
      [ports.prometheus, 'text/plain'],
      [ports.prometheus, OPENMETRICS],
      [ports.prometheus, PROTOBUF],
      [ports.status, 'text/plain'],
      [ports.status, OPENMETRICS],
      [ports.status, PROTOBUF],
    ] as const) {
      const page = await getRaw(port, '/stats/prometheus', { accept });
      expect(page.status).toBe(200);
      const samples = samplesOf(page.body, accept);
      const sum = (name: string): number => samples.filter((s) => s.name === name && s.labels.reporter === 'destination').reduce((n, s) => n + s.value, 0);
      expect(sum('istio_requests_total'), `${port} ${accept}`).toBe(N);
      expect(sum('istio_request_duration_milliseconds_count'), `${port} ${accept}`).toBe(N);
      const inf = samples.filter((s) => s.name === 'istio_request_duration_milliseconds_bucket' && s.labels.le === '+Inf').reduce((n, s) => n + s.value, 0);
      expect(inf, `${port} ${accept}`).toBe(N);
      if (accept === PROTOBUF) {
        // The native buckets came across from both workers too: zero bucket plus buckets hold all N.
        const decoded = decodeProtobufPage(page.body);
        if (!decoded.ok) throw new Error(decoded.reason);
        const fam = decoded.families.find((f) => f.name === 'istio_request_duration_milliseconds');
        const dest = (fam?.metric ?? []).filter((m) => m.label.some((l) => l.name === 'reporter' && l.value === 'destination'));
        let native = 0;
        for (const m of dest) {
          const h = m.histogram;
          expect(h?.schema, `${port}`).toBe(3);
          let c = 0;
          for (const d of h?.positiveDelta ?? []) native += (c += d);
          native += h?.zeroCount ?? 0;
        }
        expect(native, `${port} native`).toBe(N);
      }
      expect(samples.find((s) => s.name === 'meshtel_proxy_workers')?.value).toBe(2);
      // One process's facts are not added up: one build, the earliest start.
      expect(samples.filter((s) => s.name === 'istio_build').map((s) => s.value)).toEqual([1]);
    }
    const text = (await get(ports.prometheus, '/stats/prometheus')).body;
    // One HELP/TYPE per family on the merged page.
    expect(text.match(/^# TYPE istio_requests_total /gm)).toHaveLength(1);
    expect(parseExposition(text).filter((s) => s.name === 'process_start_time_seconds')).toHaveLength(1);
  }, 60_000);

  it('reports the admin /stats over both workers', async () => {
    const before = await get(ports.admin, '/stats');
    const total = (body: string): number =>
      body
        .split('\n')
        .filter((l) => l.startsWith('istiocustom.istio_requests_total.reporter.destination.'))
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(': ') + 2)), 0);
    const M = 10;
    for (let i = 0; i < M; i++) expect((await get(ports.inbound, `/s/${i}`, { host: 'reviews:9080' })).status).toBe(200);
    const after = await get(ports.admin, '/stats');
    expect(after.status).toBe(200);
    expect(total(after.body) - total(before.body)).toBe(M);
    expect(after.body).toMatch(/^meshtel_proxy_workers: 2$/m);
  }, 60_000);
});

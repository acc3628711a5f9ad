/**
 * The sidecar under load, every figure a same-run ratio (STYLE.md §14):
 * 1. Throughput through one inbound sidecar with telemetry on (MX decode via the peer cache, stats,
 *    MX answer headers) against the same sidecar with telemetry off (goal ≥ 0.90), and against
 *    @fastify/http-proxy in front of the same app (goal ≥ 1.0). autocannon, 16 connections, 1 KB body.
 * 1b. The upstream client choice: a bare node:http Agent proxy against a bare undici Pool proxy.
 * 2. At a fixed 1000 rps (Istio's perf setup): added p50/p99 of client → sidecar → sidecar → app
 *    against client → app, and CPU seconds and peak RSS of the two sidecars per 1000 requests.
 *
 * The app and each proxy run in their own child process (roles below), autocannon in this one, so
 * a proxy's CPU is measured alone with process.cpuUsage(). The machine has 2 cores shared by the
 * load generator, the proxy and the app: absolute numbers are low, the ratios are what to read.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  non2xx: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const CONNECTIONS = 16;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BODY = 'x'.repeat(1024);

// --- child roles ------------------------------------------------------------------------------

interface ChildReady {
  readonly port: number;
}
interface ChildUsage {
  readonly cpuMicros: number;
  readonly maxRssKb: number;
}

async function runRole(role: string, arg: string | undefined): Promise<void> {
  const send = (msg: unknown): void => {
    process.send?.(msg);
  };
  let port = 0;
  if (role === 'app') {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
      res.end(BODY);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  } else if (role === 'sidecar-on' || role === 'sidecar-off' || role === 'pair') {
    const { startSidecar } = await import('../src/sidecar/sidecar.js');
    const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
    const ports = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 };
    const meta = (name: string) =>
      createWorkloadMetadata({ name: `${name}-v1-abc`, namespace: 'default', workload: `${name}-v1`, labels: { app: name, version: 'v1' }, serviceAccount: name, instanceIps: ['10.0.0.1'] });
    const server = await startSidecar({ env: {}, bindAddress: '127.0.0.1', ports, metadata: meta('reviews'), app: { port: Number(arg) }, telemetry: role !== 'sidecar-off' });
    port = server.ports.inbound;
    if (role === 'pair') {
      const client = await startSidecar({
        env: {},
        bindAddress: '127.0.0.1',
        ports,
        metadata: meta('productpage'),
        mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: server.ports.inbound } }] }] },
      });
      port = client.ports.outbound;
    }
  } else if (role === 'fastify-proxy') {
    const { default: Fastify } = await import('fastify');
    const { default: proxy } = await import('@fastify/http-proxy');
    const app = Fastify({ logger: false });
    await app.register(proxy, { upstream: `http://127.0.0.1:${arg}` });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  } else if (role === 'bare-node-http' || role === 'bare-undici') {
    // The two upstream clients the sidecar could use, each in a minimal pass-through proxy without any
    // telemetry, to justify the choice in src/sidecar/upstream.ts with a measurement.
    const target = Number(arg);
    let handler: http.RequestListener;
    if (role === 'bare-node-http') {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, scheduling: 'lifo' });
      handler = (req, res) => {
        const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      };
    } else {
      const { Pool } = await import('undici');
      const pool = new Pool(`http://127.0.0.1:${target}`, { connections: 1024 });
      handler = (req, res) => {
        const headers = { ...req.headers };
        delete headers.connection;
        pool
          .request({ method: (req.method ?? 'GET') as 'GET', path: req.url ?? '/', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
          .then((ur) => {
            res.writeHead(ur.statusCode, ur.headers as http.OutgoingHttpHeaders);
            ur.body.pipe(res);
          })
          .catch(() => res.destroy());
      };
    }
    const server = http.createServer(handler);
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  } else {
    throw new Error(`unknown role ${role}`);
  }
  let base = process.cpuUsage();
  process.on('message', (msg: unknown) => {
    if (msg === 'reset') {
      base = process.cpuUsage();
      send('reset-done');
    } else if (msg === 'usage') {
      const u = process.cpuUsage(base);
      const usage: ChildUsage = { cpuMicros: u.user + u.system, maxRssKb: process.resourceUsage().maxRSS };
      send(usage);
    }
  });
  const ready: ChildReady = { port };
  send(ready);
}

// --- parent -----------------------------------------------------------------------------------

interface Child {
  readonly port: number;
  request<T>(msg: string): Promise<T>;
  kill(): void;
}

function spawnRole(role: string, arg?: string): Promise<Child> {
  return new Promise((resolve, reject) => {
    const cp: ChildProcess = fork(fileURLToPath(import.meta.url), [role, ...(arg ? [arg] : [])], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, MESHTEL_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    cp.once('error', reject);
    cp.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
    cp.once('message', (msg) => {
      const { port } = msg as ChildReady;
      resolve({
        port,
        request: <T>(m: string) =>
          new Promise<T>((res) => {
            cp.once('message', (reply) => res(reply as T));
            cp.send(m);
          }),
        kill: () => {
          cp.removeAllListeners('exit');
          cp.kill();
        },
      });
    });
  });
}

async function load(port: number, extra: Record<string, unknown> = {}): Promise<AutocannonResult> {
  const require = createRequire(import.meta.url);
  const autocannon = require('autocannon') as Autocannon;
  return autocannon({ url: `http://127.0.0.1:${port}/reviews/0`, connections: CONNECTIONS, duration: DURATION_S, ...extra });
}

/** Measure a child: reset its CPU counter, load it, read CPU and RSS. */
async function measure(child: Child, extra: Record<string, unknown> = {}): Promise<{ r: AutocannonResult; usage: ChildUsage }> {
  // Warm-up so JIT and keep-alive pools are in place before the counters start.
  await load(child.port, { ...extra, duration: 1 });
  await child.request('reset');
  const r = await load(child.port, extra);
  const usage = await child.request<ChildUsage>('usage');
  if (r.errors > 0 || r.non2xx > 0) console.log(`  warning: ${r.errors} errors, ${r.non2xx} non-2xx`);
  return { r, usage };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

async function main(): Promise<void> {
  const app = await spawnRole('app');
  const children: Child[] = [app];
  // A peer's MX headers as a client sidecar sends them, so the inbound sidecar decodes (then caches) a real peer.
  const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
  const { createHttpMetadataExchange } = await import('../src/exchange/http-exchange.js');
  const peer = createHttpMetadataExchange({
    local: createWorkloadMetadata({ name: 'productpage-v1-abc', namespace: 'default', workload: 'productpage-v1', labels: { app: 'productpage', version: 'v1' }, instanceIps: ['10.0.0.2'] }),
  });
  const mxHeaders = { 'x-envoy-peer-metadata': peer.headerValue, 'x-envoy-peer-metadata-id': peer.headerId, host: 'reviews:9080' };
  try {
    console.log(`node ${process.version}, ${CONNECTIONS} connections, ${DURATION_S}s per run, 1 KB response, HTTP/1.1 keep-alive`);
    console.log(`\n-- throughput, one inbound sidecar (autocannon, max rate; ${ROUNDS} interleaved rounds, median) --`);
    const configs = [
      ['direct to app', app],
      ['sidecar, telemetry off', await spawnRole('sidecar-off', String(app.port))],
      ['sidecar, telemetry on', await spawnRole('sidecar-on', String(app.port))],
      ['@fastify/http-proxy', await spawnRole('fastify-proxy', String(app.port))],
      ['bare proxy, node:http Agent', await spawnRole('bare-node-http', String(app.port))],
      ['bare proxy, undici Pool', await spawnRole('bare-undici', String(app.port))],
    ] as const;
    for (const [, c] of configs) if (c !== app) children.push(c);
    // Interleaved rounds: the machine is shared, so a slow minute hits every configuration alike.
    const samples = new Map<string, AutocannonResult[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, target] of configs) {
        const { r } = await measure(target, { headers: mxHeaders });
        samples.set(name, [...(samples.get(name) ?? []), r]);
      }
    }
    const results: Record<string, number> = {};
    for (const [name] of configs) {
      const rs = samples.get(name) ?? [];
      const rps = median(rs.map((r) => r.requests.average));
      results[name] = rps;
      console.log(
        `${name.padEnd(26)} ${rps.toFixed(0).padStart(7)} req/s   p50 ${median(rs.map((r) => r.latency.p50))} ms   p99 ${median(rs.map((r) => r.latency.p99))} ms   (rounds: ${rs.map((r) => r.requests.average.toFixed(0)).join(', ')})`,
      );
    }
    const on = results['sidecar, telemetry on'] ?? 0;
    console.log(`ratio telemetry on / off:          ${(on / (results['sidecar, telemetry off'] ?? 1)).toFixed(3)}  (goal >= 0.90)`);
    console.log(`ratio telemetry on / fastify-proxy: ${(on / (results['@fastify/http-proxy'] ?? 1)).toFixed(3)}  (goal >= 1.0)`);
    console.log(
      `upstream client choice, bare undici Pool / bare node:http Agent: ${((results['bare proxy, undici Pool'] ?? 0) / (results['bare proxy, node:http Agent'] ?? 1)).toFixed(3)}`,
    );
    for (const [, c] of configs) if (c !== app) c.kill();
    children.length = 1;

    console.log('\n-- fixed 1000 rps: client -> sidecar -> sidecar -> app vs client -> app --');
    const rate = { overallRate: 1000, headers: { host: 'reviews:9080' } };
    const direct = await measure(app, rate);
    const pair = await spawnRole('pair', String(app.port));
    children.push(pair);
    const mesh = await measure(pair, rate);
    const perK = mesh.r.requests.total / 1000;
    console.log(`direct:        p50 ${direct.r.latency.p50} ms   p99 ${direct.r.latency.p99} ms   (${direct.r.requests.total} requests)`);
    console.log(`two sidecars:  p50 ${mesh.r.latency.p50} ms   p99 ${mesh.r.latency.p99} ms   (${mesh.r.requests.total} requests)`);
    console.log(`added by the sidecar pair: p50 +${(mesh.r.latency.p50 - direct.r.latency.p50).toFixed(2)} ms   p99 +${(mesh.r.latency.p99 - direct.r.latency.p99).toFixed(2)} ms`);
    const cpuPerK = mesh.usage.cpuMicros / 1e6 / perK;
    console.log(
      `sidecar pair CPU: ${cpuPerK.toFixed(3)} s per 1000 requests (= vCPU at 1000 rps; ${(cpuPerK / 2).toFixed(3)} per sidecar; Istio 1.24 Envoy: 0.20 per sidecar)`,
    );
    console.log(`sidecar pair peak RSS: ${(mesh.usage.maxRssKb / 1024).toFixed(1)} MB for both (one process; Istio 1.24 Envoy: 60 MB per sidecar)`);
  } finally {
    for (const c of children) c.kill();
  }
}

const [, , role, arg] = process.argv;
if (role) await runRole(role, arg);
else await main();

/**
 * The sidecar under load, every figure a same-run ratio (STYLE.md §14):
 * 1. Throughput through one inbound sidecar with telemetry on (MX decode via the peer cache, stats,
 *    MX answer headers) against the same sidecar with telemetry off (goal ≥ 0.90), and against
 *    @fastify/http-proxy in front of the same app (goal ≥ 1.0). autocannon, 16 connections, GET with
 *    the MX headers of a client sidecar, 1 KB response. Besides req/s, each configuration's CPU time
 *    per request is printed: it is the figure least disturbed by other load on a shared machine
 *    (throughput there depends on how the 2 cores are shared with the load generator and the app).
 * 1b. The upstream client choice: a bare node:http Agent proxy against a bare undici Pool proxy.
 * 2. At a fixed 1000 rps (Istio's perf setup): added p50/p99 of client → sidecar → sidecar → app
 *    against client → app, and CPU seconds and peak RSS of the two sidecars per 1000 requests.
 *
 * The app and each proxy run in their own child process (roles below), autocannon in this one, so
 * a proxy's CPU is measured alone with process.cpuUsage(). The machine has 2 cores shared by the
 * load generator, the proxy and the app: absolute numbers are low, the ratios are what to read.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadAverage, measure as measureChild, serveRole, spawnRole as spawnChild } from './support/children.js';
import type { AutocannonResult, Child, ChildUsage } from './support/children.js';
import { median } from './support/measure.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const CONNECTIONS = 16;
// 5 rounds: on a shared 2-core machine single rounds swing by ±15%; the median of 5 holds still.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const BODY = 'x'.repeat(1024);

// --- child roles ------------------------------------------------------------------------------

async function runRole(role: string, arg: string | undefined): Promise<void> {
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
  serveRole(port);
}

// --- parent -----------------------------------------------------------------------------------

const FILE = fileURLToPath(import.meta.url);
const spawnRole = (role: string, arg?: string): Promise<Child> => spawnChild(FILE, role, arg !== undefined ? [arg] : []);
const measure = (child: Child, extra: Record<string, unknown> = {}): Promise<{ r: AutocannonResult; usage: ChildUsage }> =>
  measureChild(child, { connections: CONNECTIONS, duration: DURATION_S, ...extra });

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
    // BENCH_CONFIGS=on,off,fastify runs only those (development aid; the default runs all of them).
    const only = process.env.BENCH_CONFIGS?.split(',').filter((x) => x !== '');
    const roles: readonly (readonly [string, string, string])[] = [
      ['sidecar, telemetry off', 'sidecar-off', 'off'],
      ['sidecar, telemetry on', 'sidecar-on', 'on'],
      ['@fastify/http-proxy', 'fastify-proxy', 'fastify'],
      ['bare proxy, node:http Agent', 'bare-node-http', 'node-http'],
      ['bare proxy, undici Pool', 'bare-undici', 'undici'],
    ];
    const configs: (readonly [string, Child])[] = [['direct to app', app]];
    for (const [name, role, key] of roles) if (!only || only.includes(key)) configs.push([name, await spawnRole(role, String(app.port))]);
    for (const [, c] of configs) if (c !== app) children.push(c);
    // Interleaved rounds: the machine is shared, so a slow minute hits every configuration alike.
    const samples = new Map<string, { r: AutocannonResult; usage: ChildUsage }[]>();
    for (let round = 0; round < ROUNDS; round++) {
      // Odd rounds run in reverse order, so no configuration always follows the same neighbour.
      const order = round % 2 === 0 ? configs : [...configs].reverse();
      for (const [name, target] of order) {
        const m = await measure(target, { headers: mxHeaders });
        samples.set(name, [...(samples.get(name) ?? []), m]);
      }
    }
    const rpsOf = new Map<string, number>();
    const cpuOf = new Map<string, number>();
    // Per-round ratios too: a same-round ratio cancels the load that other processes put on the machine.
    const roundRatios = (a: string, b: string): number[] => (samples.get(a) ?? []).map((m, i) => m.r.requests.average / (samples.get(b)?.[i]?.r.requests.average ?? 1));
    const roundRatio = (a: string, b: string): string => {
      const rs = roundRatios(a, b);
      return `${rs.map((x) => x.toFixed(2)).join(', ')} (median ${median(rs).toFixed(3)})`;
    };
    console.log(`${''.padEnd(28)}   req/s   p50    p99  CPU µs/req  peak RSS   (req/s per round)`);
    for (const [name] of configs) {
      const ms = samples.get(name) ?? [];
      const rps = median(ms.map((m) => m.r.requests.average));
      rpsOf.set(name, rps);
      // CPU of the measured process alone (the app's own CPU is not counted for the proxies).
      const cpu = median(ms.map((m) => m.usage.cpuMicros / Math.max(1, m.r.requests.total)));
      cpuOf.set(name, cpu);
      const rss = Math.max(...ms.map((m) => m.usage.maxRssKb)) / 1024;
      console.log(
        `${name.padEnd(28)} ${rps.toFixed(0).padStart(7)} ${`${median(ms.map((m) => m.r.latency.p50))}`.padStart(3)} ms ${`${median(ms.map((m) => m.r.latency.p99))}`.padStart(3)} ms ${cpu.toFixed(0).padStart(8)}   ${rss.toFixed(0).padStart(4)} MB   (${ms.map((m) => m.r.requests.average.toFixed(0)).join(', ')})`,
      );
    }
    const rps = (n: string): number => rpsOf.get(n) ?? 0;
    const cpu = (n: string): number => cpuOf.get(n) ?? 0;
    const ON = 'sidecar, telemetry on';
    const OFF = 'sidecar, telemetry off';
    const FASTIFY = '@fastify/http-proxy';
    const onOff = rps(ON) / rps(OFF);
    const onFastify = rps(ON) / rps(FASTIFY);
    if (rpsOf.has(ON) && rpsOf.has(OFF)) {
      console.log(
        `ratio telemetry on / off:          ${onOff.toFixed(3)}  (goal >= 0.90) ${onOff >= 0.9 ? 'met' : 'NOT met'}   per round: ${roundRatio(ON, OFF)}   CPU per request on / off: ${(cpu(ON) / cpu(OFF)).toFixed(3)}`,
      );
    }
    if (rpsOf.has(ON) && rpsOf.has(FASTIFY)) {
      console.log(
        `ratio telemetry on / fastify-proxy: ${onFastify.toFixed(3)}  (goal >= 1.0)  ${onFastify >= 1 ? 'met' : 'NOT met'}   per round: ${roundRatio(ON, FASTIFY)}   CPU per request fastify / on: ${(cpu(FASTIFY) / cpu(ON)).toFixed(3)}`,
      );
    }
    if (rpsOf.has('bare proxy, undici Pool') && rpsOf.has('bare proxy, node:http Agent')) {
      console.log(`upstream client choice, bare undici Pool / bare node:http Agent: ${(rps('bare proxy, undici Pool') / rps('bare proxy, node:http Agent')).toFixed(3)}`);
    }
    console.log(loadAverage());
    for (const [, c] of configs) if (c !== app) c.kill();
    children.length = 1;

    if (process.env.BENCH_SKIP_LATENCY === '1') return;
    console.log(`\n-- fixed 1000 rps: client -> sidecar -> sidecar -> app vs client -> app (${ROUNDS} interleaved rounds, median) --`);
    const rate = { overallRate: 1000, headers: { host: 'reviews:9080' } };
    const pair = await spawnRole('pair', String(app.port));
    children.push(pair);
    const direct: AutocannonResult[] = [];
    const mesh: { r: AutocannonResult; usage: ChildUsage }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      direct.push((await measure(app, rate)).r);
      mesh.push(await measure(pair, rate));
    }
    const p50 = (rs: readonly AutocannonResult[]): number => median(rs.map((r) => r.latency.p50));
    const p99 = (rs: readonly AutocannonResult[]): number => median(rs.map((r) => r.latency.p99));
    const meshR = mesh.map((m) => m.r);
    const total = (rs: readonly AutocannonResult[]): number => rs.reduce((n, r) => n + r.requests.total, 0);
    console.log(`direct:        p50 ${p50(direct)} ms   p99 ${p99(direct)} ms   (${total(direct)} requests)`);
    console.log(`two sidecars:  p50 ${p50(meshR)} ms   p99 ${p99(meshR)} ms   (${total(meshR)} requests)`);
    console.log(`added by the sidecar pair: p50 +${(p50(meshR) - p50(direct)).toFixed(2)} ms   p99 +${(p99(meshR) - p99(direct)).toFixed(2)} ms`);
    // CPU seconds per 1000 requests = vCPU used at 1000 rps.
    const cpuPerK = median(mesh.map((m) => m.usage.cpuMicros / 1e6 / (m.r.requests.total / 1000)));
    console.log(
      `sidecar pair CPU: ${cpuPerK.toFixed(3)} s per 1000 requests (= vCPU at 1000 rps; ${(cpuPerK / 2).toFixed(3)} per sidecar; Istio 1.24 Envoy: 0.20 per sidecar)`,
    );
    const rssMb = Math.max(...mesh.map((m) => m.usage.maxRssKb)) / 1024;
    console.log(`sidecar pair peak RSS: ${rssMb.toFixed(1)} MB for both (one process, ${(rssMb / 2).toFixed(1)} MB per sidecar; Istio 1.24 Envoy: 60 MB per sidecar at 1000 rps)`);
  } finally {
    for (const c of children) c.kill();
  }
}

const [, , role, arg] = process.argv;
if (role) await runRole(role, arg);
else await main();

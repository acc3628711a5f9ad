/**
 * The sidecar under load, every figure a same-run ratio (STYLE.md §14), each row of issue 16's table printed with
 * its goal:
 * 1. Throughput (autocannon, 16 connections, max rate, GET with a client sidecar's MX headers, 1 KB response) of
 *    one inbound sidecar with telemetry on / off (goal ≥ 0.97), a sidecar pair on / off (≥ 0.95), the hop against a
 *    bare node:http pipe proxy (≥ 1.0) and @fastify/http-proxy (≥ 1.3); CPU µs per request of each process alone
 *    (user CPU beside it: the JavaScript's share, steadier on a shared machine than req/s); RSS of one sidecar idle
 *    and loaded as information only (these children run under tsx; the RSS goal rows are bench/rss.bench.ts's, on
 *    the compiled package). The bare node:http and undici proxies also justify the upstream
 *    client choice in src/sidecar/upstream.ts.
 * 2. At a fixed 1000 rps (Istio's perf setup; open loop, latencies in µs): added p50/p99 of client → sidecar → sidecar → app against
 *    client → app, compared with a pair of bare node:http pipe proxies (goal ≤ 2×), and CPU per sidecar
 *    (≤ 0.08 vCPU; Envoy's published figure is 0.20).
 * 3. Throughput of `meshtel sidecar --concurrency 1` (one core) and `2` (both), with the ceiling the machine allows
 *    (see concurrencyRows).
 *
 * Pinned (bench/support/pinning.ts): the proxy under test runs on a core of its own, autocannon and the app on the
 * other, so a round no longer depends on where the scheduler puts three busy processes on two cores.
 * The app and each proxy run in their own child process (roles below), autocannon in this one. The machine has 2
 * cores shared by the load generator, the proxy and the app: absolute numbers are low, the ratios are what to read.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { cpus } from 'node:os';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { load, loadAverage, measure as measureChild, serveRole, spawnRole as spawnChild } from './support/children.js';
import type { AutocannonResult, Child, ChildUsage } from './support/children.js';
import { fixedRate, quantile } from './support/fixed-rate.js';
import type { FixedRateResult } from './support/fixed-rate.js';
import { median } from './support/measure.js';
import { LOAD_CPU, SERVER_CPU, pin, pinningLine, pinningOn } from './support/pinning.js';

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
  } else if (role === 'sidecar-on' || role === 'sidecar-off' || role === 'pair' || role === 'pair-off' || role === 'sidecar-churn') {
    const { startSidecar } = await import('../src/sidecar/sidecar.js');
    const { parseTelemetry } = await import('../src/stats/telemetry-api.js');
    const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
    const ports = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 };
    const meta = (name: string) =>
      createWorkloadMetadata({ name: `${name}-v1-abc`, namespace: 'default', workload: `${name}-v1`, labels: { app: name, version: 'v1' }, serviceAccount: name, instanceIps: ['10.0.0.1'] });
    // The churn role: one Telemetry tag override on every istio_* metric (a header the load sends), served to more
    // MX peers than the peer cache holds (issue 12.3: not only the best case of one cached peer).
    const telemetryResources =
      role === 'sidecar-churn'
        ? parseTelemetry({
            apiVersion: 'telemetry.istio.io/v1',
            kind: 'Telemetry',
            metadata: { name: 'bench', namespace: 'istio-system' },
            spec: { metrics: [{ providers: [{ name: 'prometheus' }], overrides: [{ tagOverrides: { user: { value: "request.headers['x-user']" } } }] }] },
          })
        : undefined;
    const server = await startSidecar({
      env: {},
      bindAddress: '127.0.0.1',
      ports,
      metadata: meta('reviews'),
      app: { port: Number(arg) },
      telemetry: role !== 'sidecar-off' && role !== 'pair-off',
      ...(telemetryResources ? { telemetryResources } : {}),
    });
    port = server.ports.inbound;
    if (role === 'pair' || role === 'pair-off') {
      const client = await startSidecar({
        env: {},
        bindAddress: '127.0.0.1',
        ports,
        metadata: meta('productpage'),
        telemetry: role === 'pair',
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
  } else if (role === 'node-pipe-pair') {
    // Two bare node:http pipe proxies in a row, the floor a pair of Node proxies cannot beat.
    const pipe = async (target: number): Promise<number> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, scheduling: 'lifo' });
      const server = http.createServer((req, res) => {
        const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      });
      server.keepAliveTimeout = 60_000;
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return (server.address() as AddressInfo).port;
    };
    port = await pipe(await pipe(Number(arg)));
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
  // The proxy under test on a core of its own; autocannon (this process) and the app share the other.
  pin(process.pid, LOAD_CPU);
  const app = await spawnRole('app');
  pin(app.pid, LOAD_CPU);
  const children: Child[] = [app];
  // A peer's MX headers as a client sidecar sends them, so the inbound sidecar decodes (then caches) a real peer.
  const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
  const { createHttpMetadataExchange } = await import('../src/exchange/http-exchange.js');
  const peer = createHttpMetadataExchange({
    local: createWorkloadMetadata({ name: 'productpage-v1-abc', namespace: 'default', workload: 'productpage-v1', labels: { app: 'productpage', version: 'v1' }, instanceIps: ['10.0.0.2'] }),
  });
  const mxHeaders = { 'x-envoy-peer-metadata': peer.headerValue, 'x-envoy-peer-metadata-id': peer.headerId, host: 'reviews:9080' };
  // The churn configuration: requests cycle over CHURN_PEERS MX peers, four times the peer cache's 500 (Istio's
  // max_peer_cache_size), so nearly every request decodes its peer again, each with one of 50 x-user values.
  const CHURN_PEERS = 2000;
  const churnHeaders = Array.from({ length: CHURN_PEERS }, (_, i) => {
    const x = createHttpMetadataExchange({
      local: createWorkloadMetadata({ name: `client${i}-v1-abc`, namespace: 'default', workload: `client${i}-v1`, labels: { app: `client${i}`, version: 'v1' }, instanceIps: ['10.0.1.1'] }),
    });
    return { 'x-envoy-peer-metadata': x.headerValue, 'x-envoy-peer-metadata-id': x.headerId, host: 'reviews:9080', 'x-user': `user${i % 50}` };
  });
  let nextChurn = 0;
  const churnRequests = [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, headers: churnHeaders[nextChurn++ % CHURN_PEERS] }) }];
  const CHURN = `sidecar, ${CHURN_PEERS} peers + override`;
  try {
    console.log(`node ${process.version}, ${CONNECTIONS} connections, ${DURATION_S}s per run, 1 KB response, HTTP/1.1 keep-alive`);
    console.log(pinningLine());
    console.log(`\n-- throughput, one inbound sidecar (autocannon, max rate; ${ROUNDS} interleaved rounds, median) --`);
    // BENCH_CONFIGS=on,off,fastify runs only those (development aid; the default runs all of them).
    const only = process.env.BENCH_CONFIGS?.split(',').filter((x) => x !== '');
    const roles: readonly (readonly [string, string, string])[] = [
      ['sidecar, telemetry off', 'sidecar-off', 'off'],
      ['sidecar, telemetry on', 'sidecar-on', 'on'],
      ['pair, telemetry off', 'pair-off', 'pair-off'],
      ['pair, telemetry on', 'pair', 'pair'],
      [CHURN, 'sidecar-churn', 'churn'],
      ['@fastify/http-proxy', 'fastify-proxy', 'fastify'],
      ['bare proxy, node:http Agent', 'bare-node-http', 'node-http'],
      ['bare proxy, undici Pool', 'bare-undici', 'undici'],
    ];
    const configs: (readonly [string, Child])[] = [['direct to app', app]];
    let idleRssMb = 0;
    for (const [name, role, key] of roles) {
      if (only && !only.includes(key)) continue;
      const c = await spawnRole(role, String(app.port));
      pin(c.pid, SERVER_CPU);
      // RSS of a sidecar that has served nothing yet (telemetry on, agent ports up).
      if (role === 'sidecar-on') idleRssMb = (await c.request<ChildUsage>('usage')).rssBytes / 1048576;
      configs.push([name, c]);
    }
    for (const [, c] of configs) if (c !== app) children.push(c);
    // Interleaved rounds: the machine is shared, so a slow minute hits every configuration alike.
    const samples = new Map<string, { r: AutocannonResult; usage: ChildUsage }[]>();
    for (let round = 0; round < ROUNDS; round++) {
      // Odd rounds run in reverse order, so no configuration always follows the same neighbour.
      const order = round % 2 === 0 ? configs : [...configs].reverse();
      for (const [name, target] of order) {
        const m = await measure(target, name === CHURN ? { requests: churnRequests } : { headers: mxHeaders });
        samples.set(name, [...(samples.get(name) ?? []), m]);
      }
    }
    const rpsOf = new Map<string, number>();
    const cpuOf = new Map<string, number>();
    // Per-round ratios: a same-round ratio cancels the load that other processes put on the machine.
    const roundRatios = (a: string, b: string): number[] => (samples.get(a) ?? []).map((m, i) => m.r.requests.average / (samples.get(b)?.[i]?.r.requests.average ?? 1));
    console.log(`${''.padEnd(28)}   req/s   p50    p99  CPU µs/req  user µs/req  peak RSS   (req/s per round)`);
    for (const [name] of configs) {
      const ms = samples.get(name) ?? [];
      const rps = median(ms.map((m) => m.r.requests.average));
      rpsOf.set(name, rps);
      // CPU of the measured process alone (the app's own CPU is not counted for the proxies).
      const cpu = median(ms.map((m) => m.usage.cpuMicros / Math.max(1, m.r.requests.total)));
      const user = median(ms.map((m) => m.usage.userMicros / Math.max(1, m.r.requests.total)));
      cpuOf.set(name, cpu);
      const rss = Math.max(...ms.map((m) => m.usage.maxRssKb)) / 1024;
      console.log(
        `${name.padEnd(28)} ${rps.toFixed(0).padStart(7)} ${`${median(ms.map((m) => m.r.latency.p50))}`.padStart(3)} ms ${`${median(ms.map((m) => m.r.latency.p99))}`.padStart(3)} ms ${cpu.toFixed(0).padStart(8)} ${user.toFixed(0).padStart(11)}   ${rss.toFixed(0).padStart(6)} MB   (${ms.map((m) => m.r.requests.average.toFixed(0)).join(', ')})`,
      );
    }
    const cpu = (n: string): number => cpuOf.get(n) ?? 0;
    /** One row of the issue's table: the figure, its goal, whether it is met. */
    const goalRow = (label: string, value: number, goal: number, atMost = false, extra = ''): void => {
      const met = atMost ? value <= goal : value >= goal;
      console.log(`${label.padEnd(46)} ${value.toFixed(3).padStart(8)}  (goal ${atMost ? '<=' : '>='} ${goal})  ${met ? 'met' : 'NOT met'}${extra}`);
    };
    const ratioRow = (label: string, a: string, b: string, goal: number): void => {
      if (!samples.has(a) || !samples.has(b)) return;
      const rs = roundRatios(a, b);
      goalRow(label, median(rs), goal, false, `   per round ${rs.map((x) => x.toFixed(2)).join(', ')}; CPU per request ${b} / ${a}: ${(cpu(b) / cpu(a)).toFixed(3)}`);
    };
    console.log('\nissue 16 rows (median of per-round req/s ratios; CPU ratio beside, the steadier figure on a shared machine):');
    ratioRow('one hop, telemetry on / off', 'sidecar, telemetry on', 'sidecar, telemetry off', 0.97);
    ratioRow('sidecar pair, telemetry on / off', 'pair, telemetry on', 'pair, telemetry off', 0.95);
    if (samples.has(CHURN) && samples.has('sidecar, telemetry on')) {
      const rs = roundRatios(CHURN, 'sidecar, telemetry on');
      console.log(
        `${'one hop, 2000 peers + override / one peer'.padEnd(46)} ${median(rs).toFixed(3).padStart(8)}  (information: cache churn and a tag override)   per round ${rs.map((x) => x.toFixed(2)).join(', ')}; CPU per request ${cpu(CHURN).toFixed(1)} / ${cpu('sidecar, telemetry on').toFixed(1)} µs`,
      );
    }
    ratioRow('one hop vs a bare node:http pipe proxy', 'sidecar, telemetry on', 'bare proxy, node:http Agent', 1.0);
    ratioRow('one hop vs @fastify/http-proxy', 'sidecar, telemetry on', '@fastify/http-proxy', 1.3);
    if (samples.has('sidecar, telemetry on') && samples.has('sidecar, telemetry off')) {
      console.log(`  telemetry CPU per request: ${(cpu('sidecar, telemetry on') - cpu('sidecar, telemetry off')).toFixed(1)} µs (goal <= 3)`);
    }
    if (samples.has('sidecar, telemetry on')) {
      const loadedRss = Math.max(...(samples.get('sidecar, telemetry on') ?? []).map((m) => m.usage.maxRssKb)) / 1024;
      // Under tsx (its loader thread adds ~20 MiB): the RSS rows with their goals are bench/rss.bench.ts's, from dist/.
      console.log(`  RSS of one sidecar under tsx: idle ${idleRssMb.toFixed(1)} MiB, loaded high-water ${loadedRss.toFixed(1)} MiB (goal rows: rss bench, on dist/)`);
    }
    console.log(loadAverage());
    for (const [, c] of configs) if (c !== app) c.kill();
    children.length = 1;

    if (process.env.BENCH_SKIP_LATENCY !== '1') {
      console.log(`\n-- fixed 1000 rps, open loop, µs latencies (bench/support/fixed-rate.ts): client -> two proxies -> app vs client -> app (${ROUNDS} interleaved rounds, median) --`);
      const pair = await spawnRole('pair', String(app.port));
      const pipes = await spawnRole('node-pipe-pair', String(app.port));
      pin(pair.pid, SERVER_CPU);
      pin(pipes.pid, SERVER_CPU);
      children.push(pair, pipes);
      const at1000 = (port: number): Promise<FixedRateResult> => fixedRate({ port, rate: 1000, durationS: DURATION_S, connections: CONNECTIONS, headers: { host: 'reviews:9080' } });
      /** One fixed-rate run against `c` after a 1 s warm-up, with the CPU `c` used during it. */
      const timed = async (c: Child): Promise<{ r: FixedRateResult; usage: ChildUsage }> => {
        await fixedRate({ port: c.port, rate: 1000, durationS: 1, connections: CONNECTIONS, headers: { host: 'reviews:9080' } });
        await c.request('reset');
        const r = await at1000(c.port);
        const usage = await c.request<ChildUsage>('usage');
        if (r.errors > 0) console.log(`  warning: ${r.errors} failed requests`);
        return { r, usage };
      };
      const direct: FixedRateResult[] = [];
      const mesh: { r: FixedRateResult; usage: ChildUsage }[] = [];
      const pipe: FixedRateResult[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        direct.push((await timed(app)).r);
        mesh.push(await timed(pair));
        pipe.push((await timed(pipes)).r);
      }
      const ms = (us: number): string => `${(us / 1000).toFixed(2)} ms`;
      const p50 = (rs: readonly FixedRateResult[]): number => median(rs.map((r) => quantile(r.latenciesUs, 0.5)));
      const p99 = (rs: readonly FixedRateResult[]): number => median(rs.map((r) => quantile(r.latenciesUs, 0.99)));
      const meshR = mesh.map((m) => m.r);
      const total = (rs: readonly FixedRateResult[]): number => rs.reduce((n, r) => n + r.ok, 0);
      console.log(`direct:              p50 ${ms(p50(direct))}   p99 ${ms(p99(direct))}   (${total(direct)} requests)`);
      console.log(`node:http pipe pair: p50 ${ms(p50(pipe))}   p99 ${ms(p99(pipe))}   (${total(pipe)} requests)`);
      console.log(`two sidecars:        p50 ${ms(p50(meshR))}   p99 ${ms(p99(meshR))}   (${total(meshR)} requests)`);
      const added = (rs: readonly FixedRateResult[]): [number, number] => [p50(rs) - p50(direct), p99(rs) - p99(direct)];
      const [m50, m99] = added(meshR);
      const [n50, n99] = added(pipe);
      console.log(`added by the sidecar pair: p50 +${ms(m50)}   p99 +${ms(m99)}; by the node pipe pair: p50 +${ms(n50)}   p99 +${ms(n99)}`);
      goalRow('added p50, sidecar pair / node pipe pair', n50 > 0 ? m50 / n50 : m50 <= 0 ? 1 : Infinity, 2, true);
      goalRow('added p99, sidecar pair / node pipe pair', n99 > 0 ? m99 / n99 : m99 <= 0 ? 1 : Infinity, 2, true);
      // CPU seconds per 1000 requests = vCPU used at 1000 rps.
      const cpuPerK = median(mesh.map((m) => m.usage.cpuMicros / 1e6 / (m.r.ok / 1000)));
      goalRow('CPU per sidecar at 1000 rps (vCPU; pair / 2)', cpuPerK / 2, 0.08, true, '   (Istio 1.24 Envoy: 0.20)');
      const rssMb = Math.max(...mesh.map((m) => m.usage.maxRssKb)) / 1024;
      console.log(`sidecar pair peak RSS: ${rssMb.toFixed(1)} MB for both (one process; Istio 1.24 Envoy: 60 MB per sidecar at 1000 rps)`);
      console.log(loadAverage());
    }

    if (process.env.BENCH_SKIP_CONCURRENCY !== '1') await concurrencyRows(app, mxHeaders);
  } finally {
    for (const c of children) c.kill();
  }
}

/**
 * CPU seconds (user + system) used so far by a process and its children (the --concurrency workers), from
 * /proc: the workers are processes of their own, which the primary's process.cpuUsage() does not see.
 */
function treeCpuMicros(pid: number): number {
  const ticks = (p: number): number => {
    try {
      // Fields after the parenthesised command: state is 3rd; utime 14th and stime 15th of the whole line.
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]);
    } catch {
      return 0;
    }
  };
  let total = ticks(pid);
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === pid) total += ticks(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  // USER_HZ is 100 on Linux.
  return total * 10_000;
}

/**
 * Throughput of `meshtel sidecar --concurrency 1` and `2` (the CLI, as a pod runs it), interleaved rounds. With
 * pinning, `--concurrency 1` gets one core and `2` both (as a pod's CPU limit would). A 2-core machine that also
 * runs the load generator and the app cannot give 2 workers 2 free cores, so beside the ratio the bench prints the
 * ceiling the machine allows: 2 cores divided by the CPU per request of every process (sidecar workers, app,
 * autocannon), each measured in the same rounds. Scaling is shown when `--concurrency 2` reaches that ceiling
 * while `--concurrency 1` is held to what one core gives the sidecar.
 */
async function concurrencyRows(app: Child, headers: Record<string, string>): Promise<void> {
  const cores = cpus().length;
  console.log(`\n-- throughput by --concurrency (meshtel sidecar CLI, inbound hop; ${ROUNDS} interleaved rounds, median; ${cores} cores) --`);
  const start = (n: number): Promise<{ cp: ChildProcess; port: number }> =>
    new Promise((resolve, reject) => {
      const zero = ['--outbound-port', '0', '--prometheus-port', '0', '--status-port', '0', '--health-port', '0', '--admin-port', '0'];
      const node = [process.execPath, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)), 'sidecar', '--concurrency', String(n), '--app-port', String(app.port), '--bind', '127.0.0.1', '--inbound-port', '0', ...zero];
      // One core for one worker, every core for two (the workers inherit the affinity the primary starts with).
      const argv = pinningOn() ? ['taskset', '-c', n === 1 ? SERVER_CPU : `0-${cores - 1}`, ...node] : node;
      const cp = spawn(argv[0]!, argv.slice(1), {
        env: { ...process.env, POD_NAME: 'reviews-v1-abc', POD_NAMESPACE: 'default', MESHTEL_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let out = '';
      cp.stderr!.setEncoding('utf8');
      cp.stderr!.on('data', (c: string) => {
        out += c;
        // The ready line: the primary's (with `workers`) for N > 1, the sidecar's own for 1.
        const line = out.split('\n').find((l) => l.includes('"sidecar ready"') && (n === 1 || l.includes('"workers"')));
        if (line) resolve({ cp, port: (JSON.parse(line) as { ports: { inbound: number } }).ports.inbound });
      });
      cp.once('exit', (code) => reject(new Error(`sidecar --concurrency ${n} exited with ${code}`)));
    });
  const runs = [await start(1), await start(2)];
  try {
    const rps: number[][] = [[], []];
    // CPU µs per request of the sidecar (all its processes), the app and autocannon (this process), per run.
    const cpu: { sidecar: number; app: number; load: number }[][] = [[], []];
    for (let round = 0; round < ROUNDS; round++) {
      for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) {
        const target = runs[i]!;
        await load(target.port, { connections: CONNECTIONS, duration: 1, headers });
        const pid = target.cp.pid ?? 0;
        const s0 = treeCpuMicros(pid);
        await app.request('reset');
        const l0 = process.cpuUsage();
        const r = await load(target.port, { connections: CONNECTIONS, duration: DURATION_S, headers });
        const l = process.cpuUsage(l0);
        const a = await app.request<ChildUsage>('usage');
        const n = Math.max(1, r.requests.total);
        rps[i]!.push(r.requests.average);
        cpu[i]!.push({ sidecar: (treeCpuMicros(pid) - s0) / n, app: a.cpuMicros / n, load: (l.user + l.system) / n });
      }
    }
    console.log(`--concurrency 1: ${median(rps[0]!).toFixed(0)} req/s   --concurrency 2: ${median(rps[1]!).toFixed(0)} req/s   (per round: ${rps[0]!.map((x) => x.toFixed(0)).join(', ')} / ${rps[1]!.map((x) => x.toFixed(0)).join(', ')})`);
    const ratios = rps[1]!.map((x, i) => x / (rps[0]![i] ?? 1));
    const med = (i: number, k: 'sidecar' | 'app' | 'load'): number => median(cpu[i]!.map((c) => c[k]));
    for (const i of [0, 1]) {
      console.log(`  --concurrency ${i + 1}, CPU µs per request: sidecar (every worker) ${med(i, 'sidecar').toFixed(1)}, app ${med(i, 'app').toFixed(1)}, autocannon ${med(i, 'load').toFixed(1)}`);
    }
    // What the machine allows: all its cores over the CPU every request costs in all three processes.
    const ceiling2 = (cores * 1e6) / (med(1, 'sidecar') + med(1, 'app') + med(1, 'load'));
    // --concurrency 1 is held to one core's worth of sidecar CPU (pinned: exactly one core).
    const ceiling1 = Math.min(1e6 / med(0, 'sidecar'), (cores * 1e6) / (med(0, 'sidecar') + med(0, 'app') + med(0, 'load')));
    const ideal = ceiling2 / ceiling1;
    console.log(`throughput --concurrency 2 / 1: ${median(ratios).toFixed(3)}   (per round ${ratios.map((x) => x.toFixed(2)).join(', ')})`);
    console.log(
      `  the machine's ceilings: --concurrency 1 ${ceiling1.toFixed(0)} req/s (one core of sidecar), --concurrency 2 ${ceiling2.toFixed(0)} req/s (${cores} cores shared with the app and autocannon): at most ${ideal.toFixed(3)}x here`,
    );
    console.log(`  --concurrency 2 reaches ${((median(rps[1]!) / ceiling2) * 100).toFixed(0)}% of its ceiling, --concurrency 1 ${((median(rps[0]!) / ceiling1) * 100).toFixed(0)}% of its own (goal: throughput scales with N given N free cores)`);
    console.log(loadAverage());
  } finally {
    for (const r of runs) r.cp.kill('SIGTERM');
  }
}

const [, , role, arg] = process.argv;
if (role) await runRole(role, arg);
else await main();

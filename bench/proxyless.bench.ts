/**
 * The proxyless plugin's cost, every figure a same-run ratio (STYLE.md §14): one fastify app (one GET route,
 * 1 KB reply) served
 * - bare;
 * - with `meshtelFastify` (MX read and answer, the four istio_* request series, reporter=destination);
 * - with a hand-written prom-client baseline that records what fastify-metrics 12 records by default for a
 *   route (one Histogram and one Summary labelled method/route/status_code, timers started in onRequest and
 *   stopped in onResponse). It is an honest stand-in: the same prom-client calls in the same hooks, without the
 *   plugin's option handling; `fastify-metrics` itself is measured too when it can be resolved (from this
 *   checkout, or from the working directory's node_modules).
 * Goals (issue 16): plugin / bare ≥ 0.90, plugin / prom-client baseline ≥ 1.3. autocannon, 16 connections,
 * requests carry a client sidecar's MX headers. CPU per request is the app process's own.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadAverage, measure, serveRole, spawnRole } from './support/children.js';
import type { AutocannonResult, Child, ChildUsage } from './support/children.js';
import { median } from './support/measure.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = 16;
const BODY = 'x'.repeat(1024);
const FILE = fileURLToPath(import.meta.url);

/** `fastify-metrics` from this checkout or the working directory, or undefined. */
function resolveFastifyMetrics(): string | undefined {
  const require = createRequire(import.meta.url);
  for (const from of [path.dirname(FILE), process.cwd()]) {
    try {
      return require.resolve('fastify-metrics', { paths: [from] });
    } catch {
      // not installed there
    }
  }
  return undefined;
}

async function runRole(role: string): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  if (role === 'meshtel') {
    const { createMeshtelEmbedding, meshtelFastify } = await import('../src/embed/index.js');
    const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
    const embedding = createMeshtelEmbedding({
      metadata: createWorkloadMetadata({ name: 'reviews-v1-abc', namespace: 'default', workload: 'reviews-v1', labels: { app: 'reviews', version: 'v1' }, instanceIps: ['10.0.0.1'] }),
    });
    await app.register(meshtelFastify, { embedding });
  } else if (role === 'prom-client') {
    const { Histogram, Registry, Summary } = await import('prom-client');
    const registry = new Registry();
    const labelNames = ['method', 'route', 'status_code'] as const;
    const hist = new Histogram({ name: 'http_request_duration_seconds', help: 'request duration in seconds', labelNames, registers: [registry] });
    const sum = new Summary({ name: 'http_request_summary_seconds', help: 'request duration in seconds summary', labelNames, percentiles: [0.5, 0.9, 0.95, 0.99], registers: [registry] });
    const TIMERS = Symbol('timers');
    type Timed = { [TIMERS]?: [ReturnType<typeof hist.startTimer>, ReturnType<typeof sum.startTimer>] };
    app.addHook('onRequest', (request, _reply, done) => {
      (request as unknown as Timed)[TIMERS] = [hist.startTimer(), sum.startTimer()];
      done();
    });
    app.addHook('onResponse', (request, reply, done) => {
      const t = (request as unknown as Timed)[TIMERS];
      if (t) {
        const labels = { method: request.method, route: request.routeOptions.url ?? '', status_code: reply.statusCode };
        t[0](labels);
        t[1](labels);
      }
      done();
    });
  } else if (role === 'fastify-metrics') {
    const resolved = resolveFastifyMetrics();
    if (resolved === undefined) throw new Error('fastify-metrics is not installed');
    const mod = (await import(resolved)) as { default: unknown };
    const plugin = (mod.default as { default?: unknown }).default ?? mod.default;
    await app.register(plugin as Parameters<typeof app.register>[0], { endpoint: '/metrics' });
  } else if (role !== 'bare') {
    throw new Error(`unknown role ${role}`);
  }
  app.get('/reviews/:id', (_req, reply) => {
    reply.header('content-type', 'text/plain').send(BODY);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  serveRole((app.server.address() as AddressInfo).port);
}

async function main(): Promise<void> {
  const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
  const { createHttpMetadataExchange } = await import('../src/exchange/http-exchange.js');
  const peer = createHttpMetadataExchange({
    local: createWorkloadMetadata({ name: 'productpage-v1-abc', namespace: 'default', workload: 'productpage-v1', labels: { app: 'productpage', version: 'v1' }, instanceIps: ['10.0.0.2'] }),
  });
  const headers = { 'x-envoy-peer-metadata': peer.headerValue, 'x-envoy-peer-metadata-id': peer.headerId, host: 'reviews:9080' };
  const roles: [string, string][] = [
    ['bare fastify app', 'bare'],
    ['app + meshtelFastify', 'meshtel'],
    ['app + prom-client hooks', 'prom-client'],
  ];
  if (resolveFastifyMetrics() !== undefined) roles.push(['app + fastify-metrics', 'fastify-metrics']);
  const children: [string, Child][] = [];
  try {
    for (const [name, role] of roles) children.push([name, await spawnRole(FILE, role)]);
    console.log(`node ${process.version}, ${CONNECTIONS} connections, ${DURATION_S}s per run, ${ROUNDS} interleaved rounds (median), 1 KB reply, MX headers on every request`);
    if (!roles.some(([, r]) => r === 'fastify-metrics')) console.log('fastify-metrics is not installed: the prom-client hooks stand in for it (see the header comment)');
    const samples = new Map<string, { r: AutocannonResult; usage: ChildUsage }[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? children : [...children].reverse();
      for (const [name, c] of order) samples.set(name, [...(samples.get(name) ?? []), await measure(c, { connections: CONNECTIONS, duration: DURATION_S, headers })]);
    }
    console.log(`${''.padEnd(26)}   req/s  CPU µs/req  user µs/req   (req/s per round)`);
    const rps = new Map<string, number>();
    const cpu = new Map<string, number>();
    for (const [name] of children) {
      const ms = samples.get(name) ?? [];
      rps.set(name, median(ms.map((m) => m.r.requests.average)));
      cpu.set(name, median(ms.map((m) => m.usage.cpuMicros / Math.max(1, m.r.requests.total))));
      const user = median(ms.map((m) => m.usage.userMicros / Math.max(1, m.r.requests.total)));
      console.log(`${name.padEnd(26)} ${rps.get(name)!.toFixed(0).padStart(7)} ${cpu.get(name)!.toFixed(1).padStart(10)} ${user.toFixed(1).padStart(11)}   (${ms.map((m) => m.r.requests.average.toFixed(0)).join(', ')})`);
    }
    // Per-round ratios cancel the load other processes put on a shared machine; their median is the figure.
    const ratio = (a: string, b: string): number => median((samples.get(a) ?? []).map((m, i) => m.r.requests.average / (samples.get(b)?.[i]?.r.requests.average ?? 1)));
    const row = (label: string, value: number, goal: number): void => console.log(`${label.padEnd(52)} ${value.toFixed(3)}  (goal >= ${goal.toFixed(2)}) ${value >= goal ? 'met' : 'NOT met'}`);
    const M = 'app + meshtelFastify';
    row('meshtelFastify / bare app (req/s)', ratio(M, 'bare fastify app'), 0.9);
    console.log(`  CPU per request added by meshtelFastify: ${(cpu.get(M)! - cpu.get('bare fastify app')!).toFixed(1)} µs`);
    row('meshtelFastify / prom-client hooks (req/s)', ratio(M, 'app + prom-client hooks'), 1.3);
    if (samples.has('app + fastify-metrics')) row('meshtelFastify / fastify-metrics (req/s)', ratio(M, 'app + fastify-metrics'), 1.3);
    console.log(loadAverage());
  } finally {
    for (const [, c] of children) c.kill();
  }
}

const [, , role] = process.argv;
if (role) await runRole(role);
else await main();

/**
 * The proxyless plugin's cost, every figure a same-run ratio (STYLE.md §14): one fastify app (one GET route,
 * 1 KB reply) served
 * - bare;
 * - with `meshtelFastify` (MX read and answer, the four istio_* request series, reporter=destination);
 * - with `fastify-metrics` 12 (prom-client; its defaults: a Histogram and a Summary per route labelled
 *   method/route/status_code, and prom-client's default process metrics), the plugin an app would use instead;
 * - bare but answering with the same two MX headers as the plugin (the floor: their ~470 bytes per response cost
 *   the app's writev and the client's parser, which share the machine's cores, whatever the plugin does).
 * Goals (issue 16): plugin / bare ≥ 0.90, plugin / fastify-metrics ≥ 1.3. autocannon, 16 connections, requests
 * carry a client sidecar's MX headers. CPU per request is the app process's own.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadAverage, measure, serveRole, spawnRole } from './support/children.js';
import type { AutocannonResult, Child, ChildUsage } from './support/children.js';
import { median } from './support/measure.js';
import { LOAD_CPU, SERVER_CPU, pin, pinningLine } from './support/pinning.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = 16;
const BODY = 'x'.repeat(1024);
const FILE = fileURLToPath(import.meta.url);

/** The identity the meshtel role serves as, in one place for the plugin and the floor role. */
async function localMetadata() {
  const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
  return createWorkloadMetadata({ name: 'reviews-v1-abc', namespace: 'default', workload: 'reviews-v1', labels: { app: 'reviews', version: 'v1' }, instanceIps: ['10.0.0.1'] });
}

/** The MX id and value the plugin answers with (the exchange encodes them, as the embedding does). */
async function localMxHeaders(): Promise<{ id: string; value: string }> {
  const { createHttpMetadataExchange } = await import('../src/exchange/http-exchange.js');
  const mx = createHttpMetadataExchange({ local: await localMetadata() });
  return { id: mx.headerId, value: mx.headerValue };
}

async function runRole(role: string): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  if (role === 'meshtel') {
    const { createMeshtelEmbedding, meshtelFastify } = await import('../src/embed/index.js');
    const embedding = createMeshtelEmbedding({ metadata: await localMetadata() });
    await app.register(meshtelFastify, { embedding });
  } else if (role === 'fastify-metrics') {
    // A CommonJS module whose plugin is its `default` export: ESM sees it as `default.default`.
    const mod = (await import('fastify-metrics')) as { default: unknown };
    const plugin = (mod.default as { default?: unknown }).default ?? mod.default;
    await app.register(plugin as Parameters<typeof app.register>[0], { endpoint: '/metrics' });
  } else if (role !== 'bare' && role !== 'bare-mx') {
    throw new Error(`unknown role ${role}`);
  }
  // The floor: no telemetry, but the same two MX answer headers the plugin sends (their bytes on the wire and the
  // client's parsing of them are part of every ratio against the bare app, and no plugin code can remove them).
  const mx = role === 'bare-mx' ? await localMxHeaders() : undefined;
  app.get('/reviews/:id', (_req, reply) => {
    if (mx !== undefined) reply.header('x-envoy-peer-metadata-id', mx.id).header('x-envoy-peer-metadata', mx.value);
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
    ['bare app + MX headers only', 'bare-mx'],
  ];
  // A devDependency: missing only in a node_modules installed before it was added (npm ci brings it).
  let hasFastifyMetrics = true;
  try {
    createRequire(import.meta.url).resolve('fastify-metrics');
    roles.push(['app + fastify-metrics', 'fastify-metrics']);
  } catch {
    hasFastifyMetrics = false;
    console.log('fastify-metrics is not installed (run npm ci): the row against it is not measured');
  }
  const children: [string, Child][] = [];
  try {
    pin(process.pid, LOAD_CPU);
    for (const [name, role] of roles) {
      const child = await spawnRole(FILE, role);
      pin(child.pid, SERVER_CPU);
      children.push([name, child]);
    }
    console.log(`node ${process.version}, ${CONNECTIONS} connections, ${DURATION_S}s per run, ${ROUNDS} interleaved rounds (median), 1 KB reply, MX headers on every request`);
    console.log(pinningLine());
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
    const F = 'bare app + MX headers only';
    console.log(`  floor, the MX answer headers alone / bare app: ${ratio(F, 'bare fastify app').toFixed(3)} (${(cpu.get(F)! - cpu.get('bare fastify app')!).toFixed(1)} µs CPU per request); meshtelFastify / that floor: ${ratio(M, F).toFixed(3)}`);
    if (hasFastifyMetrics) row('meshtelFastify / fastify-metrics (req/s)', ratio(M, 'app + fastify-metrics'), 1.3);
    if (hasFastifyMetrics) console.log(`  CPU per request, fastify-metrics / meshtelFastify: ${(cpu.get('app + fastify-metrics')! / cpu.get(M)!).toFixed(2)}`);
    console.log(loadAverage());
  } finally {
    for (const [, c] of children) c.kill();
  }
}

const [, , role] = process.argv;
if (role) await runRole(role);
else await main();

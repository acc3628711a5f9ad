/**
 * Memory of one sidecar (issue 16: ≤ 60 MiB idle, Envoy's figure; ≤ 90 MiB after 100k requests from 200 peers),
 * measured on the compiled package (dist/, built first when older than src/) in plain node processes: tsx's loader
 * thread would add its own ~20 MiB to every figure.
 * 1. RSS per component: one process imports, in the order a sidecar loads them, the pieces it is made of and then
 *    starts it; two forced GCs after each step; the RSS growth of each step (median of 3 processes). RSS is not
 *    additive (the first large package also pays for loader and code-space pages), so a row is what that step
 *    added after the ones above it. Below the line: what a default sidecar no longer loads (or loads only when its
 *    configuration uses it), each measured after everything above.
 * 2. `meshtel sidecar` (bin/meshtel.js, as a pod runs it) and a bare node:http pipe proxy beside it: RSS idle, then
 *    after BENCH_RSS_REQUESTS requests (default 100k) over 200 connections, each request from one of 200 distinct
 *    MX peers (200 source workloads: 200 label sets per istio_* family); current and high-water RSS.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, loadAverage } from './support/children.js';
import { median } from './support/measure.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REQUESTS = Number(process.env.BENCH_RSS_REQUESTS ?? 100_000);
const PEERS = 200;
const MiB = 1048576;

/** Build dist/ when a source file is newer than it (the figures must be of the code in this checkout). */
function ensureDist(): void {
  let newest = 0;
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(path.join(root, 'src'));
  let built = 0;
  try {
    built = statSync(path.join(root, 'dist/cli/program.js')).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= newest) return;
  console.log('dist/ is older than src/: building (tsc -p tsconfig.build.json)');
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
}

/** The component steps (bench/support/rss-steps.mjs), each with the name printed. */
const STEPS: readonly (readonly [string, string])[] = [
  ['node:http+node:https+node:http2+node:net+node:tls+node:zlib+node:cluster', 'node built-ins (http, https, http2, net, tls, zlib, cluster)'],
  ['dist/sidecar/undici-agent.js', "undici's Agent (upstream pool; src/sidecar/undici-agent.ts)"],
  ['prom-client', 'prom-client (registries, process metrics)'],
  ['protobufjs', 'protobufjs (MX Struct codec, protobuf exposition)'],
  ['@opentelemetry/api', '@opentelemetry/api (trace context)'],
  ['dist/metadata/workload.js+dist/exchange/http-exchange.js+dist/exchange/tcp-exchange.js', 'meshtel metadata + exchange'],
  ['dist/stats/istio-stats.js+dist/stats/exposition.js', 'meshtel stats (recorder, exposition)'],
  ['dist/sidecar/sidecar.js', 'meshtel sidecar modules'],
  ['start-sidecar', 'startSidecar(): listeners, agent ports, recorder'],
  ['dist/cli/program.js', 'the CLI (commander, command modules)'],
];
const NOT_LOADED: readonly (readonly [string, string])[] = [
  ['undici', "the rest of undici's index (fetch, WebSocket, cache, mock)"],
  ['mesh-schema', 'zod + the mesh schema (only with a mesh file)'],
  ['four-fastify', 'fastify, 4 instances listening (the agent ports before)'],
  ['tracing-sdk', 'OTel SDK + OTLP exporter (only with --tracing)'],
];

function runSteps(steps: readonly string[]): { step: string; rssBytes: number; heapUsedBytes: number }[] {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(root, 'bench/support/rss-steps.mjs'), ...steps], { cwd: root, encoding: 'utf8', env: { ...process.env, MESHTEL_LOG_LEVEL: 'silent' } });
  if (r.status !== 0) throw new Error(`rss-steps failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: string; rssBytes: number; heapUsedBytes: number });
}

function componentTable(): void {
  console.log('\n-- RSS per component (dist/, plain node, 2 forced GCs after each step; median of 3 processes) --');
  const all = [...STEPS, ...NOT_LOADED];
  const runs = [0, 1, 2].map(() => runSteps(all.map(([s]) => s)));
  const at = (i: number, key: 'rssBytes' | 'heapUsedBytes'): number => median(runs.map((r) => r[i]![key]));
  console.log(`${'step'.padEnd(58)} ${'RSS MiB'.padStart(8)} ${'+RSS'.padStart(7)} ${'+heap'.padStart(7)}`);
  const row = (label: string, i: number): void => {
    const d = (key: 'rssBytes' | 'heapUsedBytes'): string => (i === 0 ? '' : `+${((at(i, key) - at(i - 1, key)) / MiB).toFixed(1)}`);
    console.log(`${label.padEnd(58)} ${(at(i, 'rssBytes') / MiB).toFixed(1).padStart(8)} ${d('rssBytes').padStart(7)} ${d('heapUsedBytes').padStart(7)}`);
  };
  row('node (an empty ESM process)', 0);
  STEPS.forEach(([, label], i) => row(label, i + 1));
  console.log(`${'-- not loaded by a default sidecar (measured after all above):'.padEnd(58)}`);
  NOT_LOADED.forEach(([, label], i) => row(label, STEPS.length + 1 + i));
}

/** VmRSS and VmHWM of a process (Linux /proc), MiB. */
function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** Start a process that prints a line matching `ready` on stderr (or stdout) with its inbound port in it. */
function startProcess(args: readonly string[], env: Record<string, string>, portOf: (line: string) => number | undefined): Promise<{ cp: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const cp = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (c: string): void => {
      out += c;
      for (const line of out.split('\n')) {
        const port = portOf(line);
        if (port !== undefined) return resolve({ cp, port });
      }
    };
    cp.stdout!.setEncoding('utf8').on('data', onData);
    cp.stderr!.setEncoding('utf8').on('data', onData);
    cp.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${out}`)));
  });
}

async function processRows(): Promise<void> {
  console.log(`\n-- RSS of one proxy process: idle, then after ${REQUESTS} requests over ${PEERS} connections from ${PEERS} MX peers --`);
  const body = 'x'.repeat(1024);
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
  app.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  const { createWorkloadMetadata } = await import('../src/metadata/workload.js');
  const { createHttpMetadataExchange } = await import('../src/exchange/http-exchange.js');
  const peers = Array.from({ length: PEERS }, (_, i) => {
    const x = createHttpMetadataExchange({
      local: createWorkloadMetadata({ name: `client${i}-v1-abc`, namespace: 'default', workload: `client${i}-v1`, labels: { app: `client${i}`, version: 'v1' }, instanceIps: ['10.0.1.1'] }),
    });
    return { 'x-envoy-peer-metadata': x.headerValue, 'x-envoy-peer-metadata-id': x.headerId, host: 'reviews:9080' };
  });
  let next = 0;
  const requests = [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, headers: peers[next++ % PEERS] }) }];
  const zero = ['--outbound-port', '0', '--prometheus-port', '0', '--status-port', '0', '--health-port', '0', '--admin-port', '0'];
  const pipeScript = `
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
    const server = http.createServer((req, res) => {
      const up = http.request({ host: '127.0.0.1', port: ${appPort}, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => { res.writeHead(ur.statusCode, ur.headers); ur.pipe(res); });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    server.keepAliveTimeout = 60000;
    server.listen(0, '127.0.0.1', () => console.log('pipe ready ' + server.address().port));`;
  const configs: readonly (readonly [string, () => Promise<{ cp: ChildProcess; port: number }>])[] = [
    [
      'meshtel sidecar (bin/meshtel.js)',
      () =>
        startProcess(
          [path.join(root, 'bin/meshtel.js'), 'sidecar', '--app-port', String(appPort), '--bind', '127.0.0.1', '--inbound-port', '0', ...zero],
          { POD_NAME: 'reviews-v1-abc', POD_NAMESPACE: 'default', MESHTEL_LOG_LEVEL: 'info' },
          (line) => (line.includes('"sidecar ready"') ? (JSON.parse(line) as { ports: { inbound: number } }).ports.inbound : undefined),
        ),
    ],
    ['bare node:http pipe proxy', () => startProcess(['-e', pipeScript], {}, (line) => (/^pipe ready (\d+)/.exec(line) ? Number(/^pipe ready (\d+)/.exec(line)![1]) : undefined))],
  ];
  const results = new Map<string, { idle: number; after: number; hwm: number }>();
  try {
    for (const [name, start] of configs) {
      const { cp, port } = await start();
      try {
        await new Promise((r) => setTimeout(r, 1000));
        const idle = memoryOf(cp.pid!);
        const r = await load(port, { connections: PEERS, amount: REQUESTS, requests });
        if (r.errors > 0 || r.non2xx > 0) console.log(`  warning: ${r.errors} errors, ${r.non2xx} non-2xx`);
        await new Promise((res) => setTimeout(res, 1000));
        const after = memoryOf(cp.pid!);
        if (idle === undefined || after === undefined) {
          console.log(`${name}: no /proc on this system, RSS not measured`);
          continue;
        }
        results.set(name, { idle: idle.rss, after: after.rss, hwm: after.hwm });
        console.log(`${name.padEnd(34)} idle ${idle.rss.toFixed(1).padStart(6)} MiB   after load ${after.rss.toFixed(1).padStart(6)} MiB   high-water ${after.hwm.toFixed(1).padStart(6)} MiB   (${r.requests.total} requests)`);
      } finally {
        cp.kill('SIGTERM');
      }
    }
  } finally {
    app.close();
  }
  const m = results.get(configs[0]![0]);
  if (m) {
    const row = (label: string, value: number, goal: number): void =>
      console.log(`${label.padEnd(46)} ${value.toFixed(1).padStart(8)}  (goal <= ${goal})  ${value <= goal ? 'met' : 'NOT met'}`);
    row('RSS per sidecar, idle (MiB)', m.idle, 60);
    row('RSS per sidecar, after load (MiB)', m.after, 90);
    row('RSS per sidecar, high-water (MiB)', m.hwm, 90);
  }
  console.log(loadAverage());
}

ensureDist();
componentTable();
await processRows();

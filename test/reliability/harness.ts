/**
 * The reliability harness (issue 11, "the suite that keeps it fixed"): two real sidecars on loopback
 * (productpage → reviews) in front of an app whose faults the probes choose, and the probes themselves.
 * `reliability.test.ts` runs each probe once, small and bounded, under `npm test`; `soak.ts` (`npm run
 * soak -- --duration 10m`) repeats them for the duration and reports RSS slope, scrape size, requests
 * lost and the worst case per probe. Every probe is bounded in count and time and stops what it starts.
 */
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import { encodeStruct } from '../../src/metadata/struct-codec.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { startSidecar } from '../../src/sidecar/sidecar.js';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import type { SidecarOptions } from '../../src/sidecar/options.js';

/** What the app does with one request (chosen by the `x-fault` header the probe sets). */
export type Fault =
  /** 200 "ok". */
  | 'none'
  /** The app resets the connection before sending anything. */
  | 'reset_before_head'
  /** The app sends the head and part of the body, then resets. */
  | 'reset_during_body'
  /** The client gives up 100 ms in, while the app is still working (answers at 400 ms). */
  | 'client_abort'
  /** The app never answers: the client sidecar's route timeout fires. */
  | 'hang'
  /** The app process is down (listener closed) while the request is sent, and restarted after. */
  | 'app_down';

/** Route timeout of the client sidecar (the `hang` fault waits for it). */
export const ROUTE_TIMEOUT_MS = 1500;

/**
 * What Envoy records for each fault, per reporter: `code/flags` as the istio_* labels show them.
 * Source (client sidecar) and destination (server sidecar) each record every request exactly once.
 */
export const EXPECTED: Record<Fault, { readonly source: string; readonly destination: string }> = {
  none: { source: '200/-', destination: '200/-' },
  // Inbound: reset before the head is 503 UC; the client sidecar got a 503 answer from its upstream.
  reset_before_head: { source: '503/-', destination: '503/UC' },
  // Upstream reset mid-body: both proxies reset their downstream and flag UC (their reset, not DC).
  reset_during_body: { source: '200/UC', destination: '200/UC' },
  // The app's client left before any head: DC with code 0 on the side it left, and the cancel it caused downstream.
  client_abort: { source: '0/DC', destination: '0/DC' },
  // Route timeout: 504 UT at the source; the server sidecar sees its downstream (the client sidecar) go away.
  hang: { source: '504/UT', destination: '0/DC' },
  // The app refused the connection: 503 UF inbound (no retry for the local app), a 503 answer at the source.
  app_down: { source: '503/-', destination: '503/UF' },
};

export interface FaultyApp {
  port: number;
  /** Stop listening (connections refused) / listen again on the same port. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
  /** Requests for `/smuggled` the app received (a smuggled request got through: must stay 0). */
  seenSmuggled(): number;
}

/** The app: answers per `x-fault`. */
export async function faultyApp(): Promise<FaultyApp> {
  const hanging = new Set<http.ServerResponse>();
  let smuggled = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/smuggled') smuggled++;
    const fault = req.headers['x-fault'] as Fault | undefined;
    req.resume();
    switch (fault) {
      case 'reset_before_head':
        req.socket.destroy();
        return;
      case 'reset_during_body':
        res.writeHead(200, { 'content-length': '1000' });
        res.write('partial');
        setTimeout(() => req.socket.destroy(), 10);
        return;
      case 'client_abort':
        setTimeout(() => {
          if (!res.destroyed) res.end('late');
        }, 400);
        return;
      case 'hang':
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      default:
        res.end('ok');
    }
  };
  let server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const stop = (): Promise<void> =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return {
    port,
    kill: stop,
    async restart() {
      server = http.createServer(handler);
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    },
    close: stop,
    seenSmuggled: () => smuggled,
  };
}

export function identity(name: string, sa: string): ReturnType<typeof createWorkloadMetadata> {
  return createWorkloadMetadata({
    name: `${name}-v1-7d9f8c6b5-abcde`,
    namespace: 'default',
    workload: `${name}-v1`,
    owner: `kubernetes://apis/apps/v1/namespaces/default/deployments/${name}-v1`,
    cluster: 'Kubernetes',
    labels: { app: name, version: 'v1' },
    serviceAccount: sa,
    instanceIps: ['10.0.0.1'],
    istioVersion: '1.29.0',
  });
}

const EPHEMERAL = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 } as const;

export interface Mesh {
  app: FaultyApp;
  /** The server sidecar's TCP inbound port (to an echo app), for the TCP MX probes. */
  tcpInbound: number;
  server: Sidecar;
  client: Sidecar;
  close(): Promise<void>;
}

/** productpage (client sidecar) → reviews (server sidecar) → the faulty app, all on loopback. */
export async function startMesh(extra: Partial<SidecarOptions> = {}, own: { server?: Partial<SidecarOptions>; client?: Partial<SidecarOptions> } = {}): Promise<Mesh> {
  const app = await faultyApp();
  const echo = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const base = { env: {}, bindAddress: '127.0.0.1', ports: EPHEMERAL, reportingIntervalMs: 0, ...extra };
  const server = await startSidecar({
    ...base,
    metadata: identity('reviews', 'bookinfo-reviews'),
    app: { port: app.port },
    inboundPorts: [{ port: 0, appPort: (echo.address() as AddressInfo).port, protocol: 'tcp' }],
    mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] },
    ...own.server,
  });
  const client = await startSidecar({
    ...base,
    metadata: identity('productpage', 'bookinfo-productpage'),
    timeoutMs: ROUTE_TIMEOUT_MS,
    mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: server.ports.inbound } }] }] },
    ...own.client,
  });
  return {
    app,
    tcpInbound: server.ports.inboundPorts[0] as number,
    server,
    client,
    async close() {
      await client.close();
      await server.close();
      await app.close();
      await new Promise<void>((r) => echo.close(() => r()));
    },
  };
}

/** One request from the "app" through the client sidecar; resolves with the status, 0 for an abort or reset. */
export function request(mesh: Mesh, fault: Fault, agent: http.Agent, extraHeaders: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port: mesh.client.ports.outbound, path: '/reviews/1', agent, headers: { host: 'reviews:9080', 'x-fault': fault, ...extraHeaders } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(res.statusCode ?? 0));
        res.on('close', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    if (fault === 'client_abort') setTimeout(() => req.destroy(), 100);
    req.end();
  });
}

/** `code/flags` → count of `istio_requests_total` for one reporter, read from a sidecar's :15090. */
export async function requestTotals(sc: Sidecar, reporter: 'source' | 'destination'): Promise<Map<string, number>> {
  const body = await scrape(sc);
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (!line.startsWith('istio_requests_total{') || !line.includes(`reporter="${reporter}"`)) continue;
    const code = /response_code="([^"]*)"/.exec(line)?.[1] ?? '?';
    const flags = /response_flags="([^"]*)"/.exec(line)?.[1] ?? '?';
    const key = `${code}/${flags}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/** The whole :15090 page. */
export async function scrape(sc: Sidecar): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`);
  return res.text();
}

/** A fault plan of `n` requests with ~`share` faults spread over the five kinds (deterministic). */
export function faultPlan(n: number, share = 0.05): Fault[] {
  const kinds: Fault[] = ['reset_before_head', 'reset_during_body', 'client_abort', 'hang', 'app_down'];
  const every = Math.max(1, Math.round(1 / share));
  return Array.from({ length: n }, (_, i) => (i % every === every - 1 ? (kinds[Math.floor(i / every) % kinds.length] as Fault) : 'none'));
}

/** Expected `code/flags` totals per reporter for a plan. */
export function expectedTotals(plan: readonly Fault[], reporter: 'source' | 'destination'): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of plan) {
    const key = EXPECTED[f][reporter];
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/** Sum of a totals map. */
export function sum(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

/** Wait until `check` is true or `ms` passed. */
export async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Exact accounting: run `plan` through the mesh, `concurrency` at a time (app_down requests in their own
 * batch while the app is down), and return what each reporter recorded beside what Envoy would.
 */
export async function runAccounting(mesh: Mesh, plan: readonly Fault[], concurrency = 8): Promise<{ source: Map<string, number>; destination: Map<string, number>; worstMs: number }> {
  const before = { source: await requestTotals(mesh.client, 'source'), destination: await requestTotals(mesh.server, 'destination') };
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let worstMs = 0;
  const timed = async (f: Fault): Promise<void> => {
    const t = performance.now();
    await request(mesh, f, agent);
    worstMs = Math.max(worstMs, performance.now() - t);
  };
  try {
    const normal = plan.filter((f) => f !== 'app_down');
    const down = plan.filter((f) => f === 'app_down');
    for (let i = 0; i < normal.length; i += concurrency) await Promise.all(normal.slice(i, i + concurrency).map(timed));
    if (down.length > 0) {
      await mesh.app.kill();
      try {
        for (let i = 0; i < down.length; i += concurrency) await Promise.all(down.slice(i, i + concurrency).map(timed));
      } finally {
        await mesh.app.restart();
      }
    }
  } finally {
    agent.destroy();
  }
  // Records land when each proxy finishes its side (the server's DC comes after the client's timeout).
  const delta = (now: Map<string, number>, then: Map<string, number>): Map<string, number> => {
    const d = new Map<string, number>();
    for (const [k, v] of now) if (v - (then.get(k) ?? 0) > 0) d.set(k, v - (then.get(k) ?? 0));
    return d;
  };
  let source = new Map<string, number>();
  let destination = new Map<string, number>();
  await until(async () => {
    source = delta(await requestTotals(mesh.client, 'source'), before.source);
    destination = delta(await requestTotals(mesh.server, 'destination'), before.destination);
    return sum(source) >= plan.length && sum(destination) >= plan.length;
  }, 5000);
  return { source, destination, worstMs };
}

let collect: (() => void) | undefined;

/**
 * V8 heap in use after a full collection, MiB: what the process retains, without the garbage RSS still holds
 * (V8 and malloc keep freed pages). `gc` is exposed at run time, so no `--expose-gc` flag is needed.
 */
export function retainedHeapMiB(): number {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

/** Resident set size, MiB. */
export function rssMiB(): number {
  return process.memoryUsage().rss / (1024 * 1024);
}

/** Write raw bytes on a fresh connection and collect the reply until the peer closes (or `ms`). */
export function raw(port: number, bytes: string | Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const c = net.connect(port, '127.0.0.1', () => c.write(bytes));
    const t = setTimeout(() => c.destroy(), ms);
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('error', () => {});
    c.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(parts).toString('latin1'));
    });
  });
}

/**
 * The destination reporter's 200 count attributed to productpage-v1 (legitimate traffic keeps its identity),
 * on series that also carry every label pair of `also` (`name="value"`, e.g. the mTLS principal).
 */
export async function legitimate(mesh: Mesh, also: readonly string[] = []): Promise<number> {
  let n = 0;
  for (const line of (await scrape(mesh.server)).split('\n')) {
    if (
      line.startsWith('istio_requests_total{') &&
      line.includes('reporter="destination"') &&
      line.includes('source_workload="productpage-v1"') &&
      line.includes('response_code="200"') &&
      also.every((pair) => line.includes(pair))
    ) {
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return n;
}

/** Outcome of one hostile-input round. */
export interface HostileResult {
  /** Hostile inputs sent (requests, connections, frames). */
  readonly sent: number;
  /** Answers to the smuggling forms that were not a 400 (must be 0), and smuggled requests the app saw. */
  readonly smuggled: number;
  /** Slowloris connections still open after twice the header timeout (must be 0). */
  readonly slowlorisOpen: number;
  /** Legitimate requests sent during the attack, and how many kept status 200 and their identity. */
  readonly legit: number;
  readonly legitOk: number;
  readonly worstLegitMs: number;
  /** Median latency of a legitimate request just before the attack (same loop, same agent), and during it. */
  readonly baselineLegitMs: number;
  readonly medianLegitMs: number;
  /** Both sidecars still answer their health endpoint. */
  readonly alive: boolean;
}

const SMUGGLING = [
  'POST / HTTP/1.1\r\nhost: reviews\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: reviews\r\n\r\n',
  'POST / HTTP/1.1\r\nhost: reviews\r\ncontent-length: 5\r\ncontent-length: 40\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n',
  'POST / HTTP/1.1\r\nhost: reviews\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n',
  'POST / HTTP/1.1\r\nhost: reviews\r\ntransfer-encoding: chunked\r\n\r\n5;\x00\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n',
  'GET / HTTP/1.1\r\nhost: reviews\r\n foo: folded\r\n\r\n',
];

/**
 * Hostile input against the server sidecar's inbound (plain text: anyone in the network can reach it):
 * malformed MX, random bytes on the TCP MX port, smuggling forms and slowloris, while the app keeps
 * sending legitimate requests through its own sidecar.
 */
export async function runHostile(mesh: Mesh, opts: { slowloris: number; headerTimeoutMs: number; rounds: number }): Promise<HostileResult> {
  const inbound = mesh.server.ports.inbound;
  let sent = 0;
  let smuggled = 0;
  let legit = 0;
  let legitOk = 0;
  let worstLegitMs = 0;
  const legitBefore = await legitimate(mesh);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  // The latency legitimate requests keep is judged against the same loop just before the attack.
  // The first requests open the agent's connections and are left out.
  const baseline: number[] = [];
  for (let i = 0; i < 25; i++) {
    const t = performance.now();
    await request(mesh, 'none', agent);
    if (i >= 5) baseline.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 5));
  }
  const underAttack: number[] = [];
  let attacking = true;
  const legitLoop = (async () => {
    while (attacking) {
      const t = performance.now();
      const code = await request(mesh, 'none', agent);
      const ms = performance.now() - t;
      underAttack.push(ms);
      worstLegitMs = Math.max(worstLegitMs, ms);
      legit++;
      if (code === 200) legitOk++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  // Slowloris: partial heads held open.
  const slow: net.Socket[] = [];
  for (let i = 0; i < opts.slowloris; i++) {
    const c = net.connect(inbound, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nhost: reviews\r\nx-a: '));
    c.on('error', () => {});
    // Read (and drop) what the sidecar sends, so its 408 and FIN are seen.
    c.resume();
    slow.push(c);
    sent++;
  }
  const slowStart = Date.now();
  for (let round = 0; round < opts.rounds; round++) {
    // Malformed MX: not base64, not a Struct, over the size limit, an id without a value, a forged id.
    const forged: Record<string, string>[] = [
      { 'x-envoy-peer-metadata': '!!!not base64!!!', 'x-envoy-peer-metadata-id': 'x' },
      { 'x-envoy-peer-metadata': Buffer.from('not a protobuf struct at all').toString('base64') },
      { 'x-envoy-peer-metadata': 'A'.repeat(12 * 1024) },
      { 'x-envoy-peer-metadata-id': `sidecar~10.0.0.9~evil-${round}.default~default.svc.cluster.local` },
      { baggage: `k8s.workload.name=${'w'.repeat(2000)},k8s.namespace.name=default` },
    ];
    await Promise.all(
      forged.map(async (headers) => {
        sent++;
        await direct(inbound, { host: 'reviews', ...headers });
      }),
    );
    // Random bytes (and a valid MX magic with a lying length) on the TCP MX port.
    const magic = Buffer.from([0x3d, 0x23, 0x04, 0x67, 0xff, 0xff, 0xff, 0xf0]);
    await Promise.all([raw(mesh.tcpInbound, Buffer.concat([magic, randomBytes(512)]), 300), raw(mesh.tcpInbound, randomBytes(4096), 300)]);
    sent += 2;
    for (const form of SMUGGLING) {
      sent++;
      const reply = await raw(inbound, form, 1000);
      if (!reply.startsWith('HTTP/1.1 400 ')) smuggled++;
    }
  }
  // Slowloris connections are all closed by the header timeout.
  const slowClosed = await until(async () => slow.every((c) => c.destroyed || c.readyState === 'closed'), Math.max(0, opts.headerTimeoutMs * 2 - (Date.now() - slowStart)) + 1500);
  const slowlorisOpen = slowClosed ? 0 : slow.filter((c) => !(c.destroyed || c.readyState === 'closed')).length;
  for (const c of slow) c.destroy();
  attacking = false;
  await legitLoop;
  agent.destroy();
  smuggled += mesh.app.seenSmuggled();
  const alive = (await health(mesh.server)) && (await health(mesh.client));
  // Every legitimate 200 was attributed to productpage-v1 by the server sidecar.
  await until(async () => (await legitimate(mesh)) - legitBefore >= legitOk, 2000);
  const kept = (await legitimate(mesh)) - legitBefore;
  return { sent, smuggled, slowlorisOpen, legit, legitOk: Math.min(legitOk, kept), worstLegitMs, baselineLegitMs: median(baseline), medianLegitMs: median(underAttack), alive };
}

/**
 * Whether legitimate traffic kept its latency under the hostile probe: no request waited for a slow client's header
 * timeout, and the median stayed within ten times the same loop's median just before the attack (at least 50 ms:
 * loose, the machine may be shared).
 */
export function latencyKept(r: HostileResult, headerTimeoutMs: number): boolean {
  return r.worstLegitMs < headerTimeoutMs && r.medianLegitMs < Math.max(50, 10 * r.baselineLegitMs);
}

/** Median of `xs` (0 for none). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
  return b;
}

async function health(sc: Sidecar): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${sc.ports.health}/healthz/ready`)).status === 200;
  } catch {
    return false;
  }
}

/** One request straight to a port (a peer in the network, no sidecar of its own); the status or 0. */
function direct(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** A plain-text MX value claiming workload `spoof<i>`, every name `len` characters (under the 8 KiB MX cap at 1,000). */
export function spoofedMx(i: number, len: number): string {
  const n = `spoof${i}-`.padEnd(len, 'x');
  return encodeStruct({
    NAME: n,
    NAMESPACE: n,
    WORKLOAD_NAME: n,
    CLUSTER_ID: 'Kubernetes',
    LABELS: { 'service.istio.io/canonical-name': n, app: n, version: 'v1' },
  }).toString('base64');
}

/** One gauge or counter sample of a metric with `budget="<budget>"`, 0 when absent. */
function budgetSample(page: string, name: string, budget: string): number {
  const line = page.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`budget="${budget}"`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * Sum of `istio_requests_total` of one reporter over every series, the overflow series included (it has no
 * `reporter` label; in this mesh each sidecar reports one direction only: the server inbound, the client outbound).
 */
async function reporterTotal(sc: Sidecar, reporter: 'source' | 'destination'): Promise<number> {
  const overflow = (await scrape(sc)).split('\n').find((l) => l.startsWith('istio_requests_total{meshtel_overflow="true"}'));
  return sum(await requestTotals(sc, reporter)) + (overflow === undefined ? 0 : Number(overflow.slice(overflow.lastIndexOf(' ') + 1)));
}

/** Outcome of one spoofed-peer flood. */
export interface SpoofFloodResult {
  /** Spoofed requests sent straight to the server sidecar's inbound (one new peer each), and those answered 200. */
  readonly spoofed: number;
  readonly spoofedOk: number;
  /** Legitimate requests (productpage-v1 through its sidecar) during the flood, and those answered 200 and attributed to productpage-v1. */
  readonly legit: number;
  readonly legitOk: number;
  readonly worstLegitMs: number;
  /** Requests not answered 200 or not in istio_requests_total of each reporter they crossed (must be 0). */
  readonly lost: number;
  /** Largest :15090 page of the server sidecar seen during and after the flood, bytes; the configured page budget. */
  readonly maxPageBytes: number;
  readonly budgetBytes: number;
  /** meshtel_series_budget_used_bytes{budget="plain_text"} after, and its limit. */
  readonly plainTextUsedBytes: number;
  readonly plainTextLimitBytes: number;
  /** Growth of meshtel_series_budget_refused_total{budget="plain_text"|"exposition"} over the flood. */
  readonly refusedPlainText: number;
  readonly refusedExposition: number;
  /**
   * Spoofed series created during the flood over the four HTTP families (each family admits a label set on
   * its own; the rest of the requests went to each family's overflow series).
   */
  readonly spoofedSeriesKept: number;
  /** The legitimate peer's destination series kept its labels and counted every legitimate 200 (exact). */
  readonly legitSeriesExact: boolean;
  /** RSS of this process (both sidecars run in it) before and after, MiB. */
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  /** {@link retainedHeapMiB} before and after. */
  readonly heapBeforeMiB: number;
  readonly heapAfterMiB: number;
}

/**
 * A flood of spoofed plain-text peers (issue 11.1 as a probe): `peers` requests straight to the server
 * sidecar's inbound, each with a new MX id and value whose names are `nameLength` characters (cut to the
 * label cap), `concurrency` at a time, while the real productpage keeps calling reviews through its
 * sidecar (a known peer: its series exists before the flood). The page is sampled while the flood runs.
 * `firstPeer` keeps peers of successive rounds distinct.
 */
export async function runSpoofFlood(
  mesh: Mesh,
  opts: { peers: number; nameLength: number; concurrency: number; firstPeer?: number; legitLabels?: readonly string[] },
): Promise<SpoofFloodResult> {
  const inbound = mesh.server.ports.inbound;
  const heapBeforeMiB = retainedHeapMiB();
  const rssBeforeMiB = rssMiB();
  const legitAgent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  // The known peer's series exists before the flood, as a real peer's does.
  for (let i = 0; i < 5; i++) await request(mesh, 'none', legitAgent);
  const page0 = await scrape(mesh.server);
  const before = {
    dest: await reporterTotal(mesh.server, 'destination'),
    src: await reporterTotal(mesh.client, 'source'),
    legit: await legitimate(mesh, opts.legitLabels),
    refusedPlainText: budgetSample(page0, 'meshtel_series_budget_refused_total', 'plain_text'),
    refusedExposition: budgetSample(page0, 'meshtel_series_budget_refused_total', 'exposition'),
    spoofSeries: spoofSeries(page0),
  };
  const budgetBytes = budgetSample(page0, 'meshtel_series_budget_limit_bytes', 'exposition');
  let legit = 0;
  let legitOk = 0;
  let worstLegitMs = 0;
  let spoofedOk = 0;
  let maxPageBytes = Buffer.byteLength(page0);
  let flooding = true;
  const legitLoop = (async () => {
    while (flooding) {
      const t = performance.now();
      const code = await request(mesh, 'none', legitAgent);
      worstLegitMs = Math.max(worstLegitMs, performance.now() - t);
      legit++;
      if (code === 200) legitOk++;
    }
  })();
  const sampler = (async () => {
    while (flooding) {
      maxPageBytes = Math.max(maxPageBytes, Buffer.byteLength(await scrape(mesh.server)));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const first = opts.firstPeer ?? 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < opts.peers) {
      const i = first + next++;
      const code = await new Promise<number>((resolve) => {
        const headers = { host: 'reviews', 'x-envoy-peer-metadata-id': `sidecar~10.0.0.9~spoof${i}.default~default.svc.cluster.local`, 'x-envoy-peer-metadata': spoofedMx(i, opts.nameLength) };
        const req = http.request({ host: '127.0.0.1', port: inbound, path: '/', headers, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(0));
        });
        req.on('error', () => resolve(0));
        req.end();
      });
      if (code === 200) spoofedOk++;
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    flooding = false;
    await legitLoop;
    await sampler;
    agent.destroy();
    legitAgent.destroy();
  }
  // Every request in: each reporter it crossed recorded it once (its own series or the overflow series).
  const want = { dest: before.dest + opts.peers + legit, src: before.src + legit };
  await until(async () => (await reporterTotal(mesh.server, 'destination')) >= want.dest && (await reporterTotal(mesh.client, 'source')) >= want.src, 3000);
  const page = await scrape(mesh.server);
  maxPageBytes = Math.max(maxPageBytes, Buffer.byteLength(page));
  const dest = await reporterTotal(mesh.server, 'destination');
  const src = await reporterTotal(mesh.client, 'source');
  const lost = opts.peers - spoofedOk + (legit - legitOk) + Math.abs(want.dest - dest) + Math.abs(want.src - src);
  const legitSeriesExact = (await legitimate(mesh, opts.legitLabels)) - before.legit === legitOk;
  return {
    spoofed: opts.peers,
    spoofedOk,
    legit,
    legitOk,
    worstLegitMs,
    lost,
    maxPageBytes,
    budgetBytes,
    plainTextUsedBytes: budgetSample(page, 'meshtel_series_budget_used_bytes', 'plain_text'),
    plainTextLimitBytes: budgetSample(page, 'meshtel_series_budget_limit_bytes', 'plain_text'),
    refusedPlainText: budgetSample(page, 'meshtel_series_budget_refused_total', 'plain_text') - before.refusedPlainText,
    refusedExposition: budgetSample(page, 'meshtel_series_budget_refused_total', 'exposition') - before.refusedExposition,
    spoofedSeriesKept: spoofSeries(page) - before.spoofSeries,
    legitSeriesExact,
    rssBeforeMiB,
    rssAfterMiB: rssMiB(),
    heapBeforeMiB,
    heapAfterMiB: retainedHeapMiB(),
  };
}

/** The four families an HTTP request is recorded in (Envoy's istio_* HTTP metrics). */
export const HTTP_FAMILIES = ['istio_requests_total', 'istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes'] as const;

/** Series of spoofed peers on a page, over the four HTTP families (a histogram counted once, by its `_count`). */
function spoofSeries(page: string): number {
  let n = 0;
  for (const line of page.split('\n')) {
    if (!line.includes('source_workload="spoof')) continue;
    if (line.startsWith('istio_requests_total{') || (line.startsWith('istio_') && line.includes('_count{'))) n++;
  }
  return n;
}

/** Outcome of the security-defaults probe. */
export interface SecurityResult {
  readonly outboundBind: string;
  /** The host's non-loopback addresses tried, and those on which admin / outbound accepted a connection (must be none). */
  readonly externalAddresses: string[];
  readonly adminReachableOn: string[];
  readonly outboundReachableOn: string[];
  /** Non-loopback addresses on which :15090 accepted (Prometheus scrapes it from outside: expected all). */
  readonly inboundReachableOn: string[];
  /** Statuses of requests aimed at the admin port through the outbound listener (each must be 502). */
  readonly adminThroughProxy: number[];
  /** The sidecar still answers after a POST /quitquitquit sent through its proxy. */
  readonly aliveAfterQuit: boolean;
  /** MX headers an external (non-mesh) host received from an IN_MESH sidecar (must be 0). */
  readonly mxLeakedOutside: number;
}

/**
 * Security defaults: where the listeners bind when nothing is configured, the admin port never reached
 * through the proxy, and no metadata exchange toward hosts outside the mesh in IN_MESH mode.
 */
export async function runSecurity(): Promise<SecurityResult> {
  const external = http.createServer((req, res) => {
    if (req.headers['x-envoy-peer-metadata'] !== undefined || req.headers['x-envoy-peer-metadata-id'] !== undefined || req.headers.baggage !== undefined) leaked++;
    res.end('external');
  });
  let leaked = 0;
  await new Promise<void>((r) => external.listen(0, '127.0.0.1', r));
  const extPort = (external.address() as AddressInfo).port;
  // Defaults: no bind address given (inbound/agent ports bind as Istio's do; the outbound and admin
  // bind loopback). loopbackPassthrough only so the "external" host can live on loopback.
  const sc = await startSidecar({
    env: {},
    ports: EPHEMERAL,
    metadata: identity('productpage', 'bookinfo-productpage'),
    mxMode: 'IN_MESH',
    loopbackPassthrough: true,
    mesh: { services: [{ name: 'httpbin', hostnames: ['httpbin.org'], external: true, ports: [{ name: 'http', protocol: 'http', port: 80 }], endpoints: [{ address: '127.0.0.1', ports: { http: extPort } }] }] },
  });
  try {
    const adminThroughProxy: number[] = [];
    const via = (host: string, method = 'GET', path = '/config_dump'): Promise<number> =>
      new Promise((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: sc.ports.outbound, method, path, headers: { host }, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.end();
      });
    for (const host of [`127.0.0.1:${sc.ports.admin}`, `localhost:${sc.ports.admin}`, `[::1]:${sc.ports.admin}`, `127.0.0.2:${sc.ports.admin}`]) adminThroughProxy.push(await via(host));
    adminThroughProxy.push(await via(`127.0.0.1:${sc.ports.admin}`, 'POST', '/quitquitquit'));
    await new Promise((r) => setTimeout(r, 100));
    const aliveAfterQuit = await health(sc);
    // IN_MESH: a passthrough host and an external registry service get no MX header.
    await via(`127.0.0.1:${extPort}`, 'GET', '/');
    await via('httpbin.org', 'GET', '/');
    const externalAddresses = Object.values(os.networkInterfaces())
      .flat()
      .filter((i): i is os.NetworkInterfaceInfo => i !== undefined && !i.internal && i.family === 'IPv4')
      .map((i) => i.address);
    const reachable = async (port: number): Promise<string[]> => (await Promise.all(externalAddresses.map(async (a) => ((await accepts(a, port)) ? a : '')))).filter((a) => a !== '');
    return {
      outboundBind: sc.options.outboundBindAddress,
      externalAddresses,
      adminReachableOn: await reachable(sc.ports.admin),
      outboundReachableOn: await reachable(sc.ports.outbound),
      inboundReachableOn: await reachable(sc.ports.prometheus),
      adminThroughProxy,
      aliveAfterQuit,
      mxLeakedOutside: leaked,
    };
  } finally {
    await sc.close();
    await new Promise<void>((r) => external.close(() => r()));
  }
}

/** Whether `address:port` accepts a TCP connection (within 1 s). */
function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: address, port, timeout: 1000 });
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('timeout', () => (c.destroy(), resolve(false)));
    c.once('error', () => resolve(false));
  });
}

/** `30s`, `10m`, `2h`, `1500ms` or a number of seconds → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`--duration: expected a duration like 30s, 10m or 2h, got "${text}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
}

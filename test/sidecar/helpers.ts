/**
 * A small loopback mesh for the sidecar tests: apps on ephemeral ports, each with its own sidecar,
 * and helpers to read exact series from a sidecar's :15090.
 */
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import type { WorkloadMetadata } from '../../src/metadata/types.js';
import { startSidecar } from '../../src/sidecar/sidecar.js';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import type { SidecarOptions } from '../../src/sidecar/options.js';
import { silentLogger } from '../../src/core/logger.js';
import { createHttpProxyHandler } from '../../src/sidecar/http-proxy.js';
import { createProxyRefusals } from '../../src/sidecar/listener-limits.js';
import { createReportingTicker } from '../../src/sidecar/reporting-ticker.js';
import { createSidecarTelemetry } from '../../src/sidecar/telemetry-binding.js';
import { createUpstreamPool } from '../../src/sidecar/upstream.js';
import { mintCertificates } from '../../src/sidecar/certs.js';
import type { MintedWorkload } from '../../src/sidecar/certs.js';

/** Every port on 0, every listener on loopback. */
export const EPHEMERAL = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 } as const;

/** Bookinfo-like identities. */
export function workload(name: string, sa: string, version = 'v1', extra: Record<string, string> = {}): WorkloadMetadata {
  return createWorkloadMetadata({
    name: `${name}-${version}-7d9f8c6b5-abcde`,
    namespace: 'default',
    workload: `${name}-${version}`,
    owner: `kubernetes://apis/apps/v1/namespaces/default/deployments/${name}-${version}`,
    cluster: 'Kubernetes',
    labels: { app: name, version, ...extra },
    serviceAccount: sa,
    instanceIps: ['10.0.0.1'],
    istioVersion: '1.29.0',
  });
}

/**
 * Start a sidecar on loopback with ephemeral ports. Loopback passthrough is on: the tests' "external"
 * hosts are loopback servers too (the default refusal is tested in test/sidecar/security.test.ts).
 */
export async function sidecar(options: SidecarOptions): Promise<Sidecar> {
  return startSidecar({ env: {}, bindAddress: '127.0.0.1', ports: EPHEMERAL, reportingIntervalMs: 0, loopbackPassthrough: true, ...options });
}

/** A request as the app saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP/1.1 app that records what it saw and answers `handler`'s reply (default 200 "ok"). */
export async function httpApp(
  handler?: (req: SeenRequest, res: http.ServerResponse) => void,
): Promise<{ port: number; seen: SeenRequest[]; server: http.Server; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(r);
      if (handler) handler(r, res);
      else res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A response as the client saw it. */
export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request from the "app" to a port (its sidecar's outbound, or directly). */
export function send(
  port: number,
  options: { path?: string; method?: string; host?: string; headers?: Record<string, string>; body?: string; agent?: http.Agent | false } = {},
): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { ...(options.host ? { host: options.host } : {}), ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** GET a URL and return status, content type and body. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** The exposition lines of one metric family from a sidecar's :15090, sorted. */
export async function series(sc: Sidecar, name: string): Promise<string[]> {
  const { body } = await get(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`);
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .sort();
}

/** Poll until `check` passes (stats are recorded when the response finishes on the proxy side). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      last = err;
      if (Date.now() > deadline) throw last;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Render a label set in Envoy's tag order as the expected exposition prefix. */
export function labels(pairs: ReadonlyArray<readonly [string, string]>): string {
  return `{${pairs.map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

/** Labels of productpage-v1 → reviews-v1 in Envoy's HTTP tag order, plain text, as both reporters emit them. */
export function bookinfoLabels(reporter: 'source' | 'destination', overrides: Record<string, string> = {}): string {
  const base: Array<[string, string]> = [
    ['reporter', reporter],
    ['source_workload', 'productpage-v1'],
    ['source_canonical_service', 'productpage'],
    ['source_canonical_revision', 'v1'],
    ['source_workload_namespace', 'default'],
    ['source_principal', 'unknown'],
    ['source_app', 'productpage'],
    ['source_version', 'v1'],
    ['source_cluster', 'Kubernetes'],
    ['destination_workload', 'reviews-v1'],
    ['destination_workload_namespace', 'default'],
    // Without TLS neither reporter knows a principal: a 1.29 sidecar's MX carries no IDENTITY (issue 10.1).
    ['destination_principal', 'unknown'],
    ['destination_app', 'reviews'],
    ['destination_version', 'v1'],
    ['destination_service', 'reviews.default.svc.cluster.local'],
    ['destination_canonical_service', 'reviews'],
    ['destination_canonical_revision', 'v1'],
    ['destination_service_name', 'reviews'],
    ['destination_service_namespace', 'default'],
    ['destination_cluster', 'Kubernetes'],
    ['request_protocol', 'http'],
    ['response_code', '200'],
    ['grpc_response_status', ''],
    ['response_flags', '-'],
    ['connection_security_policy', reporter === 'source' ? 'unknown' : 'none'],
  ];
  for (const [k, v] of Object.entries(overrides)) {
    const entry = base.find((e) => e[0] === k);
    if (!entry) throw new Error(`no label ${k}`);
    entry[1] = v;
  }
  return labels(base);
}

/** The mesh a productpage sidecar sees: reviews (http 9080) served by the given inbound port. */
export function reviewsMesh(inboundPort: number, extra: Record<string, unknown> = {}): SidecarOptions['mesh'] {
  return {
    services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: inboundPort } }], ...extra }],
  };
}

/** Close functions a test file registers; its `afterEach` pops and awaits them, last started first closed. */
export type Cleanups = Array<() => Promise<void>>;

/** An app started by {@link httpApp}. */
export type HttpApp = Awaited<ReturnType<typeof httpApp>>;

/**
 * The server half of the bookinfo pair: an HTTP/1.1 app answering `handler` (default 200 "ok") behind the
 * reviews-v1 sidecar, whose mesh declares the reviews service (http 9080). Both are registered in `cleanups`.
 */
export async function reviewsServer(cleanups: Cleanups, handler?: Parameters<typeof httpApp>[0]): Promise<{ app: HttpApp; server: Sidecar }> {
  const app = await httpApp(handler);
  cleanups.push(app.close);
  const server = await sidecar({
    metadata: workload('reviews', 'bookinfo-reviews'),
    app: { port: app.port },
    mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] },
  });
  cleanups.push(server.close);
  return { app, server };
}

/** The client half: the productpage-v1 sidecar with `mesh` and any other options, registered in `cleanups`. */
export async function productpageClient(cleanups: Cleanups, mesh: SidecarOptions['mesh'], extra: Partial<SidecarOptions> = {}): Promise<Sidecar> {
  const client = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), mesh, ...extra });
  cleanups.push(client.close);
  return client;
}

/** {@link reviewsServer} with its default app, and a productpage sidecar whose mesh routes reviews to it. */
export async function bookinfoPair(cleanups: Cleanups, clientOptions: Partial<SidecarOptions> = {}): Promise<{ app: HttpApp; server: Sidecar; client: Sidecar }> {
  const { app, server } = await reviewsServer(cleanups);
  const client = await productpageClient(cleanups, reviewsMesh(server.ports.inbound), clientOptions);
  return { app, server, client };
}

/** A loopback port nothing listens on. */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The refusal count of one listener role and reason (0 when the series does not exist yet). */
export async function refused(sc: Sidecar, listener: string, reason: string): Promise<number> {
  const line = (await series(sc, 'meshtel_proxy_refused_total')).find((l) => l.includes(`listener="${listener}"`) && l.includes(`reason="${reason}"`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Write `request` on a fresh connection and collect everything until the sidecar closes it. */
export function rawExchange(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const c = net.connect(port, '127.0.0.1', () => c.write(request));
    c.on('data', (d: Buffer) => parts.push(d));
    // The sidecar may close while the client still writes (header overflow): what it sent counts.
    c.on('error', () => {});
    c.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
  });
}

/**
 * Sum of `istio_requests_total` on a sidecar over the series whose labels contain every `key="value"` of
 * `match` (e.g. `{ reporter: 'destination', response_code: '400' }`).
 */
export async function requestCount(sc: Sidecar, match: Record<string, string> = {}): Promise<number> {
  let n = 0;
  for (const line of await series(sc, 'istio_requests_total')) {
    if (Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

/**
 * A proxy handler built outside a sidecar (createHttpProxyHandler with hand-made parts), served on a
 * loopback port; closes the server, the pool and the telemetry with `cleanups`.
 */
export async function serveHandler(
  cleanups: Cleanups,
  options: Omit<Parameters<typeof createHttpProxyHandler>[0], 'telemetry' | 'pool' | 'ticker' | 'logger'>,
): Promise<{ port: number; telemetry: ReturnType<typeof createSidecarTelemetry> }> {
  const telemetry = createSidecarTelemetry({ local: workload('productpage', 'bookinfo-productpage'), nodeId: 'sidecar~10.0.0.1~productpage-v1.default~default.svc.cluster.local', enabled: true });
  const pool = createUpstreamPool();
  // Refusals count in the same registry as the records, as in a sidecar.
  const refusals = createProxyRefusals(telemetry.registry);
  const handler = createHttpProxyHandler({ refusals, ...options, telemetry, pool, ticker: createReportingTicker(0), logger: silentLogger });
  const server = http.createServer(handler as http.RequestListener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await pool.close();
    telemetry.close();
  });
  return { port: (server.address() as AddressInfo).port, telemetry };
}

/** Workload certificates for `default`-namespace service accounts, minted into `dir` (one CA), in the order given. */
export function mintDefaultWorkloads(dir: string, ...serviceAccounts: string[]): readonly MintedWorkload[] {
  return mintCertificates({ outDir: dir, workloads: serviceAccounts.map((serviceAccount) => ({ namespace: 'default', serviceAccount })) }).workloads;
}

/** A TCP exchange as Istio's Go driver makes it (driver.TCPConnection): write `text`, read one line back, close. */
export function tcpLine(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.endsWith('\n')) s.end();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

/** An h2c app that counts the requests it saw, behind a reviews sidecar whose inbound speaks h2c. */
export async function h2Reviews(cleanups: Cleanups, limits: { maxRequestHeadersBytes?: number; maxRequestHeadersCount?: number } = {}): Promise<{ port: number; seen: () => number; sc: Awaited<ReturnType<typeof sidecar>> }> {
  let seen = 0;
  const app = http2.createServer((_req, res) => {
    seen++;
    res.end('ok');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => app.close(() => r())));
  const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: (app.address() as AddressInfo).port, protocol: 'http2' }, limits });
  cleanups.push(sc.close);
  return { port: sc.ports.inbound, seen: () => seen, sc };
}

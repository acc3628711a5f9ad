/**
 * The endpoints Envoy and pilot-agent expose beside the traffic listeners (spec §6):
 * - `:15090/stats/prometheus`: the proxy's own metrics (Envoy's `prometheus_stats` listener).
 * - `:15020/stats/prometheus` and `/metrics`: pilot-agent's merged scrape: agent metrics, then the
 *   proxy, then the app (istio/istio `pilot/cmd/pilot-agent/status/server.go` `handleStats`). Unlike
 *   pilot-agent, every part is written in the format the scraper negotiated (the app's page is parsed and
 *   re-rendered, see merged-scrape.ts) with one `# EOF` at the end in OpenMetrics; the app's page is
 *   bounded (10 MiB by default); scrape errors and refused pages are counted, never fatal to the page.
 * - `:15021/healthz/ready`: 200 with an empty body once the listeners are up, sticky
 *   (`pilot/cmd/pilot-agent/status/ready/probe.go`), 503 before.
 * - `:15000` admin, bound to 127.0.0.1 only: `/config_dump`, `/stats`, `/quitquitquit`, and meshtel's live
 *   request tap `/tap` (src/core/tap.ts; not in Envoy).
 */
import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { Counter, Registry } from 'prom-client';
import { ConfigError, quote } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { createTapHandler } from '../record/tap.js';
import type { TapLocal } from '../record/tap.js';
import { acceptsGzip, streamBody } from '../stats/exposition.js';
import { PROMETHEUS_TEXT_CONTENT_TYPE, contentTypeOf, formatOfContentType, negotiateFormat } from '../stats/media-types.js';
import type { ExpositionFormat } from '../stats/media-types.js';
import { convertPage, withoutEof } from './merged-scrape.js';
import { listenAgent, send, sendJson, sendStream } from './agent-http.js';
import type { AgentHandler, AgentRoutes, AgentServer } from './agent-http.js';
import type { ProxyMetricsRenderer } from './telemetry-contract.js';

/** `ISTIO_PROMETHEUS_ANNOTATIONS` as the injector writes it (`{"scrape","path","port"}`). */
export interface PrometheusScrapeConfig {
  readonly scrape: boolean;
  readonly path: string;
  readonly port: number;
}

export { PROMETHEUS_TEXT_CONTENT_TYPE };

/**
 * Parse `ISTIO_PROMETHEUS_ANNOTATIONS`. Defaults are path `/metrics` and port 80; a port equal to the
 * status port is refused (it would scrape itself). Throws MESHTEL_ERR_INVALID_CONFIG.
 */
export function parsePrometheusAnnotations(raw: string | undefined, statusPort: number): PrometheusScrapeConfig | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `ISTIO_PROMETHEUS_ANNOTATIONS is not JSON: ${quote(raw)}`, { field: 'ISTIO_PROMETHEUS_ANNOTATIONS', value: raw }, { cause: err });
  }
  const o = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  const scrape = String(o.scrape ?? 'true').toLowerCase() !== 'false';
  const path = typeof o.path === 'string' && o.path !== '' ? o.path : '/metrics';
  const port = o.port === undefined || o.port === '' ? 80 : Number(o.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `ISTIO_PROMETHEUS_ANNOTATIONS port must be a port number, got ${quote(o.port)}`, { field: 'ISTIO_PROMETHEUS_ANNOTATIONS.port', value: o.port });
  }
  if (port === statusPort && statusPort !== 0) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `ISTIO_PROMETHEUS_ANNOTATIONS port ${port} is the status port itself`, { field: 'ISTIO_PROMETHEUS_ANNOTATIONS.port', value: port });
  }
  return Object.freeze({ scrape, path: path.startsWith('/') ? path : `/${path}`, port });
}

/** Options of {@link startAgentEndpoints}. */
export interface AgentEndpointsOptions {
  readonly bindAddress: string;
  readonly ports: { readonly prometheus: number; readonly status: number; readonly health: number; readonly admin: number };
  /** The proxy registry (flat /stats on the admin port). */
  readonly proxyRegistry: Registry;
  /** Renders the proxy metrics (served on 15090 and merged on 15020). */
  readonly renderProxy: ProxyMetricsRenderer;
  /** Where the app's metrics are, when merging is on. */
  readonly appScrape?: PrometheusScrapeConfig;
  readonly appHost: string;
  /** Largest app page merged (default {@link DEFAULT_MAX_APP_SCRAPE_BYTES}); a larger one is refused and counted. */
  readonly maxAppScrapeBytes?: number;
  /** True once the traffic listeners are up. */
  readonly isReady: () => boolean;
  /** `/config_dump` body. */
  readonly configDump: () => unknown;
  /** Admin `/stats` body; by default the flat form of `proxyRegistry` (the primary of `--concurrency N` merges its workers'). */
  readonly flatStats?: () => Promise<string>;
  /** `/quitquitquit`: shut the sidecar down. */
  readonly quit: () => void;
  /** The workload whose requests `/tap` on the admin port streams; no `/tap` without it. */
  readonly tap?: TapLocal;
  readonly logger: Logger;
}

/** The running endpoint servers. */
export interface AgentEndpoints {
  readonly ports: { readonly prometheus: number; readonly status: number; readonly health: number; readonly admin: number };
  /** pilot-agent's own registry (`istio_agent_*`). */
  readonly agentRegistry: Registry;
  close(): Promise<void>;
}

/** Start the four endpoint servers. */
export async function startAgentEndpoints(options: AgentEndpointsOptions): Promise<AgentEndpoints> {
  const agentRegistry = new Registry();
  const scrapes = new Counter({ name: 'istio_agent_scrapes_total', help: 'The total number of scrapes.', registers: [agentRegistry] });
  const failures = new Counter({
    name: 'istio_agent_scrape_failures_total',
    help: 'The total number of failed scrapes.',
    labelNames: ['type'],
    registers: [agentRegistry],
  });
  // Readiness is sticky: once ready, a later blip does not fail the probe (ready/probe.go).
  let ready = false;
  const isReady = (): boolean => (ready ||= options.isReady());

  const rejected = new Counter({
    name: 'meshtel_app_scrape_rejected_total',
    help: 'App metric pages left out of the merged :15020 scrape (agent and proxy metrics are still served), by reason: too_large (over the page bound), invalid (not parseable in the format its Content-Type declares).',
    labelNames: ['reason'],
    registers: [agentRegistry],
  });
  const maxAppBytes = options.maxAppScrapeBytes ?? DEFAULT_MAX_APP_SCRAPE_BYTES;
  const NONE: Buffer = Buffer.alloc(0);
  const appFailed = (reason: string, fields: Record<string, unknown> = {}): Buffer => {
    failures.inc({ type: 'application' });
    if (reason === 'too_large' || reason === 'invalid') rejected.inc({ reason });
    options.logger.warnOnce(`app-scrape-${reason}`, 'app metrics left out of the merged scrape', { reason, ...fields });
    return NONE;
  };
  /**
   * Scrape the app with the scraper's Accept, user agent and timeout, read at most `maxAppBytes` (a page
   * over the bound is refused whole, not cut: a cut page would lose series silently), and return it in
   * `format` (text 0.0.4, OpenMetrics or protobuf, whichever the app wrote), or nothing when it failed
   * (counted, never thrown).
   */
  const scrapeApp = (app: PrometheusScrapeConfig, headers: Record<string, string | string[] | undefined>, format: ExpositionFormat): Promise<Buffer> =>
    new Promise((resolve) => {
      const fwd: Record<string, string> = {};
      for (const h of ['accept', 'user-agent', 'x-prometheus-scrape-timeout-seconds']) {
        const v = headers[h];
        if (typeof v === 'string') fwd[h] = v;
      }
      const timeoutS = Number(fwd['x-prometheus-scrape-timeout-seconds']);
      const timeoutMs = Number.isFinite(timeoutS) && timeoutS > 0 ? timeoutS * 1000 : 10_000;
      let done = false;
      const finish = (body: Buffer): void => {
        done = true;
        clearTimeout(timer);
        resolve(body);
      };
      // Counted once per scrape, whichever of the response, the socket and the timer fails first.
      const fail = (reason: string, fields: Record<string, unknown>): void => {
        if (!done) finish(appFailed(reason, fields));
      };
      // node:http, not undici's request(): the sidecar loads only undici's Agent (undici-agent.ts).
      const req = http.get({ host: options.appHost, port: app.port, path: app.path, headers: fwd, agent: false }, (res) => {
        res.on('error', (err) => fail('unreachable', { err }));
        if (res.statusCode !== 200) {
          res.destroy();
          return fail('status', { status: res.statusCode });
        }
        const declared = Number(res.headers['content-length']);
        if (declared > maxAppBytes) {
          res.destroy();
          return fail('too_large', { bytes: declared, limit: maxAppBytes });
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxAppBytes) {
            res.destroy();
            return fail('too_large', { bytes: size, limit: maxAppBytes });
          }
          chunks.push(c);
        });
        res.on('end', () => {
          if (done) return;
          const contentType = res.headers['content-type'];
          const from = formatOfContentType(contentType);
          if (from === undefined) return fail('invalid', { contentType });
          const converted = convertPage(Buffer.concat(chunks), from, format);
          if (converted.ok) finish(converted.body);
          else fail('invalid', { format: from, at: converted.reason });
        });
      });
      req.on('error', (err) => fail('unreachable', { err }));
      const timer = setTimeout(() => {
        fail('unreachable', { err: new Error(`no complete page within ${timeoutMs} ms`) });
        req.destroy();
      }, timeoutMs);
    });
  const proxyText = async (): Promise<string> => {
    const parts: Buffer[] = [];
    for await (const c of options.renderProxy(undefined).body) parts.push(c);
    return Buffer.concat(parts).toString('utf8');
  };

  const servers: AgentServer[] = [];
  const start = async (name: string, host: string, port: number, routes: AgentRoutes): Promise<number> => {
    const server = await listenAgent(name, host, port, routes);
    servers.push(server);
    return server.port;
  };
  const healthz: AgentHandler = (_req, res) => send(res, isReady() ? 200 : 503, 'text/plain; charset=utf-8', '');
  try {
    // --- 15090: Envoy's listener serves text or, when Prometheus asks for it, OpenMetrics; streamed, gzip when asked.
    const prometheusPort = await start('prometheus', options.bindAddress, options.ports.prometheus, {
      '/stats/prometheus': {
        GET: (req, res) => {
          const r = options.renderProxy(req.headers.accept);
          sendChunks(res, r.contentType, r.body, req.headers['accept-encoding']);
        },
      },
    });

    // --- 15021 ---
    const healthPort = await start('health', options.bindAddress, options.ports.health, { '/healthz/ready': { GET: healthz } });

    // --- 15020 ---
    const merged: AgentHandler = async (req, res) => {
      scrapes.inc();
      // One format for the whole page: what the scraper asked for. Every part not already in it is
      // parsed and re-rendered, so an OpenMetrics app no longer turns the agent and proxy parts invalid.
      const format = negotiateFormat(req.headers.accept);
      let agentPart: Buffer = NONE;
      try {
        const converted = convertPage(Buffer.from(await agentRegistry.metrics(), 'utf8'), 'text', format);
        if (!converted.ok) failures.inc({ type: 'agent' });
        else agentPart = converted.body;
      } catch {
        failures.inc({ type: 'agent' });
      }
      const appPart = options.appScrape?.scrape ? await scrapeApp(options.appScrape, req.headers, format) : NONE;
      // Order as server.go writes it: agent, Envoy, then the app; one `# EOF` at the very end.
      const proxy = options.renderProxy(req.headers.accept);
      const proxyFormat = formatOfContentType(proxy.contentType);
      async function* body(): AsyncGenerator<Buffer> {
        yield agentPart;
        try {
          if (proxyFormat === format) {
            // The proxy part is streamed chunk by chunk from the stats stage, never joined into one string.
            let last: Buffer | undefined;
            for await (const c of format === 'openmetrics' ? withoutEof(proxy.body) : proxy.body) {
              if (c.length > 0) last = c;
              yield c;
            }
            if (format !== 'protobuf' && last !== undefined && last[last.length - 1] !== 0x0a) yield Buffer.from('\n');
          } else {
            // Telemetry off: prom-client renders the proxy registry in one text format only.
            const parts: Buffer[] = [];
            for await (const c of proxy.body) parts.push(c);
            const converted = proxyFormat === undefined ? undefined : convertPage(Buffer.concat(parts), proxyFormat, format);
            if (converted?.ok !== true) failures.inc({ type: 'envoy' });
            else yield converted.body;
          }
        } catch {
          failures.inc({ type: 'envoy' });
        }
        yield appPart;
        if (format === 'openmetrics') yield Buffer.from('# EOF\n');
      }
      sendChunks(res, contentTypeOf(format), body(), req.headers['accept-encoding']);
    };
    const statusPort = await start('status', options.bindAddress, options.ports.status, {
      '/stats/prometheus': { GET: merged },
      '/metrics': { GET: merged },
      '/healthz/ready': { GET: healthz },
    });

    // --- 15000, localhost only ---
    const adminRoutes: Record<string, Partial<Record<'GET' | 'POST', AgentHandler>>> = {
      '/config_dump': { GET: async (_req, res) => sendJson(res, 200, await options.configDump()) },
      '/stats': { GET: async (_req, res) => send(res, 200, 'text/plain; charset=utf-8', await (options.flatStats ?? (() => flatStats(options.proxyRegistry)))()) },
      '/stats/prometheus': { GET: async (_req, res) => send(res, 200, PROMETHEUS_TEXT_CONTENT_TYPE, await proxyText()) },
      '/ready': { GET: (_req, res) => send(res, isReady() ? 200 : 503, 'text/plain; charset=utf-8', isReady() ? 'LIVE\n' : 'PRE_INITIALIZING\n') },
      '/quitquitquit': {
        POST: (_req, res) => {
          // Answer first, then shut down (Envoy replies "OK" before exiting).
          res.once('finish', () => setImmediate(options.quit));
          send(res, 200, 'text/plain; charset=utf-8', 'OK\n');
        },
      },
    };
    if (options.tap) {
      const tap = createTapHandler({ local: options.tap, registry: options.proxyRegistry });
      adminRoutes['/tap'] = { GET: (req, res) => tap(req, res) };
    }
    const adminPort = await start('admin', '127.0.0.1', options.ports.admin, adminRoutes);

    return {
      ports: { prometheus: prometheusPort, status: statusPort, health: healthPort, admin: adminPort },
      agentRegistry,
      close: async () => {
        await Promise.all(servers.map((s) => s.close()));
      },
    };
  } catch (err) {
    await Promise.all(servers.map((s) => s.close().catch(() => {})));
    options.logger.error('agent endpoints failed to start', { err });
    throw err;
  }
}

/** Default bound of the app's page in the merged scrape: 10 MiB, as pilot-agent caps it. */
export const DEFAULT_MAX_APP_SCRAPE_BYTES = 10 * 1024 * 1024;

/** Send a chunk stream as the response body, gzip-compressed when the scraper accepts it. */
function sendChunks(res: ServerResponse, contentType: string, chunks: AsyncIterable<Buffer>, acceptEncoding: string | string[] | undefined): void {
  const gzip = acceptsGzip(acceptEncoding);
  sendStream(res, gzip ? { 'content-type': contentType, 'content-encoding': 'gzip' } : { 'content-type': contentType }, streamBody(chunks, gzip));
}

/**
 * Envoy admin `/stats` style: one `name.tag.value...: value` line per counter and gauge series (the
 * flat form Envoy prints, e.g. `istiocustom.istio_requests_total.reporter.destination...: 2`).
 * Histograms are left to /stats/prometheus.
 */
export async function flatStats(registry: Pick<Registry, 'getMetricsAsJSON'>): Promise<string> {
  const metrics = await registry.getMetricsAsJSON();
  const lines: string[] = [];
  for (const m of metrics) {
    const type = String(m.type);
    if (type !== 'counter' && type !== 'gauge') continue;
    const prefix = m.name.startsWith('istio_') ? `istiocustom.${m.name}` : m.name;
    for (const v of m.values) {
      let name = prefix;
      for (const [k, lv] of Object.entries(v.labels)) name += `.${k}.${String(lv)}`;
      lines.push(`${name}: ${v.value}`);
    }
  }
  lines.sort();
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/**
 * The endpoints Envoy and pilot-agent expose beside the traffic listeners (spec §6):
 * - `:15090/stats/prometheus`: the proxy's own metrics (Envoy's `prometheus_stats` listener).
 * - `:15020/stats/prometheus` and `/metrics`: pilot-agent's merged scrape: agent metrics, then the
 *   proxy, then the app **last** so an OpenMetrics `# EOF` ends the body; Content-Type follows the
 *   app; scrape errors are swallowed and counted (istio/istio `pilot/cmd/pilot-agent/status/server.go`
 *   `handleStats`).
 * - `:15021/healthz/ready`: 200 with an empty body once the listeners are up, sticky
 *   (`pilot/cmd/pilot-agent/status/ready/probe.go`), 503 before.
 * - `:15000` admin, bound to 127.0.0.1 only: `/config_dump`, `/stats`, `/quitquitquit`, and meshtel's live
 *   request tap `/tap` (src/core/tap.ts; not in Envoy).
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Counter, Registry } from 'prom-client';
import { request } from 'undici';
import { ConfigError, quote } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { createTapHandler } from '../core/tap.js';
import type { TapLocal } from '../core/tap.js';
import { PROMETHEUS_TEXT_CONTENT_TYPE, acceptsGzip, streamBody } from '../stats/exposition.js';
import type { ProxyMetricsRenderer } from './telemetry.js';

/** `ISTIO_PROMETHEUS_ANNOTATIONS` as the injector writes it (`{"scrape","path","port"}`). */
export interface PrometheusScrapeConfig {
  readonly scrape: boolean;
  readonly path: string;
  readonly port: number;
}

export { PROMETHEUS_TEXT_CONTENT_TYPE };
/** OpenMetrics content types pilot-agent passes through when the app answers with them. */
const OPENMETRICS_PREFIX = 'application/openmetrics-text';

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
  /** True once the traffic listeners are up. */
  readonly isReady: () => boolean;
  /** `/config_dump` body. */
  readonly configDump: () => unknown;
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

  const servers: FastifyInstance[] = [];
  const start = async (app: FastifyInstance, host: string, port: number, name: string): Promise<number> => {
    servers.push(app);
    try {
      await app.listen({ host, port });
    } catch (err) {
      throw new ConfigError('MESHTEL_ERR_LISTEN', `${name} endpoint cannot bind ${host}:${port}: ${(err as Error).message}`, { listener: name, host, port }, { cause: err });
    }
    const addr = app.server.address();
    return typeof addr === 'object' && addr !== null ? addr.port : port;
  };
  const proxyText = async (): Promise<string> => {
    const parts: Buffer[] = [];
    for await (const c of options.renderProxy(undefined).body) parts.push(c);
    return Buffer.concat(parts).toString('utf8');
  };

  try {
    // --- 15090 ---
    const prom = Fastify({ logger: false });
    prom.get('/stats/prometheus', async (req, reply) => {
      // Envoy's listener serves text or, when Prometheus asks for it, OpenMetrics; streamed, gzip when asked.
      const r = options.renderProxy(req.headers.accept);
      reply.header('content-type', r.contentType);
      return sendStream(reply, r.body, req.headers['accept-encoding']);
    });
    const prometheusPort = await start(prom, options.bindAddress, options.ports.prometheus, 'prometheus');

    // --- 15021 ---
    const health = Fastify({ logger: false });
    health.get('/healthz/ready', async (_req, reply) => reply.code(isReady() ? 200 : 503).send(''));
    const healthPort = await start(health, options.bindAddress, options.ports.health, 'health');

    // --- 15020 ---
    const status = Fastify({ logger: false });
    const merged = async (req: { headers: Record<string, string | string[] | undefined> }, reply: FastifyReply): Promise<FastifyReply> => {
      scrapes.inc();
      let agentText = '';
      try {
        agentText = await agentRegistry.metrics();
      } catch {
        failures.inc({ type: 'agent' });
      }
      let appText = '';
      let contentType = PROMETHEUS_TEXT_CONTENT_TYPE;
      const app = options.appScrape;
      if (app?.scrape) {
        const fwd: Record<string, string> = {};
        for (const h of ['accept', 'user-agent', 'x-prometheus-scrape-timeout-seconds']) {
          const v = req.headers[h];
          if (typeof v === 'string') fwd[h] = v;
        }
        const timeoutS = Number(fwd['x-prometheus-scrape-timeout-seconds']);
        const timeoutMs = Number.isFinite(timeoutS) && timeoutS > 0 ? timeoutS * 1000 : 10_000;
        try {
          const res = await request(`http://${options.appHost}:${app.port}${app.path}`, { headers: fwd, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
          const body = await res.body.text();
          if (res.statusCode !== 200) {
            failures.inc({ type: 'application' });
          } else {
            appText = body;
            const ct = res.headers['content-type'];
            const ctStr = Array.isArray(ct) ? ct[0] : ct;
            if (ctStr?.startsWith(OPENMETRICS_PREFIX)) contentType = ctStr;
          }
        } catch {
          failures.inc({ type: 'application' });
        }
      }
      reply.header('content-type', contentType);
      // Plain concatenation, app last (server.go writes agent, Envoy, then the app). The proxy part is
      // streamed chunk by chunk from the stats stage, never joined into one string.
      const sep = (s: string): string => (s === '' || s.endsWith('\n') ? s : `${s}\n`);
      const proxy = options.renderProxy(undefined).body;
      async function* body(): AsyncGenerator<Buffer> {
        yield Buffer.from(sep(agentText), 'utf8');
        let last: Buffer | undefined;
        try {
          for await (const c of proxy) {
            if (c.length > 0) last = c;
            yield c;
          }
        } catch {
          failures.inc({ type: 'envoy' });
        }
        if (last !== undefined && last[last.length - 1] !== 0x0a) yield Buffer.from('\n');
        yield Buffer.from(appText, 'utf8');
      }
      return sendStream(reply, body(), req.headers['accept-encoding']);
    };
    status.get('/stats/prometheus', merged);
    status.get('/metrics', merged);
    status.get('/healthz/ready', async (_req, reply) => reply.code(isReady() ? 200 : 503).send(''));
    const statusPort = await start(status, options.bindAddress, options.ports.status, 'status');

    // --- 15000, localhost only ---
    // A tap stream never ends by itself: close() must not wait for it.
    const admin = Fastify({ logger: false, forceCloseConnections: true });
    admin.get('/config_dump', async () => options.configDump());
    admin.get('/stats', async (_req, reply) => {
      reply.header('content-type', 'text/plain; charset=utf-8');
      return flatStats(options.proxyRegistry);
    });
    admin.get('/stats/prometheus', async (_req, reply) => {
      reply.header('content-type', PROMETHEUS_TEXT_CONTENT_TYPE);
      return proxyText();
    });
    admin.get('/ready', async (_req, reply) => reply.code(isReady() ? 200 : 503).send(isReady() ? 'LIVE\n' : 'PRE_INITIALIZING\n'));
    admin.post('/quitquitquit', async (_req, reply) => {
      // Answer first, then shut down (Envoy replies "OK" before exiting).
      reply.raw.once('finish', () => setImmediate(options.quit));
      return 'OK\n';
    });
    if (options.tap) {
      const tap = createTapHandler({ local: options.tap, registry: options.proxyRegistry });
      admin.get('/tap', (req, reply) => {
        // The stream outlives fastify's reply: hand the raw response to the tap handler.
        reply.hijack();
        tap(req.raw, reply.raw);
      });
    }
    const adminPort = await start(admin, '127.0.0.1', options.ports.admin, 'admin');

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

/** Send a chunk stream as the reply body, gzip-compressed when the scraper accepts it. */
function sendStream(reply: FastifyReply, chunks: AsyncIterable<Buffer>, acceptEncoding: string | string[] | undefined): FastifyReply {
  const gzip = acceptsGzip(acceptEncoding);
  if (gzip) reply.header('content-encoding', 'gzip');
  return reply.send(streamBody(chunks, gzip));
}

/**
 * Envoy admin `/stats` style: one `name.tag.value...: value` line per counter and gauge series (the
 * flat form Envoy prints, e.g. `istiocustom.istio_requests_total.reporter.destination...: 2`).
 * Histograms are left to /stats/prometheus.
 */
async function flatStats(registry: Registry): Promise<string> {
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

/**
 * `meshtel sidecar --concurrency N`: N worker processes share the traffic listeners, as Envoy's `--concurrency` runs
 * N worker threads behind one listen socket (Istio runs sidecars with 2). node:cluster owns the listening sockets in
 * the primary and hands connections to the workers round-robin; each worker runs the full filter chain with its own
 * recorder, so the request path never crosses a process boundary.
 *
 * The agent ports (15090/15020/15021/15000) are served once, by the primary, and a scrape reports exact totals
 * over all workers: the primary asks every worker for its proxy page at scrape time (text format, rendered by the
 * worker's own streaming exposition), and merges the pages by series: counters, histogram buckets, `_sum` and
 * `_count` add up, so N requests in are N in `istio_requests_total` whichever worker took them. Unlike prom-client's
 * AggregatorRegistry (prometheus/client_js#628) no worker serialises its metric objects to JSON and the primary
 * rebuilds no prom-client metrics: each worker answers with the bytes it would have served itself, and the primary
 * only sums numbers of identical series lines, once per scrape. A worker that does not answer within
 * {@link WORKER_SCRAPE_TIMEOUT_MS} is left out of that scrape and counted in
 * `meshtel_worker_scrape_failures_total`.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../core/logger.js';
import { contentTypeOf, negotiateFormat } from '../stats/exposition.js';
import { parseExpositionFamilies } from '../stats/exposition-parser.js';
import type { ParsedFamily, Sample } from '../stats/exposition-parser.js';
import { startAgentEndpoints } from './agent-endpoints.js';
import type { AgentEndpoints, PrometheusScrapeConfig } from './agent-endpoints.js';
import { renderParsedFamilies } from './merged-scrape.js';
import type { SidecarBoundPorts } from './sidecar.js';
import type { ProxyMetricsRenderer } from './telemetry-contract.js';

/** How long the primary waits for a worker's page on a scrape. */
export const WORKER_SCRAPE_TIMEOUT_MS = 5_000;

/** Messages between the primary and a worker (IPC). */
type ToWorker = { readonly meshtel: 'scrape'; readonly id: number } | { readonly meshtel: 'config'; readonly id: number };
type FromWorker =
  | { readonly meshtel: 'ready'; readonly ports: SidecarBoundPorts; readonly nodeId: string }
  | { readonly meshtel: 'page'; readonly id: number; readonly body: string }
  | { readonly meshtel: 'config'; readonly id: number; readonly body: unknown };

/** What a worker exposes to the primary. */
export interface WorkerSidecar {
  readonly ports: SidecarBoundPorts;
  readonly nodeId: string;
  /** The worker's proxy metrics page in the text format. */
  renderText(): Promise<string>;
  configDump(): unknown;
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

/** In a worker: report readiness and answer the primary's scrapes until the sidecar closes. */
export function serveWorker(sidecar: WorkerSidecar): void {
  const send = (m: FromWorker): void => {
    if (process.connected) process.send?.(m);
  };
  const onMessage = (raw: unknown): void => {
    const m = raw as ToWorker;
    if (m?.meshtel === 'scrape') {
      sidecar.renderText().then(
        (body) => send({ meshtel: 'page', id: m.id, body }),
        () => send({ meshtel: 'page', id: m.id, body: '' }),
      );
    } else if (m?.meshtel === 'config') {
      send({ meshtel: 'config', id: m.id, body: sidecar.configDump() });
    }
  };
  process.on('message', onMessage);
  // The primary went away (killed): a worker must not outlive it.
  process.once('disconnect', () => void sidecar.close());
  void sidecar.closed.then(() => process.off('message', onMessage));
  send({ meshtel: 'ready', ports: sidecar.ports, nodeId: sidecar.nodeId });
}

/** Options of {@link startSidecarPrimary}. */
export interface SidecarPrimaryOptions {
  readonly concurrency: number;
  readonly bindAddress: string;
  readonly ports: { readonly prometheus: number; readonly status: number; readonly health: number; readonly admin: number };
  readonly appScrape?: PrometheusScrapeConfig;
  readonly appHost: string;
  readonly maxAppScrapeBytes?: number;
  readonly logger: Logger;
  /** Environment added to the workers' (the CLI marks them as workers with it). */
  readonly workerEnv: Readonly<Record<string, string>>;
}

/** The primary of a multi-worker sidecar. */
export interface SidecarPrimary {
  /** Traffic ports as the first worker bound them (all share them), agent ports as the primary bound them. */
  readonly ports: SidecarBoundPorts;
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

/** Gauges that mean one process's fact rather than a share of the total: merged by min or max, not summed. */
const MERGE_MIN = /_start_time_seconds$/;
const MERGE_MAX = /^(istio_build|nodejs_version_info|process_max_fds|nodejs_heap_space_size_total_bytes)$/;

/**
 * Merge the families of several pages by series: the value of a sample that has the same name and labels in
 * several pages is the sum (counters, histograms, summaries' `_sum`/`_count`, gauges such as in-flight requests),
 * except for the gauges in {@link MERGE_MIN} / {@link MERGE_MAX}. Families and series keep first-seen order.
 */
export function mergeFamilies(pages: readonly (readonly ParsedFamily[])[]): ParsedFamily[] {
  const byName = new Map<string, { family: ParsedFamily; samples: Map<string, MutableSample> }>();
  for (const families of pages) {
    for (const f of families) {
      let entry = byName.get(f.name);
      if (entry === undefined) {
        entry = { family: { name: f.name, type: f.type, help: f.help, unit: f.unit, samples: [] }, samples: new Map() };
        byName.set(f.name, entry);
      }
      for (const s of f.samples) {
        const key = seriesKey(s);
        const seen = entry.samples.get(key);
        if (seen === undefined) {
          const copy: MutableSample = { ...s };
          entry.samples.set(key, copy);
          entry.family.samples.push(copy);
        } else if (f.type === 'gauge' && MERGE_MIN.test(s.name)) {
          seen.value = Math.min(seen.value, s.value);
        } else if (f.type === 'gauge' && MERGE_MAX.test(s.name)) {
          seen.value = Math.max(seen.value, s.value);
        } else {
          seen.value += s.value;
        }
      }
    }
  }
  return [...byName.values()].map((e) => e.family);
}

type MutableSample = { -readonly [K in keyof Sample]: Sample[K] };

function seriesKey(s: Sample): string {
  let key = s.name;
  // Label order is the renderer's, the same in every worker; sorted anyway so the key never depends on it.
  for (const name of Object.keys(s.labels).sort()) key += `\u0000${name}\u0001${s.labels[name]}`;
  return key;
}

/**
 * In the primary: fork `concurrency` workers (the same command line; `workerEnv` tells them they are workers), wait
 * until every one is listening, then serve the agent ports with the merged proxy page. A worker that dies is
 * replaced; `close()` stops the workers and the agent ports.
 */
export async function startSidecarPrimary(options: SidecarPrimaryOptions): Promise<SidecarPrimary> {
  const { concurrency, logger } = options;
  const registry = new Registry();
  const scrapeFailures = new Counter({
    name: 'meshtel_worker_scrape_failures_total',
    help: 'Scrapes that left out a worker that did not answer in time (its series are missing from that page)',
    registers: [registry],
  });
  const workerGauge = new Gauge({ name: 'meshtel_proxy_workers', help: 'Worker processes serving the traffic listeners (--concurrency)', registers: [registry] });
  const workers = new Map<number, { worker: Worker; ready: boolean }>();
  const pending = new Map<number, (m: FromWorker | undefined) => void>();
  let nextId = 1;
  let closing = false;
  let firstPorts: SidecarBoundPorts | undefined;
  let resolveAllReady!: () => void;
  let rejectAllReady!: (err: Error) => void;
  const allReady = new Promise<void>((resolve, reject) => {
    resolveAllReady = resolve;
    rejectAllReady = reject;
  });

  const readyCount = (): number => [...workers.values()].filter((w) => w.ready).length;
  const fork = (): void => {
    const worker = cluster.fork({ ...options.workerEnv });
    workers.set(worker.id, { worker, ready: false });
    worker.on('message', (m: FromWorker) => {
      if (m?.meshtel === 'ready') {
        const w = workers.get(worker.id);
        if (w) w.ready = true;
        firstPorts ??= m.ports;
        workerGauge.set(readyCount());
        if (readyCount() === concurrency) resolveAllReady();
      } else if (m?.meshtel === 'page' || m?.meshtel === 'config') {
        pending.get(m.id)?.(m);
      }
    });
    worker.once('exit', (code, signal) => {
      const wasReady = workers.get(worker.id)?.ready === true;
      workers.delete(worker.id);
      workerGauge.set(readyCount());
      if (closing) return;
      if (!wasReady) {
        rejectAllReady(new Error(`sidecar worker exited before it was ready (code ${code ?? signal})`));
        return;
      }
      logger.warn('sidecar worker exited, starting another', { code, signal });
      fork();
    });
  };
  for (let i = 0; i < concurrency; i++) fork();

  const ask = (worker: Worker, kind: ToWorker['meshtel']): Promise<FromWorker | undefined> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve(undefined);
      }, WORKER_SCRAPE_TIMEOUT_MS);
      pending.set(id, (m) => {
        clearTimeout(timer);
        pending.delete(id);
        resolve(m);
      });
      try {
        worker.send({ meshtel: kind, id } satisfies ToWorker);
      } catch {
        pending.get(id)?.(undefined);
      }
    });

  const mergedText = async (): Promise<ParsedFamily[]> => {
    const replies = await Promise.all([...workers.values()].filter((w) => w.ready).map((w) => ask(w.worker, 'scrape')));
    const pages: ParsedFamily[][] = [];
    for (const r of replies) {
      const parsed = r?.meshtel === 'page' ? parseExpositionFamilies(r.body, 'text') : undefined;
      if (parsed?.ok === true) pages.push(parsed.families);
      else scrapeFailures.inc();
    }
    const own = parseExpositionFamilies(await registry.metrics(), 'text');
    if (own.ok) pages.push(own.families);
    return mergeFamilies(pages);
  };

  const renderProxy: ProxyMetricsRenderer = (accept) => {
    const format = negotiateFormat(accept);
    return {
      contentType: contentTypeOf(format),
      body: (async function* () {
        const families = await mergedText();
        const to = format === 'openmetrics' ? 'openmetrics' : 'text';
        yield Buffer.from(renderParsedFamilies(families, 'text', to) + (to === 'openmetrics' ? '# EOF\n' : ''), 'utf8');
      })(),
    };
  };

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let agent: AgentEndpoints | undefined;
  let closingPromise: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closingPromise ??= (async () => {
      closing = true;
      await agent?.close().catch(() => {});
      await Promise.all(
        [...workers.values()].map(
          ({ worker }) =>
            new Promise<void>((resolve) => {
              if (worker.isDead()) return resolve();
              worker.once('exit', () => resolve());
              // SIGTERM: the worker's own handler closes its sidecar.
              worker.process.kill('SIGTERM');
            }),
        ),
      );
      resolveClosed();
    })());

  try {
    await allReady;
    agent = await startAgentEndpoints({
      bindAddress: options.bindAddress,
      ports: options.ports,
      proxyRegistry: registry,
      renderProxy,
      ...(options.appScrape ? { appScrape: options.appScrape } : {}),
      appHost: options.appHost,
      ...(options.maxAppScrapeBytes !== undefined ? { maxAppScrapeBytes: options.maxAppScrapeBytes } : {}),
      isReady: () => readyCount() === concurrency,
      configDump: async () => {
        const first = [...workers.values()].find((w) => w.ready);
        const r = first ? await ask(first.worker, 'config') : undefined;
        return { workers: concurrency, ...(r?.meshtel === 'config' ? { worker: r.body } : {}) };
      },
      quit: () => void close(),
      logger,
    });
  } catch (err) {
    await close();
    throw err;
  }
  const traffic = firstPorts as SidecarBoundPorts;
  const ports: SidecarBoundPorts = { ...traffic, ...agent.ports };
  logger.info('sidecar ready', { workers: concurrency, ports });
  return { ports, close, closed };
}

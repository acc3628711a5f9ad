/**
 * `meshtel sidecar --concurrency N`: N worker processes share the traffic listeners, as Envoy's `--concurrency` runs
 * N worker threads behind one listen socket (Istio runs sidecars with 2). node:cluster owns the listening sockets in
 * the primary and hands connections to the workers round-robin; each worker runs the full filter chain with its own
 * recorder, so the request path never crosses a process boundary.
 *
 * The agent ports (15090/15020/15021/15000) are served once, by the primary, and a scrape reports exact totals
 * over all workers: the primary asks every worker for a snapshot of its series at scrape time (worker-series.ts:
 * numbers in a Float64Array over the structured-clone IPC channel, label strings once per new series), adds them up
 * by series and renders one page in the format the scraper negotiated, with the stats stage's own renderer; N
 * requests in are N in `istio_requests_total` whichever worker took them. The admin `/stats` is flattened from the
 * same merge. A worker that does not answer within {@link WORKER_SCRAPE_TIMEOUT_MS} is left out of that scrape and
 * counted in `meshtel_worker_scrape_failures_total` (its snapshot is still applied when it arrives, so the ids of
 * its series stay in step).
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../core/logger.js';
import type { RegistryContentType } from 'prom-client';
import { contentTypeOf, negotiateFormat, renderMetrics } from '../stats/exposition.js';
import type { Family } from '../stats/series.js';
import { flatStats, startAgentEndpoints } from './agent-endpoints.js';
import type { AgentEndpoints, PrometheusScrapeConfig } from './agent-endpoints.js';
import type { SidecarBoundPorts } from './sidecar.js';
import type { ProxyMetricsRenderer } from './telemetry-contract.js';
import { createSeriesMerger, createSeriesPublisher } from './worker-series.js';
import type { MergedSeries, SeriesSnapshot } from './worker-series.js';

/** How long the primary waits for a worker's page on a scrape. */
export const WORKER_SCRAPE_TIMEOUT_MS = 5_000;

/** Messages between the primary and a worker (IPC). */
type ToWorker = { readonly meshtel: 'scrape'; readonly id: number } | { readonly meshtel: 'config'; readonly id: number };
type FromWorker =
  | { readonly meshtel: 'ready'; readonly ports: SidecarBoundPorts; readonly nodeId: string }
  | { readonly meshtel: 'series'; readonly id: number; readonly snapshot: SeriesSnapshot | undefined }
  | { readonly meshtel: 'config'; readonly id: number; readonly body: unknown };

/** What a worker exposes to the primary. */
export interface WorkerSidecar {
  readonly ports: SidecarBoundPorts;
  readonly nodeId: string;
  /** The recorder's families (istio_* and its meshtel_*); none when telemetry is off. */
  readonly families: (() => readonly Family[]) | undefined;
  /** The proxy registry (its prom-client metrics are published beside the families). */
  readonly registry: Registry;
  configDump(): unknown;
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

/** In a worker: report readiness and answer the primary's scrapes until the sidecar closes. */
export function serveWorker(sidecar: WorkerSidecar): void {
  const send = (m: FromWorker): void => {
    if (process.connected) process.send?.(m);
  };
  const snapshot = createSeriesPublisher(sidecar.families, sidecar.registry);
  const onMessage = (raw: unknown): void => {
    const m = raw as ToWorker;
    if (m?.meshtel === 'scrape') {
      snapshot().then(
        (snap) => send({ meshtel: 'series', id: m.id, snapshot: snap }),
        () => send({ meshtel: 'series', id: m.id, snapshot: undefined }),
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
  const merger = createSeriesMerger();
  // Structured clone over the IPC channel: a snapshot's Float64Array crosses as bytes, not as JSON numbers.
  cluster.setupPrimary({ serialization: 'advanced' });
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
      } else if (m?.meshtel === 'series') {
        // Applied even when its scrape has timed out: the next snapshots name this one's new series by id only.
        let ok = m.snapshot !== undefined;
        try {
          if (m.snapshot !== undefined) merger.apply(worker.id, m.snapshot);
        } catch (err) {
          ok = false;
          logger.warnOnce('worker-snapshot', 'worker series snapshot refused', { err });
        }
        pending.get(m.id)?.(ok ? m : undefined);
      } else if (m?.meshtel === 'config') {
        pending.get(m.id)?.(m);
      }
    });
    worker.once('exit', (code, signal) => {
      const wasReady = workers.get(worker.id)?.ready === true;
      workers.delete(worker.id);
      merger.drop(worker.id);
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

  /** Ask every ready worker for its snapshot and merge them (a worker that did not answer is counted). */
  const collect = async (): Promise<MergedSeries> => {
    const replies = await Promise.all([...workers.values()].filter((w) => w.ready).map((w) => ask(w.worker, 'scrape')));
    for (const r of replies) if (r === undefined) scrapeFailures.inc();
    return merger.merge(registry as Registry<RegistryContentType>);
  };

  const renderProxy: ProxyMetricsRenderer = (accept) => {
    const format = negotiateFormat(accept);
    return {
      contentType: contentTypeOf(format),
      body: (async function* () {
        const merged = await collect();
        yield* renderMetrics({ families: () => merged.families, registry: merged.registry }, format);
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
      flatStats: async () => flatStats((await collect()).registry as Registry),
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

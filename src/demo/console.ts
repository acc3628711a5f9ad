/**
 * The web console over a running demo: what `meshtel demo` opens, and what the browser test and
 * `npm run console:screenshots` run against, so all three see the same wiring (source, window, taps).
 */
import { startConsole } from '../console/server.js';
import type { RunningConsole } from '../console/server.js';
import { createEndpointSource, createPrometheusSource } from '../console/sources.js';
import type { Demo } from './demo.js';

/** Rate window of the demo's console: short enough to see a fault appear, long enough for a steady share. */
export const DEMO_CONSOLE_WINDOW_SECONDS = 30;

/** How often the demo's console scrapes the sidecars when no Prometheus runs. */
export const DEMO_CONSOLE_INTERVAL_MS = 2000;

/** Options of {@link startDemoConsole}. */
export interface DemoConsoleOptions {
  /** Port to try first (taken if free, else any free port); default 0 (any). */
  readonly port?: number;
  /** Trace UI link with `{traceId}`. */
  readonly traceUrl?: string;
  /** Until when (ms since the epoch) latencies still include start-up; the page says "warming up" meanwhile. */
  readonly warmUpUntil?: number;
}

/**
 * Start the console over `demo`: from its Prometheus when one runs (PromQL, the shipped recording rules beside it),
 * else from the sidecars' merged endpoints; every workload's tap offered.
 */
export async function startDemoConsole(demo: Demo, options: DemoConsoleOptions = {}): Promise<RunningConsole> {
  const source = () =>
    demo.prometheusUrl
      ? createPrometheusSource({ url: demo.prometheusUrl, window: `${DEMO_CONSOLE_WINDOW_SECONDS}s` })
      : createEndpointSource({ urls: demo.metricsUrls, intervalMs: DEMO_CONSOLE_INTERVAL_MS, windowMs: DEMO_CONSOLE_WINDOW_SECONDS * 1000 });
  const common = {
    taps: demo.workloads.map((w) => ({ id: `${w.namespace}/${w.workload}`, url: w.tapUrl })),
    ...(options.traceUrl ? { traceUrl: options.traceUrl } : {}),
    ...(options.warmUpUntil !== undefined ? { warmUpUntil: options.warmUpUntil } : {}),
  };
  const port = options.port ?? 0;
  try {
    return await startConsole({ ...common, source: source(), port });
  } catch (err) {
    // startConsole closes nothing it did not start; a failed bind leaves the source to close here.
    if (port === 0) throw err;
    return startConsole({ ...common, source: source(), port: 0 });
  }
}

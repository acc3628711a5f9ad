/**
 * What `meshtel demo` prints: where to look (URLs, Prometheus config), the load generator's progress
 * and the live `meshtel stat` tables, computed from the same merged endpoints a Prometheus would scrape.
 * Each refresh scrapes once and compares with the previous scrape (rates over the refresh interval).
 */
import type { Sample } from '../stats/exposition-parser.js';
import { computeStat } from '../stats/golden-signals.js';
import { scrapeEndpoints } from '../stats/golden-signals-source.js';
import { renderStatTable } from '../stats/golden-signals-table.js';
import type { Demo } from './demo.js';
import type { LoadStats } from './load.js';

/**
 * The header: console URL first, then the gateway, faults and where the metrics are. `compact` (the in-place
 * terminal screen) keeps it to lines under 80 columns and leaves the endpoint list to the plain output.
 * Hints are printed as they run from a checkout (`npm run meshtel -- …`; `meshtel` is only on PATH once installed).
 * `tracingProblem` (from the start-up OTLP probe) replaces the traces line with a warning.
 */
export function renderHeader(demo: Demo, configPath: string, consoleUrl?: string, compact = false, tracingProblem?: string): string {
  const o = demo.options;
  const lines = [
    `meshtel demo · Ctrl-C stops it${consoleUrl ? ` · console ${consoleUrl}` : ''}`,
    `gateway ${demo.gatewayUrl}`,
    `load ${o.rate} req/s · reviews-v2 fails ${(o.failRate * 100).toFixed(0)}% (500) · reviews-v3 +${o.delayMs}ms`,
  ];
  if (demo.prometheusUrl) lines.push(`prometheus ${demo.prometheusUrl} (shipped rules loaded)`);
  if (demo.prometheusSkipped) lines.push(`prometheus not started: ${demo.prometheusSkipped}`);
  if (demo.tracingEndpoint) lines.push(tracingProblem ? `WARNING traces: ${tracingProblem}` : `traces (OTLP) ${demo.tracingEndpoint}`);
  if (demo.mtlsSkipped) lines.push(`WARNING sidecars talk plain text: ${demo.mtlsSkipped}`);
  if (compact) return lines.join('\n');
  if (demo.mtls) lines.push('mutual TLS between sidecars (inbound PERMISSIVE: the proxyless productpage speaks plain text)');
  const w = Math.max(...demo.workloads.map((x) => `${x.namespace}/${x.workload}`.length));
  lines.push(
    'merged metrics (Prometheus text):',
    ...demo.workloads.map((x) => `  ${`${x.namespace}/${x.workload}`.padEnd(w)}  ${x.mode.padEnd(9)}  ${x.metricsUrl}`),
    `prometheus config ${configPath}`,
    `try: npm run meshtel -- stat edge -e ${demo.metricsUrls.join(',')}`,
  );
  return lines.join('\n');
}

/** One progress line of the load generator. */
export function renderProgress(stats: Readonly<LoadStats> | undefined, elapsedSeconds: number): string {
  if (!stats) return `load: off (send requests to the ingress gateway yourself)  t=${elapsedSeconds.toFixed(0)}s`;
  // Under one second the average is dominated by the first burst (it printed "15493.5 req/s over 0s").
  const rate = elapsedSeconds >= 1 ? `${(stats.sent / elapsedSeconds).toFixed(1)} req/s` : 'warming up';
  return (
    `load: sent ${stats.sent}  ok ${stats.ok}  5xx ${stats.failed}  errors ${stats.errors}  skipped ${stats.skipped}` +
    `  in-flight ${stats.inFlight}  (${rate} over ${elapsedSeconds.toFixed(0)}s)`
  );
}

/**
 * How long after start the demo says "warming up" instead of latency quantiles (terminal and console): the first
 * requests pay for JIT compilation and first connections on a busy machine, and a 2.4 s p99 then says nothing.
 */
export const DEMO_WARM_UP_MS = 60_000;

/** What the tables print in place of latencies while warming up. */
export const WARMING_UP = 'warming';

/** Keeps the previous scrape and renders both stat tables against it. */
export function createStatView(urls: readonly string[]) {
  let previous: { samples: Sample[]; at: number } | undefined;
  return {
    /** Scrape now; the first call only primes (returns null). `warmingUp` prints {@link WARMING_UP} for latencies. */
    async refresh(warmingUp = false): Promise<string | null> {
      const samples = await scrapeEndpoints(urls);
      const at = performance.now();
      const prev = previous;
      previous = { samples, at };
      if (!prev) return null;
      const seconds = (at - prev.at) / 1000;
      const workloads = computeStat(prev.samples, samples, seconds, { resource: 'workload' });
      const edges = computeStat(prev.samples, samples, seconds, { resource: 'edge' });
      const note = warmingUp ? WARMING_UP : undefined;
      return [
        `WORKLOADS (reporter=destination, last ${seconds.toFixed(1)}s)`,
        renderStatTable(workloads, 'workload', false, note),
        '',
        `EDGES (reporter=source, last ${seconds.toFixed(1)}s)`,
        renderStatTable(edges, 'edge', false, note),
      ].join('\n');
    },
  };
}

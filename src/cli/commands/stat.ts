/**
 * `meshtel stat`: success rate, RPS, latency quantiles and TCP connections per workload, service or
 * edge, from metrics endpoints or a Prometheus server (src/stats/golden-signals.ts, src/stats/golden-signals-source.ts).
 */
import type { Command } from 'commander';
import { ConfigError, quote } from '../../core/errors.js';
import { parseDurationMs } from '../../core/config.js';
import { computeStat } from '../../stats/golden-signals.js';
import type { Sample } from '../../stats/exposition-parser.js';
import type { StatResource, StatRow } from '../../stats/golden-signals.js';
import { renderStatTable } from '../../stats/golden-signals-table.js';

interface StatFlags {
  endpoint: string[];
  prometheus?: string;
  interval: string;
  window: string;
  reporter?: string;
  namespace?: string;
  output?: string;
  watch?: boolean;
}

const RESOURCES: Record<string, StatResource> = {
  workload: 'workload', workloads: 'workload', deploy: 'workload', deployment: 'workload', wl: 'workload',
  service: 'service', services: 'service', svc: 'service',
  edge: 'edge', edges: 'edge',
};

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

function usage(message: string, field: string): ConfigError {
  return new ConfigError('MESHTEL_ERR_CLI_USAGE', message, { field });
}

/** Register `meshtel stat`. */
export function registerStatCommand(program: Command): void {
  program
    .command('stat')
    .description('golden signals (success rate, RPS, p50/p95/p99 latency, TCP connections) per workload, service or edge')
    .argument('[resource]', 'workload | service | edge', 'workload')
    .option('-e, --endpoint <url>', 'Prometheus-format metrics URL, e.g. http://127.0.0.1:15020/stats/prometheus (repeatable, comma-separated)', collect, [])
    .option('-p, --prometheus <url>', 'Prometheus server base URL; queries PromQL instead of scraping')
    .option('-i, --interval <duration>', 'time between the two scrapes of --endpoint', '2s')
    .option('-w, --window <duration>', 'PromQL range for --prometheus', '1m')
    .option('-r, --reporter <reporter>', 'source | destination (default: destination for workload/service, source for edge)')
    .option('-n, --namespace <ns>', 'only rows in this namespace')
    .option('-o, --output <format>', 'table | wide | json', 'table')
    .option('--watch', 'refresh every interval (in place on a terminal); Ctrl-C stops')
    .addHelpText(
      'after',
      `
Rates come from counter deltas between two scrapes (or PromQL rate()), quantiles from the
istio_request_duration_milliseconds buckets with Prometheus's histogram_quantile interpolation.
A request is successful unless its response_code is 5xx (Istio's dashboards). TCP_CONN is
opened minus closed connections.

Examples:
  $ meshtel stat -e http://127.0.0.1:15020/stats/prometheus
  $ meshtel stat edge -e http://127.0.0.1:15020/stats/prometheus,http://127.0.0.1:15120/stats/prometheus -o wide
  $ meshtel stat service --prometheus http://127.0.0.1:9090 --window 5m -o json
  $ meshtel stat workload -e http://127.0.0.1:15020/stats/prometheus --watch --interval 5s`,
    )
    .action(async (resourceArg: string, flags: StatFlags) => {
      // The scrape client (all of undici) loads here, not with the CLI: `meshtel sidecar` must not carry it (issue 16 RSS).
      const { scrapeEndpoints, statFromEndpoints, statFromPrometheus } = await import('../../stats/golden-signals-source.js');
      const resource = RESOURCES[resourceArg.toLowerCase()];
      if (resource === undefined) throw usage(`resource must be workload, service or edge, got ${quote(resourceArg)}`, 'resource');
      if (flags.reporter !== undefined && flags.reporter !== 'source' && flags.reporter !== 'destination') {
        throw usage(`--reporter must be source or destination, got ${quote(flags.reporter)}`, 'reporter');
      }
      const output = flags.output ?? 'table';
      if (output !== 'table' && output !== 'wide' && output !== 'json') throw usage(`-o must be table, wide or json, got ${quote(output)}`, 'output');
      if (flags.endpoint.length === 0 && flags.prometheus === undefined) throw usage('give --endpoint <url> or --prometheus <url>', 'endpoint');
      if (flags.endpoint.length > 0 && flags.prometheus !== undefined) throw usage('give --endpoint or --prometheus, not both', 'endpoint');
      const intervalMs = parseDurationMs(flags.interval, '--interval') ?? 2000;
      if (intervalMs <= 0) throw usage(`--interval must be positive, got ${quote(flags.interval)}`, 'interval');
      if (!/^(\d+(ms|s|m|h|d))+$/.test(flags.window)) throw usage(`--window must be a PromQL duration such as 1m, got ${quote(flags.window)}`, 'window');
      const base = {
        resource,
        ...(flags.reporter !== undefined ? { reporter: flags.reporter as 'source' | 'destination' } : {}),
        ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
      };

      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const tty = process.stdout.isTTY === true;
      try {
        // With --watch on endpoints, each scrape is the end of one window and the start of the next.
        let previous: { samples: Sample[]; at: number } | undefined;
        do {
          let rows: StatRow[];
          if (flags.prometheus !== undefined) {
            rows = await statFromPrometheus({ ...base, url: flags.prometheus, window: flags.window, signal: controller.signal });
          } else if (!flags.watch) {
            rows = await statFromEndpoints({ ...base, urls: flags.endpoint, intervalMs, signal: controller.signal });
          } else {
            previous ??= { samples: await scrapeEndpoints(flags.endpoint, controller.signal), at: performance.now() };
            await sleep(intervalMs, controller.signal);
            if (controller.signal.aborted) break;
            const samples = await scrapeEndpoints(flags.endpoint, controller.signal);
            const at = performance.now();
            rows = computeStat(previous.samples, samples, (at - previous.at) / 1000, base);
            previous = { samples, at };
          }
          if (controller.signal.aborted) break;
          const text = output === 'json' ? JSON.stringify(rows, null, 2) : renderStatTable(rows, resource, output === 'wide');
          // In place on a terminal (cursor home + clear), plain successive blocks otherwise.
          if (flags.watch && tty) process.stdout.write(`\x1b[H\x1b[2J${text}\n`);
          else process.stdout.write(`${text}\n${flags.watch ? '\n' : ''}`);
          if (flags.watch && flags.prometheus !== undefined) await sleep(intervalMs, controller.signal);
        } while (flags.watch && !controller.signal.aborted);
      } catch (err) {
        if (!controller.signal.aborted) throw err;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/**
 * `meshtel console`: the web console (src/console) over a Prometheus (`--prometheus`) or sidecar scrapes
 * (`--endpoints`), bound to 127.0.0.1 unless told otherwise. Runs until Ctrl-C / SIGTERM / SIGHUP.
 */
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { parseDurationMs } from '../../core/config.js';
import type { ConsoleTap } from '../../console/server.js';

interface ConsoleFlags {
  prometheus?: string;
  endpoints: string[];
  tap: string[];
  traceUrl?: string;
  host: string;
  port: string;
  interval: string;
  window: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

/** Parse `ns/workload=URL`. */
export function parseTapFlag(raw: string): ConsoleTap {
  const i = raw.indexOf('=');
  const id = raw.slice(0, i);
  const url = raw.slice(i + 1);
  if (i < 0 || !/^[^/\s]+\/[^/\s]+$/.test(id) || !/^https?:\/\//.test(url)) {
    throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--tap must be namespace/workload=http://host:port/tap, got ${JSON.stringify(raw)}`, { field: 'tap' });
  }
  return { id, url };
}

/** Register `meshtel console`. */
export function registerConsoleCommand(program: Command): void {
  program
    .command('console')
    .description('web console: live service graph, golden signals per workload and edge, live request tap')
    .option('--prometheus <url>', 'read Istio-schema metrics from this Prometheus (HTTP API)')
    .option('-e, --endpoints <urls>', 'or scrape these metrics pages directly (comma-separated, repeatable)', collect, [])
    .option('--tap <ns/workload=url>', 'a tap stream to offer, e.g. bookinfo/reviews-v2=http://127.0.0.1:15000/tap (repeatable)', collect, [])
    .option('--trace-url <template>', 'trace UI link, {traceId} replaced, e.g. http://127.0.0.1:16686/trace/{traceId}')
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port to bind (0 = any free)', '15100')
    .option('--interval <duration>', 'scrape interval with --endpoints', '5s')
    .option('--window <range>', 'rate window, as in PromQL rate(...[1m]) (with --endpoints: over the kept scrapes)', '1m')
    .action(async (flags: ConsoleFlags) => {
      // The console (fastify and its assets) loads here, not with the CLI: `meshtel sidecar` must not carry it (issue 16 RSS).
      const [{ startConsole }, { createEndpointSource, createPrometheusSource }] = await Promise.all([import('../../console/server.js'), import('../../console/sources.js')]);
      if ((flags.prometheus === undefined) === (flags.endpoints.length === 0)) {
        throw new ConfigError('MESHTEL_ERR_CLI_USAGE', 'give exactly one of --prometheus URL or --endpoints a,b', { field: 'prometheus' });
      }
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--port must be a port, got ${flags.port}`, { field: 'port' });
      const source = flags.prometheus
        ? createPrometheusSource({ url: flags.prometheus, window: flags.window })
        : createEndpointSource({
            urls: flags.endpoints,
            intervalMs: parseDurationMs(flags.interval, '--interval') ?? 5000,
            windowMs: parseDurationMs(flags.window, '--window') ?? 60_000,
          });
      const running = await startConsole({
        source,
        taps: flags.tap.map(parseTapFlag),
        ...(flags.traceUrl ? { traceUrl: flags.traceUrl } : {}),
        host: flags.host,
        port,
      });
      process.stdout.write(`meshtel console: ${running.url}  (${source.kind}; Ctrl-C stops it)\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, stop);
          void running.close().finally(resolve);
        };
        for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, stop);
      });
    });
}

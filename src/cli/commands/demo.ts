/**
 * `meshtel demo` (and `npm start`): run the Bookinfo-like demo mesh (src/demo) with live output until
 * Ctrl-C / SIGTERM, which stops everything and exits 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, quote } from '../../core/errors.js';
import { parseDurationMs } from '../../core/config.js';
import type { RunningConsole } from '../../console/server.js';

interface DemoFlags {
  rate: string;
  failRate: string;
  delay: string;
  basePort?: string;
  prometheus?: boolean;
  tty: boolean;
  refresh?: string;
  duration?: string;
  otlpEndpoint?: string;
  traceSampling: string;
  consolePort: string;
  traceUrl?: string;
}

function num(raw: string, flag: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `${flag} must be a number, got ${quote(raw)}`, { field: flag });
  return n;
}

/** Cut a screen to the terminal (default 80×24): every line at the width, the whole at the height. */
export function fitScreen(text: string, columns = process.stdout.columns || 80, rows = process.stdout.rows || 24): string {
  return text
    .split('\n')
    .slice(0, Math.max(1, rows - 1))
    .map((l) => (l.length > columns ? `${l.slice(0, columns - 1)}…` : l))
    .join('\n');
}

/** Register `meshtel demo`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a Bookinfo-like mesh on loopback (gateway, sidecars, one proxyless app, gRPC and TCP edges) with load and live stats')
    .option('--rate <rps>', 'requests per second sent to the ingress gateway (0 = none)', '10')
    .option('--fail-rate <share>', 'share of reviews-v2 requests answered 500', '0.2')
    .option('--delay <duration>', 'latency added by reviews-v3', '100ms')
    .option('--base-port <port>', 'use consecutive ports from here instead of free ports')
    .option('--prometheus', 'also start `prometheus` (if on PATH) with the shipped rules')
    .option('--no-tty', 'plain lines instead of an in-place screen (the default when stdout is not a terminal)')
    .option('--refresh <duration>', 'how often the stat tables refresh (default 2s on a terminal, 5s otherwise)')
    .option('--duration <duration>', 'stop by itself after this long')
    .option('--otlp-endpoint <url>', 'export every hop\'s spans over OTLP/HTTP, e.g. Jaeger at http://127.0.0.1:4318')
    .option('--trace-sampling <percent>', 'sampling percentage with --otlp-endpoint', '100')
    .option('--console-port <port>', 'port of the web console (taken if free, else any free port)', '15100')
    .option('--trace-url <template>', 'trace UI link for the console\'s tap, {traceId} replaced, e.g. http://127.0.0.1:16686/trace/{traceId}')
    .addHelpText(
      'after',
      `
Topology: load → istio-ingressgateway (router) → productpage-v1 (proxyless: fastify plugin + undici
interceptor) → details-v1 and reviews-v1/v2/v3 (HTTP, sidecars); reviews-v2/v3 → ratings-v1 (gRPC);
ratings-v1 → mongodb-v1 (plain TCP). Everything runs in this process on 127.0.0.1; no network needed.

Examples:
  $ npm start
  $ meshtel demo --rate 50 --fail-rate 0.1 --delay 250ms
  $ meshtel demo --prometheus            # then open the printed Prometheus URL
  $ meshtel demo --otlp-endpoint http://127.0.0.1:4318   # spans to a local Jaeger (all-in-one)
  $ meshtel demo --no-tty --duration 30s  # CI-friendly plain output`,
    )
    .action(async (flags: DemoFlags) => {
      const rate = num(flags.rate, '--rate');
      const failRate = num(flags.failRate, '--fail-rate');
      const delayMs = parseDurationMs(flags.delay, '--delay') ?? 0;
      const basePort = flags.basePort !== undefined ? num(flags.basePort, '--base-port') : undefined;
      const tty = flags.tty && process.stdout.isTTY === true;
      const refreshMs = parseDurationMs(flags.refresh, '--refresh') ?? (tty ? 2000 : 5000);
      const durationMs = parseDurationMs(flags.duration, '--duration');
      if (refreshMs < 200) throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--refresh must be at least 200ms, got ${quote(flags.refresh)}`, { field: 'refresh' });

      // The demo mesh (sidecars, fastify, OpenTelemetry) loads here, not at CLI start.
      const [{ startDemo }, { DEMO_WARM_UP_MS, createStatView, renderHeader, renderProgress }, { startDemoConsole }, { probeOtlpEndpoint }] = await Promise.all([
        import('../../demo/demo.js'),
        import('../../demo/display.js'),
        import('../../demo/console.js'),
        import('../../demo/otlp-probe.js'),
      ]);
      if (flags.otlpEndpoint !== undefined) {
        let u: URL | undefined;
        try {
          u = new URL(flags.otlpEndpoint);
        } catch {
          u = undefined;
        }
        if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
          throw new ConfigError('MESHTEL_ERR_CLI_USAGE', `--otlp-endpoint must be an http(s) URL such as http://127.0.0.1:4318, got ${quote(flags.otlpEndpoint)}`, { field: 'otlp-endpoint' });
        }
      }
      const consolePort = num(flags.consolePort, '--console-port');
      const tracing = flags.otlpEndpoint !== undefined ? { endpoint: flags.otlpEndpoint, samplingPercent: num(flags.traceSampling, '--trace-sampling') } : undefined;
      // A wrong endpoint used to be silent (every batch dropped in the background): say so now, on stderr and in
      // the header (an in-place screen would wipe a stderr line). Tracing stays on: the backend may come up later.
      const tracingProblem = tracing ? await probeOtlpEndpoint(tracing.endpoint) : undefined;
      if (tracingProblem) process.stderr.write(`warning: --otlp-endpoint ${tracingProblem}; spans are dropped (meshtel_spans_dropped_total) until it accepts them\n`);
      const demo = await startDemo({
        rate,
        failRate,
        delayMs,
        ...(basePort !== undefined ? { basePort } : {}),
        ...(tracing ? { tracing } : {}),
        prometheus: flags.prometheus === true,
      });
      // The console first: it is what the demo is for. From Prometheus when one runs, else from the scrapes.
      let web: RunningConsole;
      try {
        web = await startDemoConsole(demo, { port: consolePort, warmUpUntil: Date.now() + DEMO_WARM_UP_MS, ...(flags.traceUrl ? { traceUrl: flags.traceUrl } : {}) });
      } catch (err) {
        await demo.close();
        throw err;
      }
      process.stdout.write(`meshtel console: ${web.url}  (open it in a browser)\n`);
      const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-demo-'));
      const configPath = path.join(dir, 'prometheus.yml');
      writeFileSync(configPath, demo.prometheusConfig);
      const header = renderHeader(demo, configPath, web.url, tty, tracingProblem);
      const out = (s: string): void => void process.stdout.write(s);
      if (!tty) out(`${header}\n\n# Prometheus configuration (${configPath}):\n${demo.prometheusConfig}\n`);

      const started = performance.now();
      const view = createStatView(demo.metricsUrls);
      let stopping = false;
      let timer: NodeJS.Timeout | undefined;
      let resolveDone!: () => void;
      const done = new Promise<void>((r) => (resolveDone = r));

      const tick = async (): Promise<void> => {
        if (stopping) return;
        const elapsed = (performance.now() - started) / 1000;
        let tables: string | null = null;
        const warming = elapsed * 1000 < DEMO_WARM_UP_MS;
        try {
          tables = await view.refresh(warming);
        } catch (err) {
          tables = `stat: ${(err as Error).message}`;
        }
        if (stopping) return;
        // The first minute's quantiles include start-up (JIT, first connections): the tables say so instead.
        const progress = `${renderProgress(demo.load?.stats, elapsed)}${warming && tables ? `\nwarming up (${Math.ceil(DEMO_WARM_UP_MS / 1000 - elapsed)}s): latencies include start-up` : ''}`;
        if (tty) out(`\x1b[H\x1b[2J${fitScreen(`${header}\n${progress}\n${tables ?? 'collecting a first scrape...'}`)}`);
        else out(`${progress}\n${tables ? `${tables}\n` : ''}\n`);
        timer = setTimeout(() => void tick(), refreshMs);
      };

      const stop = (signal: string): void => {
        if (stopping) {
          // A second Ctrl-C while closing: give up waiting.
          process.exit(130);
        }
        stopping = true;
        if (timer) clearTimeout(timer);
        out(`\n${signal}: stopping the demo...\n`);
        void web
          .close()
          .catch(() => undefined)
          .then(() => demo.close())
          .finally(() => {
            rmSync(dir, { recursive: true, force: true });
            const s = demo.load?.stats;
            out(`stopped${s ? ` after ${s.sent} requests (${s.ok} ok, ${s.failed} 5xx, ${s.errors} errors${s.cancelled > 0 ? `, ${s.cancelled} cut at stop` : ''})` : ''}\n`);
            resolveDone();
          });
      };
      const onSigint = (): void => stop('SIGINT');
      const onSigterm = (): void => stop('SIGTERM');
      // A closed terminal (SIGHUP) cleans up like Ctrl-C: no orphaned Prometheus, no temp directories.
      const onSighup = (): void => stop('SIGHUP');
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigterm);
      process.on('SIGHUP', onSighup);
      const limit = durationMs !== undefined ? setTimeout(() => stop('duration reached'), durationMs) : undefined;
      limit?.unref();
      // First scrape primes the rates; the first table follows one refresh later.
      await tick();
      await done;
      if (limit) clearTimeout(limit);
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
      process.off('SIGHUP', onSighup);
    });
}

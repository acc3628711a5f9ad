/**
 * A real Prometheus for the end-to-end suite: writes a config that scrapes the given targets through
 * `file_sd_configs` (Debian's build has no Kubernetes discovery, consumers.md §5) and loads rule files, starts
 * `prometheus` on a free loopback port with a throw-away TSDB, and wraps the HTTP API (instant queries and label
 * values, as Grafana calls them). Under CI=true a missing binary is a failure with a clear message.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { findBinary, requireBinary } from '../../deploy/binaries.js';

/** The server binary: on PATH, else Debian's /usr/bin/prometheus. */
export const PROMETHEUS_BIN = findBinary('prometheus') ?? 'prometheus';

/** True when the prometheus binary exists; under CI=true its absence throws with a clear message. */
export function hasPrometheus(): boolean {
  return requireBinary('prometheus') !== undefined;
}

/** One scrape target: `host:port`, metrics path, and target labels (as a PodMonitor would add `namespace`, `pod`). */
export interface ScrapeTarget {
  address: string;
  path: string;
  labels: Record<string, string>;
}

/** Options of {@link startPrometheus}. */
export interface PrometheusOptions {
  targets: readonly ScrapeTarget[];
  /** Absolute paths of rule files to load. */
  ruleFiles: readonly string[];
  /** Scrape and rule evaluation interval, e.g. `1s`. */
  interval: string;
  /** Job name of the scrape job (the alerts match `envoy-stats`). */
  job?: string;
  /** Further scrape jobs, as written in prometheus.yml (e.g. a federation job). */
  extraScrapeConfigs?: readonly Record<string, unknown>[];
  /** `--enable-feature` values, e.g. `native-histograms` (Prometheus then asks targets for protobuf first). */
  features?: readonly string[];
}

/** One sample of an instant vector. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A running Prometheus. */
export interface PrometheusHandle {
  readonly url: string;
  /** Instant query; throws with Prometheus's error text when the query does not parse or evaluate. */
  query(expr: string, time?: number): Promise<PromSample[]>;
  /** Label values, as Grafana's `label_values(selector, label)` asks for them. */
  labelValues(label: string, match?: string): Promise<string[]>;
  /** The scrape targets as Prometheus sees them. */
  targets(): Promise<{ scrapeUrl: string; health: string; lastError: string }[]>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  // Prometheus cannot report the port it bound for :0, so ask the kernel for a free one first.
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function api<T>(url: string, params: Record<string, string | string[]>): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) qs.append(k, one);
  // GET: the label-values and targets endpoints accept nothing else in 2.42.
  const res = await fetch(`${url}?${qs.toString()}`, { signal: AbortSignal.timeout(10_000) });
  const json = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
  if (json.status !== 'success') throw new Error(`${json.errorType ?? 'error'}: ${json.error ?? res.statusText}`);
  return json.data;
}

async function waitReady(url: string, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}:\n${log()}`);
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`prometheus not ready after 30s:\n${log()}`);
}

/** Start Prometheus scraping `targets` every `interval` and evaluating `ruleFiles`. */
export async function startPrometheus(o: PrometheusOptions): Promise<PrometheusHandle> {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-e2e-prom-'));
  const sdFile = path.join(dir, 'targets.json');
  writeFileSync(sdFile, JSON.stringify(o.targets.map((t) => ({ targets: [t.address], labels: { __metrics_path__: t.path, ...t.labels } }))));
  const config = {
    global: { scrape_interval: o.interval, scrape_timeout: o.interval, evaluation_interval: o.interval },
    rule_files: [...o.ruleFiles],
    scrape_configs: [
      ...(o.targets.length > 0 ? [{ job_name: o.job ?? 'envoy-stats', file_sd_configs: [{ files: [sdFile], refresh_interval: '1s' }] }] : []),
      ...(o.extraScrapeConfigs ?? []),
    ],
  };
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let output = '';
    const proc = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
        ...(o.features ?? []).map((f) => `--enable-feature=${f}`),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout?.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-20_000)));
    proc.stderr?.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-20_000)));
    try {
      await waitReady(url, proc, () => output);
    } catch (err) {
      lastError = err;
      proc.kill('SIGKILL');
      continue;
    }
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    // Never leave a Prometheus behind if the test process dies before close().
    const killOnExit = (): void => void proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    return {
      url,
      query: async (expr, time) =>
        (await api<{ resultType: string; result: PromSample[] | [number, string] }>(`${url}/api/v1/query`, {
          query: expr,
          ...(time === undefined ? {} : { time: String(time) }),
        }).then((d) =>
          // Scalars (e.g. `vector(1)` is a vector, but `1` is a scalar) become one unlabelled sample.
          d.resultType === 'scalar' ? [{ metric: {}, value: d.result as [number, string] }] : (d.result as PromSample[]),
        )),
      labelValues: (label, match) =>
        api<string[]>(`${url}/api/v1/label/${encodeURIComponent(label)}/values`, match === undefined ? {} : { 'match[]': match }),
      targets: async () =>
        (await api<{ activeTargets: { scrapeUrl: string; health: string; lastError: string }[] }>(`${url}/api/v1/targets`, {})).activeTargets,
      close: async () => {
        process.removeListener('exit', killOnExit);
        if (proc.exitCode === null) {
          proc.kill('SIGTERM');
          const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError instanceof Error ? lastError : new Error('prometheus did not start');
}

/** Poll `fn` until it returns true (or throw after `timeoutMs` with `what`). */
export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

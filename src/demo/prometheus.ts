/**
 * A Prometheus configuration that scrapes every merged metrics endpoint of the demo, and (with
 * `--prometheus`) a real Prometheus started with it and with the shipped rules (deploy/prometheus).
 * Targets carry `namespace` and `pod` labels, as the PodMonitor in deploy/kubernetes gives them, so the
 * rules and dashboards see the same labels as in a cluster.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** One scrape target. */
export interface ScrapeTarget {
  /** host:port */
  readonly address: string;
  readonly path: string;
  readonly namespace: string;
  readonly pod: string;
  readonly workload: string;
}

/** The repository's deploy/prometheus rule files that exist (the demo ships them). */
export function shippedRuleFiles(): string[] {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/prometheus');
  return ['recording-rules.yaml', 'alerts.yaml'].map((f) => path.join(dir, f)).filter((f) => existsSync(f));
}

/** Render the configuration (YAML). */
export function renderPrometheusConfig(targets: readonly ScrapeTarget[], options: { intervalSeconds?: number; ruleFiles?: readonly string[] } = {}): string {
  const interval = `${options.intervalSeconds ?? 5}s`;
  const byPath = new Map<string, ScrapeTarget[]>();
  for (const t of targets) byPath.set(t.path, [...(byPath.get(t.path) ?? []), t]);
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    ...(options.ruleFiles && options.ruleFiles.length > 0 ? { rule_files: [...options.ruleFiles] } : {}),
    scrape_configs: [...byPath.entries()].map(([metricsPath, ts], i) => ({
      // The job name Istio's envoy-stats PodMonitor gives its targets.
      job_name: i === 0 ? 'envoy-stats' : `envoy-stats-${i}`,
      metrics_path: metricsPath,
      static_configs: ts.map((t) => ({ targets: [t.address], labels: { namespace: t.namespace, pod: t.pod } })),
    })),
  };
  return stringify(config, { lineWidth: 0 });
}

/** A Prometheus child process. */
export interface PrometheusProcess {
  readonly url: string;
  readonly configFile: string;
  close(): Promise<void>;
}

/** True when a `prometheus` binary runs on this machine. */
export function hasPrometheusBinary(): boolean {
  const r = spawnSync('prometheus', ['--version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

/** Start Prometheus on `port` with `config`, storing in a temporary directory removed at close. */
export function startPrometheus(config: string, port: number): PrometheusProcess {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-demo-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => undefined);
  return {
    url: `http://127.0.0.1:${port}`,
    configFile,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

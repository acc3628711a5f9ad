import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEPLOY_DIR } from '../../deploy/generate-prometheus-rule.js';
import { findBinary, requireBinary } from './binaries.js';

const PROMTOOL = findBinary('promtool') ?? 'promtool';
const RULES_DIR = path.join(DEPLOY_DIR, 'prometheus');
const TESTS_DIR = path.join(RULES_DIR, 'tests');
const RULE_FILES = ['recording-rules.yaml', 'alerts.yaml'];

/** promtool is required under CI; elsewhere its tests are skipped with a message. */
function hasPromtool(): boolean {
  return requireBinary('promtool') !== undefined;
}

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; interval?: string; rules: Rule[] }[];
}
const load = (file: string): RuleFile => parse(readFileSync(path.join(RULES_DIR, file), 'utf8')) as RuleFile;
const recording = load('recording-rules.yaml');
const alerts = load('alerts.yaml');

// consumers.md §4.3: the 14 metrics of Istio's production-scale aggregation rules.
const ISTIO_AGGREGATED = [
  'istio_requests_total',
  'istio_request_duration_milliseconds_count',
  'istio_request_duration_milliseconds_sum',
  'istio_request_duration_milliseconds_bucket',
  'istio_request_bytes_count',
  'istio_request_bytes_sum',
  'istio_request_bytes_bucket',
  'istio_response_bytes_count',
  'istio_response_bytes_sum',
  'istio_response_bytes_bucket',
  'istio_tcp_sent_bytes_total',
  'istio_tcp_received_bytes_total',
  'istio_tcp_connections_opened_total',
  'istio_tcp_connections_closed_total',
];

describe('deploy/prometheus', () => {
  describe('recording-rules.yaml', () => {
    const group = recording.groups.find((g) => g.name === 'istio.recording-rules');

    it("records Istio's 14 workload:* aggregations every 5s", () => {
      expect(group?.interval).toBe('5s');
      expect(group?.rules.map((r) => r.record)).toEqual(ISTIO_AGGREGATED.map((m) => `workload:${m}`));
    });

    it.each(ISTIO_AGGREGATED)('workload:%s sums its own metric without the per-pod labels', (metric) => {
      const rule = group?.rules.find((r) => r.record === `workload:${metric}`);
      expect(rule?.expr.trim()).toBe(`sum without(instance, pod, kubernetes_namespace, kubernetes_pod_name) (${metric})`);
    });

    it("keeps Istio's optimised istio:* examples verbatim", () => {
      const names = recording.groups.flatMap((g) => g.rules.map((r) => r.record));
      expect(names).toContain('istio:istio_requests:by_destination_service:rate1m');
      expect(names).toContain('istio:istio_request_duration_milliseconds_bucket:p95:rate1m');
    });
  });

  describe('alerts.yaml', () => {
    const rules = alerts.groups.flatMap((g) => g.rules);

    it('alerts on error rate, P99 latency, stopped traffic, overflowed series, sidecar down and unknown peers', () => {
      expect(rules.map((r) => r.alert)).toEqual(
        expect.arrayContaining([
          'IstioHighRequestErrorRate',
          'IstioHighRequestLatencyP99',
          'IstioTrafficStopped',
          'MeshtelSeriesOverflow',
          'MeshtelSidecarDown',
          'MeshtelUnknownPeersSurge',
        ]),
      );
    });

    it.each(rules.map((r) => [r.alert ?? '?', r] as const))('%s has a severity, a summary and a description', (_name, rule) => {
      expect(['warning', 'critical']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary).toBeTruthy();
      expect(rule.annotations?.description).toBeTruthy();
    });

    it('reads only recorded series that recording-rules.yaml defines', () => {
      const recorded = new Set(recording.groups.flatMap((g) => g.rules.map((r) => r.record)));
      for (const r of rules) {
        for (const m of r.expr.matchAll(/\b(istio:[\w:]+)/g)) expect(recorded, `${r.alert} reads ${m[1]}`).toContain(m[1]);
      }
    });

    it('has a promtool unit test for every alert', () => {
      const tested = new Set<string>();
      for (const file of readdirSync(TESTS_DIR).filter((f) => f.endsWith('.test.yaml'))) {
        const doc = parse(readFileSync(path.join(TESTS_DIR, file), 'utf8')) as {
          tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
        };
        for (const t of doc.tests) for (const a of t.alert_rule_test ?? []) if (a.exp_alerts.length > 0) tested.add(a.alertname);
      }
      expect([...tested].sort()).toEqual(rules.map((r) => r.alert).sort());
    });
  });

  describe('promtool', () => {
    it('check rules: every rule file parses, with no duplicate rules', (ctx) => {
      if (!hasPromtool()) return ctx.skip();
      const out = execFileSync(PROMTOOL, ['check', 'rules', '--lint=all', '--lint-fatal', ...RULE_FILES], {
        cwd: RULES_DIR,
        encoding: 'utf8',
      });
      expect(out).toContain('SUCCESS: 19 rules found');
      expect(out).toContain('SUCCESS: 7 rules found');
    });

    it.for(readdirSync(TESTS_DIR).filter((f) => f.endsWith('.test.yaml')))('test rules: %s passes', (file, ctx) => {
      if (!hasPromtool()) return ctx.skip();
      let out: string;
      try {
        out = execFileSync(PROMTOOL, ['test', 'rules', file], { cwd: TESTS_DIR, encoding: 'utf8', stdio: 'pipe' });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(`promtool test rules ${file} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      }
      expect(out).toContain('SUCCESS');
    });
  });
});

/**
 * End to end with a real Prometheus 2.42: the demo mesh runs on loopback, Prometheus scrapes every sidecar's
 * merged endpoint each second (file_sd, as a PodMonitor would: `namespace` and `pod` target labels) and evaluates
 * deploy/prometheus, and then every query a user's tools will run must parse and return data: our dashboards,
 * Istio's own Mesh, Service and Workload dashboards, Kiali's graph queries and the recording rules. The numbers
 * must agree with what the load generator sent and with the demo's fault schedule, and the error-rate alert must
 * pick the faulty workload. A second Prometheus federates the workload:* series the way docs/deploy.md says and
 * must serve Istio's Mesh dashboard unchanged.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { GrafanaModel } from '../dashboards/grafana-model.js';
import { REPO_ROOT, istioDashboardPath } from '../support/fixtures.js';
import { evaluateDashboard } from './support/dashboard-queries.js';
import type { QueryOutcome } from './support/dashboard-queries.js';
import { startDemoMesh } from './support/demo-mesh.js';
import type { DemoMesh } from './support/demo-mesh.js';
import { hasPrometheus, startPrometheus, waitFor } from './support/prometheus.js';
import { createPrometheusSource } from '../../src/console/sources.js';
import type { MeshGraph } from '../../src/console/graph.js';
import { DEMO_EDGES, FAULTY_EDGE } from './support/console-page.js';
import type { PrometheusHandle } from './support/prometheus.js';

const SCRAPE_INTERVAL_S = 1;
/** Requests that may be decided but not yet counted when a scrape lands (20 req/s, ~100 ms per request). */
const IN_FLIGHT_SLACK = 4;
const RULES_DIR = path.join(REPO_ROOT, 'deploy/prometheus');
const RULE_FILES = ['recording-rules.yaml', 'alerts.yaml'].map((f) => path.join(RULES_DIR, f));
const ISTIO_DASHBOARDS = ['istio-mesh-dashboard.gen.json', 'istio-service-dashboard.json', 'istio-workload-dashboard.json'];

const runnable = hasPrometheus();

const loadModel = (file: string): GrafanaModel => JSON.parse(readFileSync(file, 'utf8')) as GrafanaModel;
const ourDashboards = readdirSync(path.join(REPO_ROOT, 'dashboards'))
  .filter((f) => f.endsWith('.json'))
  .sort();

/** A readable list of the queries that failed, for assertion messages. */
function failures(outcomes: readonly QueryOutcome[], mayBeEmpty: (o: QueryOutcome) => string | undefined): string[] {
  const out: string[] = [];
  for (const o of outcomes) {
    if (o.errors.length > 0) out.push(`${o.kind} ${o.where}: ${o.errors[0] ?? ''}\n    ${o.expr}`);
    else if (o.withData === 0 && mayBeEmpty(o) === undefined) out.push(`${o.kind} ${o.where}: no data (${o.tried} tried)\n    ${o.expr}`);
  }
  return out;
}

/** Metric names (istio_*, meshtel_*, process_*, nodejs_*) mentioned in `text` that have no series at all. */
async function missingMetrics(prom: PrometheusHandle, text: string): Promise<string[]> {
  const names = [...new Set(text.match(/\b(?:istio|meshtel|process|nodejs)_[a-z_]+\b/g) ?? [])].sort();
  const missing: string[] = [];
  for (const name of names) if ((await prom.query(`count({__name__="${name}"})`)).length === 0) missing.push(name);
  return missing;
}

/** The value of a one-sample instant query (NaN when empty). */
async function scalar(prom: PrometheusHandle, expr: string): Promise<number> {
  const r = await prom.query(expr);
  return r.length === 0 ? Number.NaN : Number(r[0]?.value[1]);
}

describe.skipIf(!runnable)('meshtel with a real Prometheus', () => {
  let mesh: DemoMesh;
  let prom: PrometheusHandle;

  beforeAll(async () => {
    mesh = await startDemoMesh();
    prom = await startPrometheus({ targets: mesh.targets, ruleFiles: RULE_FILES, interval: `${SCRAPE_INTERVAL_S}s` });
    // At least two scrapes of every target after the first (three `up` samples), then recorded workload:* series.
    await waitFor('two scrapes of every sidecar', async () => {
      const r = await prom.query('count_over_time(up[1m]) >= 3 and up == 1');
      return r.length === mesh.targets.length;
    });
    await waitFor('request traffic and recorded workload:* series', async () => {
      const rate = await scalar(prom, 'sum(rate(istio_requests_total[1m]))');
      const recorded = await prom.query('workload:istio_requests_total');
      return rate > 0 && recorded.length > 0;
    });
  });

  afterAll(async () => {
    await prom?.close();
    await mesh?.close();
  });

  it('scrapes every merged endpoint of the demo without errors', async () => {
    const targets = await prom.targets();
    expect(targets.map((t) => t.scrapeUrl).sort()).toEqual(mesh.targets.map((t) => `http://${t.address}${t.path}`).sort());
    for (const t of targets) expect({ url: t.scrapeUrl, health: t.health, error: t.lastError }).toEqual({ url: t.scrapeUrl, health: 'up', error: '' });
  });

  describe.each(ourDashboards)('dashboards/%s', (file) => {
    it('every template and panel query parses and returns data', async () => {
      const outcomes = await evaluateDashboard(prom, loadModel(path.join(REPO_ROOT, 'dashboards', file)), mesh.prefer);
      expect(outcomes.length).toBeGreaterThan(0);
      const failed = failures(outcomes, (o) => mesh.mayBeEmpty(o.expr));
      // Name the metrics the mesh never exported, so a failure says what to wire rather than which panel is blank.
      const missing = await missingMetrics(prom, failed.join('\n'));
      expect({ failed, missing }).toEqual({ failed: [], missing: [] });
    });
  });

  describe.each(ISTIO_DASHBOARDS)("Istio's %s", (file) => {
    it('every template and panel query parses and returns data', async () => {
      const outcomes = await evaluateDashboard(prom, loadModel(istioDashboardPath(file)), mesh.prefer);
      expect(outcomes.length).toBeGreaterThan(0);
      // Istio splits several panels into an mTLS and a non-mTLS target (connection_security_policy or
      // destination_principal); a mesh running one mode fills one half, so the other half may be empty when its
      // sibling in the same panel has data.
      const split = /connection_security_policy\s*!?=\s*"mutual_tls"|destination_principal\s*[=!]~\s*"spiffe/;
      const panelOf = (o: QueryOutcome): string => o.where.replace(/ \[[A-Z]\]$/, '');
      const halfOfMtlsSplit = (o: QueryOutcome): string | undefined =>
        split.test(o.expr) && outcomes.some((x) => x !== o && panelOf(x) === panelOf(o) && split.test(x.expr) && x.withData > 0)
          ? 'the other half of an mTLS/plaintext split has data'
          : mesh.mayBeEmpty(o.expr);
      expect(failures(outcomes, halfOfMtlsSplit)).toEqual([]);
    });
  });

  describe('recording rules', () => {
    const rules = RULE_FILES.flatMap((f) => (parse(readFileSync(f, 'utf8')) as { groups: { rules: { record?: string }[] }[] }).groups)
      .flatMap((g) => g.rules)
      .flatMap((r) => (r.record === undefined ? [] : [r.record]));

    it.each(rules)('%s returns data', async (record) => {
      await waitFor(`${record} to be recorded`, async () => (await prom.query(record)).length > 0, 15_000).catch((err: Error) => {
        if (mesh.mayBeEmpty(record) === undefined) throw err;
      });
    });

    it('workload:istio_requests_total has one series per pod-less label set and the same total as the raw series', async () => {
      const keys = (r: readonly { metric: Record<string, string> }[]): string[] =>
        r.map((x) => JSON.stringify({ ...x.metric, __name__: undefined })).sort();
      const compare = async () => {
        const recorded = await prom.query('workload:istio_requests_total');
        const expected = await prom.query('sum without (instance, pod, kubernetes_namespace, kubernetes_pod_name) (istio_requests_total)');
        const total = await scalar(prom, 'sum(workload:istio_requests_total)');
        const raw = await scalar(prom, 'sum(istio_requests_total)');
        const perSecond = await scalar(prom, 'sum(rate(istio_requests_total[1m]))');
        // The rule runs every 5s on samples appended up to one scrape later, so a label set first seen in the
        // last rule interval may be missing, and the totals differ by at most one rule and one scrape interval
        // of traffic.
        const slack = Math.ceil(perSecond * (5 + 2 * SCRAPE_INTERVAL_S)) + 1;
        return { recorded: keys(recorded), expected: keys(expected), behind: raw - total, slack };
      };
      let c = await compare();
      await waitFor('the recording rule to catch up', async () => {
        c = await compare();
        return JSON.stringify(c.recorded) === JSON.stringify(c.expected) && c.behind >= 0 && c.behind <= c.slack;
      }, 20_000).catch(() => undefined);
      expect(c.recorded).toEqual(c.expected);
      expect(c.behind).toBeGreaterThanOrEqual(0);
      expect(c.behind).toBeLessThanOrEqual(c.slack);
    });
  });

  describe('numbers', () => {
    it('keeps 67 series per HTTP label set: 1 counter and 3 histograms of 19 buckets, +Inf, sum and count', async () => {
      const [one] = await prom.query('topk(1, istio_requests_total{reporter="destination", request_protocol="http"})');
      expect(one).toBeDefined();
      const { __name__: _name, ...labels } = one?.metric ?? {};
      const selector = Object.entries(labels)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(', ');
      const byName = await prom.query(`count by (__name__) ({${selector}})`);
      const counts: Record<string, number> = Object.fromEntries(byName.map((s) => [s.metric.__name__ ?? '', Number(s.value[1])]));
      expect(counts).toEqual({
        istio_requests_total: 1,
        istio_request_duration_milliseconds_bucket: 20,
        istio_request_duration_milliseconds_sum: 1,
        istio_request_duration_milliseconds_count: 1,
        istio_request_bytes_bucket: 20,
        istio_request_bytes_sum: 1,
        istio_request_bytes_count: 1,
        istio_response_bytes_bucket: 20,
        istio_response_bytes_sum: 1,
        istio_response_bytes_count: 1,
      });
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(67);
    });

    it('counts the requests the load generator sent, within one scrape interval', async () => {
      const { selector } = mesh.loadCheck;
      // The load generator's count now, Prometheus's latest sample and that sample's scrape time.
      const before = mesh.sentRequests();
      const sampledAt = await scalar(prom, `max(timestamp(istio_requests_total{${selector}}))`);
      const value = await scalar(prom, `sum(istio_requests_total{${selector}})`);
      const after = mesh.sentRequests();
      // What the load generator had counted when Prometheus scraped: now minus the sample's age at the
      // configured (open-model, constant) rate. The scrape must agree within one scrape interval of traffic.
      const age = Math.max(0, before.at / 1000 - sampledAt);
      const atScrape = before.total - mesh.requestRate * age;
      expect(value).toBeGreaterThan(0);
      expect(value).toBeLessThanOrEqual(after.total);
      expect(Math.abs(value - atScrape)).toBeLessThanOrEqual(mesh.requestRate * SCRAPE_INTERVAL_S + 2);
    });

    it("reports each workload's success rate as the demo's fault schedule makes it", async () => {
      for (const fault of mesh.faults) {
        // Cumulative counts from one scrape of the workload's sidecar (a consistent snapshot).
        const all = await scalar(prom, `sum(istio_requests_total{${fault.selector}})`);
        const failed = await scalar(prom, `sum(istio_requests_total{${fault.selector}, response_code=~"5.."}) or vector(0)`);
        expect(all, fault.name).toBeGreaterThan(20);
        // The demo fails exactly ⌊n·share⌋ of n requests (src/demo createFaultSchedule); the scrape may land
        // while a few requests are in flight, whose outcome is decided but not yet counted.
        expect(Math.abs(failed - fault.errorShare * all), `${fault.name}: ${failed} of ${all} failed`).toBeLessThanOrEqual(IN_FLIGHT_SLACK);
      }
    });
  });

  describe("Kiali's graph queries (consumers.md §2, kiali/kiali graph/telemetry/istio)", () => {
    // The 13 node labels of every graph query, then what each query adds (istio.go, appender/*.go).
    const NODE = [
      'source_cluster',
      'source_workload_namespace',
      'source_workload',
      'source_canonical_service',
      'source_canonical_revision',
      'destination_cluster',
      'destination_service_namespace',
      'destination_service',
      'destination_service_name',
      'destination_workload_namespace',
      'destination_workload',
      'destination_canonical_service',
      'destination_canonical_revision',
    ];
    // A series without all of these is skipped by Kiali ("missing expected TS labels", populateTrafficMap).
    const REQUIRED = NODE.filter((l) => l !== 'source_cluster' && l !== 'destination_cluster');
    const ns = (): string => mesh.namespace;
    const cases: [string, () => string, string[]][] = [
      [
        'HTTP/gRPC requests, destination-reported',
        () =>
          `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="${ns()}"}[60s])) by (${[...NODE, 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags'].join(',')}) > 0`,
        [...REQUIRED, 'request_protocol', 'response_code', 'response_flags'],
      ],
      [
        'HTTP/gRPC requests, source-reported',
        () =>
          `sum(rate(istio_requests_total{reporter="source",source_workload_namespace="${ns()}"}[60s])) by (${[...NODE, 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags'].join(',')}) > 0`,
        [...REQUIRED, 'request_protocol', 'response_code', 'response_flags'],
      ],
      [
        'gRPC messages sent',
        () => `sum(rate(istio_request_messages_total{reporter="destination",destination_workload_namespace="${ns()}"}[60s])) by (${NODE.join(',')}) > 0`,
        REQUIRED,
      ],
      [
        'TCP bytes (received = istio_tcp_sent_bytes_total)',
        () =>
          `sum(rate(istio_tcp_sent_bytes_total{app!="ztunnel",reporter="source",source_workload_namespace="${ns()}"}[60s])) by (app,${NODE.join(',')},response_flags) > 0`,
        [...REQUIRED, 'response_flags'],
      ],
      [
        'response time P95',
        () =>
          `histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_service_namespace="${ns()}"}[60s])) by (le,${NODE.join(',')},request_protocol)) > 0`,
        [...REQUIRED, 'request_protocol'],
      ],
      [
        'security policy',
        () =>
          `sum(rate(istio_requests_total{reporter="destination",source_workload_namespace="${ns()}"}[60s])) by (${[...NODE.filter((l) => l !== 'destination_service'), 'source_principal', 'destination_principal', 'connection_security_policy'].join(',')}) > 0`,
        [...REQUIRED.filter((l) => l !== 'destination_service'), 'source_principal', 'destination_principal', 'connection_security_policy'],
      ],
    ];

    it.each(cases)('%s: returns edges that carry every label Kiali requires', async (_name, query, required) => {
      const result = await prom.query(query());
      expect(result.length).toBeGreaterThan(0);
      for (const s of result) {
        const absent = required.filter((l) => (s.metric[l] ?? '') === '');
        expect(absent, JSON.stringify(s.metric)).toEqual([]);
        if (s.metric.request_protocol !== undefined) expect(['http', 'grpc']).toContain(s.metric.request_protocol);
      }
    });
  });

  describe('alerts (deploy/prometheus/alerts.yaml)', () => {
    it('puts IstioHighRequestErrorRate in pending for exactly the workloads with injected 5xx faults above 5%', async () => {
      const expected = mesh.faults
        .filter((f) => f.errorShare > 0.05)
        .map((f) => `${f.workload}.${f.namespace}`)
        .sort();
      const alerting = async (): Promise<string[]> =>
        (await prom.query('ALERTS{alertname="IstioHighRequestErrorRate"}'))
          .map((s) => `${s.metric.destination_workload}.${s.metric.destination_workload_namespace}`)
          .sort();
      await waitFor('the error-rate alert', async () => (await alerting()).length >= expected.length, 30_000).catch(() => undefined);
      expect(await alerting()).toEqual(expected);
    });

    it('does not alert on sidecars, series overflow or unknown peers in a healthy demo', async () => {
      const firing = await prom.query('ALERTS{alertname=~"MeshtelSidecarDown|MeshtelSeriesOverflow|MeshtelSpansDropped"}');
      expect(firing.map((s) => s.metric)).toEqual([]);
    });
  });

  describe('federation (docs/deploy.md)', () => {
    let global: PrometheusHandle | undefined;
    afterAll(async () => {
      await global?.close();
    });

    it("serves Istio's mesh dashboard from the federated workload:* series with the prefix stripped", async () => {
      global = await startPrometheus({
        targets: [],
        ruleFiles: [],
        interval: `${SCRAPE_INTERVAL_S}s`,
        extraScrapeConfigs: [
          {
            // istio.io observability best practices, job `istio-prometheus`, with a static target.
            job_name: 'istio-prometheus',
            honor_labels: true,
            metrics_path: '/federate',
            params: { 'match[]': ['{__name__=~"workload:(.*)"}'] },
            static_configs: [{ targets: [new URL(prom.url).host] }],
            metric_relabel_configs: [{ source_labels: ['__name__'], regex: 'workload:(.*)', target_label: '__name__', action: 'replace' }],
          },
        ],
      });
      const g = global;
      await waitFor('federated istio_requests_total', async () => (await g.query('count_over_time(istio_requests_total[1m]) >= 3')).length > 0);
      expect(await g.query('{__name__=~"workload:.*"}')).toEqual([]);
      expect(await g.query('istio_requests_total{pod!=""}')).toEqual([]);
      const outcomes = await evaluateDashboard(g, loadModel(istioDashboardPath('istio-mesh-dashboard.gen.json')));
      // istio_build is not federated (only workload:*), so the versions table is empty upstream.
      expect(failures(outcomes, (o) => (o.expr.includes('istio_build') ? 'not federated' : mesh.mayBeEmpty(o.expr)))).toEqual([]);
    });
  });

  describe('the console over this Prometheus (meshtel console --prometheus)', () => {
    it('draws the same service graph as from the sidecars, with the fault on the reviews → reviews-v2 leg', async () => {
      const source = createPrometheusSource({ url: prom.url, window: '30s' });
      try {
        let graph: MeshGraph | null = null;
        await waitFor('every demo edge in the console graph', async () => {
          graph = await source.graph();
          const ids = new Set(graph?.edges.map((e) => e.id));
          return DEMO_EDGES.every((id) => ids.has(id));
        });
        const g = graph as unknown as MeshGraph;
        // Nothing but the demo's legs (both sources share graph.ts's legsOf), each workload and service once.
        expect(g.edges.map((e) => e.id).sort()).toEqual([...DEMO_EDGES].sort());
        expect(g.nodes.filter((n) => n.kind === 'service').map((n) => n.name).sort()).toEqual(['details', 'mongodb', 'productpage', 'ratings', 'reviews']);
        const faulty = g.edges.find((e) => e.id === FAULTY_EDGE);
        const fault = mesh.faults.find((f) => f.errorShare > 0);
        expect(faulty?.health).toBe('bad');
        // PromQL's rate() over 30 s at 1 s scrapes: the share is the schedule's within a few requests of the window.
        const n = (faulty?.rps ?? 0) * g.windowSeconds;
        expect(Math.abs((faulty?.errorShare ?? 0) - (fault?.errorShare ?? 0)), `${n.toFixed(0)} requests`).toBeLessThanOrEqual((1 + 2 * IN_FLIGHT_SLACK) / n);
        for (const e of g.edges.filter((x) => x.protocol !== 'tcp')) expect(e.p99, e.id).not.toBeNull();
        // A service node's detail: its callers' side and its workloads' side, each with requests.
        const d = await source.detail('svc:bookinfo/reviews', 60);
        expect(d.inbound.some((p) => p.rps > 0) && d.outbound.some((p) => p.rps > 0)).toBe(true);
        expect(d.inbound.some((p) => (p.codes['500'] ?? 0) > 0)).toBe(true);
      } finally {
        source.close();
      }
    });
  });
});

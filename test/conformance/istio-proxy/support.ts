/**
 * Helpers of the istio/proxy conformance suite: fixtures (resolved upstream test data, checked in with path, branch
 * and commit), Istio node metadata → WorkloadMetadata, and a comparison that works like the Go driver's
 * `driver.ExactStat` (test/envoye2e/driver/stats.go): the same series, the same labels in the same order, the same value.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { expect } from 'vitest';
import { parseExposition } from '../../../src/stats/exposition-parser.js';
import { inputFromObject } from '../../../src/cli/encode.js';
import { createHttpMetadataExchange, createWorkloadMetadata, nodeHeaderGetter, nodeHeaderRemover, nodeHeaderSetter } from '../../../src/index.js';
import type { NodeHeaders, PayloadProfile, PeerMetadata, WorkloadMetadata } from '../../../src/index.js';
import { parseTelemetry } from '../../../src/stats/telemetry-api.js';
import type { TelemetryConfig } from '../../../src/stats/telemetry-api.js';
import { METRICS } from '../../../src/stats/definitions.js';
import { createIstioStats, renderMetricsToString } from '../../../src/index.js';
import type { IstioStats, IstioStatsOptions, Reporter } from '../../../src/index.js';
import type { HttpStreamAttributes } from '../../../src/stats/types.js';
import type { CustomMetricDefinition } from '../../../src/stats/custom-metrics.js';

/** A Prometheus metric family as istio/proxy's testdata/metric/*.yaml writes it (io.prometheus.client.MetricFamily). */
export interface MetricFamily {
  readonly name: string;
  readonly type: string;
  readonly metric: ReadonlyArray<{
    readonly counter?: { readonly value: number };
    readonly gauge?: { readonly value: number };
    readonly label: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  }>;
}

/** Read a fixture of this suite. */
export function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), 'utf8')) as T;
}

/** Workload metadata from Istio node metadata (NAME, LABELS, OWNER, ...), the keys `meshtel encode -f` accepts. */
export function fromNodeMetadata(node: Record<string, unknown>): WorkloadMetadata {
  const input = inputFromObject(node, 'node metadata');
  // pilot-agent drops pod-template-hash from LABELS before Envoy sees it (istio/istio pkg/bootstrap/config.go).
  const labels = { ...(input.labels ?? {}) };
  delete labels['pod-template-hash'];
  return createWorkloadMetadata({ ...input, labels });
}

/**
 * Assert the exposition holds exactly the series of `family` (driver.ExactStat): for each expected metric the one
 * series of that name with the same label names in the same order and the same values, and the same value; and no
 * other series of that name.
 */
export function expectExactStat(exposition: string, family: MetricFamily): void {
  const samples = parseExposition(exposition).filter((s) => s.name === family.name);
  const got = samples.map((s) => ({ labels: Object.entries(s.labels), value: s.value }));
  const want = family.metric.map((m) => ({
    labels: m.label.map((l) => [l.name, String(l.value)] as [string, string]),
    value: (m.counter ?? m.gauge)!.value,
  }));
  expect(got).toEqual(want);
}

/**
 * What the Go driver's `driver.ExistStat` is written to check: the same series (label names, order and values) as
 * `family`, whatever their values. (As written it checks only that the family exists: its switch on a fresh
 * `MetricType_COUNTER.Enum()` pointer never matches, so no label is compared; the tests that use it say which
 * labels differ from the template and why.)
 */
export function expectExistStat(exposition: string, family: MetricFamily): void {
  const got = parseExposition(exposition)
    .filter((s) => s.name === family.name)
    .map((s) => Object.entries(s.labels));
  expect(got).toEqual(family.metric.map((m) => m.label.map((l) => [l.name, String(l.value)])));
}

/** istio/proxy's stats filter config (`stats.PluginConfig`, source/extensions/filters/http/istio_stats/config.proto). */
export interface StatsPluginConfig {
  readonly definitions?: ReadonlyArray<{ readonly name: string; readonly value: string; readonly type?: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' }>;
  readonly metrics?: ReadonlyArray<{
    readonly name?: string;
    readonly drop?: boolean;
    readonly dimensions?: Readonly<Record<string, string>>;
    readonly tags_to_remove?: readonly string[];
  }>;
}

/**
 * The Telemetry resource istiod turns into `cfg` (the inverse of istio/istio `pilot/pkg/model/telemetry.go`
 * `generateStatsConfig`): one override per `metrics[]` entry, in order, for `mode`; `drop` → `disabled`,
 * `tags_to_remove` → REMOVE, `dimensions` → UPSERT (removals first, as istio_stats.cc applies them); an entry
 * without a name is ALL_METRICS, a name among `definitions` is `match.customMetric`.
 */
export function telemetryOfPluginConfig(cfg: StatsPluginConfig, mode: 'CLIENT' | 'SERVER'): {
  telemetry: TelemetryConfig;
  definitions: CustomMetricDefinition[];
} {
  const custom = new Set((cfg.definitions ?? []).map((d) => d.name));
  const overrides = (cfg.metrics ?? []).map((m) => {
    const name = m.name ?? '';
    const std = METRICS.find((d) => d.name === `istio_${name}`);
    if (name !== '' && std === undefined && !custom.has(name)) throw new Error(`unknown metric ${name}`);
    const match = name === '' ? { mode } : std !== undefined ? { metric: std.telemetryName, mode } : { customMetric: `istio_${name}`, mode };
    const tagOverrides: Record<string, { operation: 'REMOVE' } | { operation: 'UPSERT'; value: string }> = {};
    for (const t of m.tags_to_remove ?? []) tagOverrides[t] = { operation: 'REMOVE' };
    for (const [t, value] of Object.entries(m.dimensions ?? {})) tagOverrides[t] = { operation: 'UPSERT', value };
    return { match, ...(m.drop === true ? { disabled: true } : {}), tagOverrides };
  });
  return {
    telemetry: parseTelemetry({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', spec: { metrics: [{ overrides }] } }),
    definitions: (cfg.definitions ?? []).map((d) => ({ name: d.name, value: d.value, ...(d.type !== undefined ? { type: d.type } : {}) })),
  };
}

/**
 * `n` request/response MX exchanges between a client and a server exchange, as TestStatsPayload's 10 HTTP calls
 * make them; returns the peer each side learned last (the client's upstream, the server's downstream).
 */
export function exchangePeers(
  client: WorkloadMetadata,
  server: WorkloadMetadata,
  options: { readonly profile?: PayloadProfile; readonly additionalLabels?: readonly string[]; readonly n?: number } = {},
): { upstream: PeerMetadata; downstream: PeerMetadata } {
  const common = { ...(options.profile !== undefined ? { profile: options.profile } : {}), additionalLabels: options.additionalLabels ?? [] };
  const cx = createHttpMetadataExchange({ local: client, nodeId: 'client', ...common });
  const sx = createHttpMetadataExchange({ local: server, nodeId: 'server', ...common });
  let peers: { upstream: PeerMetadata; downstream: PeerMetadata } | undefined;
  for (let i = 0; i < (options.n ?? 10); i++) {
    const req: NodeHeaders = {};
    cx.injectRequest(req, nodeHeaderSetter);
    const inbound = sx.extractRequest(req, nodeHeaderGetter, nodeHeaderRemover);
    const res: NodeHeaders = {};
    sx.injectResponse(res, nodeHeaderSetter, inbound);
    const outbound = cx.extractResponse(res, nodeHeaderGetter, nodeHeaderRemover);
    if (!inbound.result.ok) throw new Error(`server did not learn the client: ${inbound.result.reason}`);
    if (!outbound.result.ok) throw new Error(`client did not learn the server: ${outbound.result.reason}`);
    peers = { upstream: outbound.result.peer, downstream: inbound.result.peer };
  }
  return peers!;
}

/** testdata/cluster/server.yaml.tmpl: the server cluster's metadata `istio.services[0]`. */
export const SERVER_SERVICE = { host: 'server.default.svc.cluster.local', name: 'server', namespace: 'default' } as const;

/**
 * One request of the Go driver's client as the stats filter sees it at stream end: plain text, to 127.0.0.1 and the
 * server cluster's service, answered 200 in 1 ms with 100-byte bodies; `overrides` give a scenario's differences.
 */
export function driverRequest(reporter: Reporter, peer: PeerMetadata | null, overrides: Partial<HttpStreamAttributes> = {}): HttpStreamAttributes {
  return {
    reporter,
    peer,
    peerPrincipal: '',
    localPrincipal: '',
    service: SERVER_SERVICE,
    authority: '127.0.0.1',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: 1,
    requestBytes: 100,
    responseBytes: 100,
    ...overrides,
  };
}

/** A recorder of `options` (its own registry), fed by `record`, rendered as text, then closed. */
export async function renderRecorded(options: Omit<IstioStatsOptions, 'registry'>, record: (stats: IstioStats) => void): Promise<string> {
  const stats = createIstioStats({ ...options, registry: new Registry() });
  try {
    record(stats);
    return await renderMetricsToString(stats, 'text');
  } finally {
    stats.close();
  }
}

/** The release-1.29 files of `TestStatsPayload/Default` (fixtures/stats-default.json), whose node metadata the other scenarios reuse. */
export const DEFAULT_129 = fixture<{
  branches: Record<
    string,
    { files: Record<'clientNodeMetadata' | 'serverNodeMetadata', { value: Record<string, unknown> }> & Record<'client_request_total' | 'server_request_total' | 'istio_build', { value: MetricFamily }> }
  >;
}>('stats-default.json').branches['release-1.29']!.files;

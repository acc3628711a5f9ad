/**
 * Telemetry customisation scenarios of istio/proxy test/envoye2e/stats_plugin/stats_test.go (release-1.29), replayed
 * through the public API with the upstream stats filter configs translated into the Telemetry resource istiod
 * would have generated them from (support.ts `telemetryOfPluginConfig`):
 * - `TestStatsPayload/Customized`: tag expressions in Envoy's attribute vocabulary (`xds.node.metadata[...]`,
 *   `xds.route_name`, `xds.cluster_name`, `xds.cluster_metadata...`, `filter_state.upstream_peer.service`), a tag
 *   that does not parse (dropped), one that does not evaluate (`unknown`), a custom metric, a dropped metric.
 * - `TestStatsParserRegression`: the same config replacing an empty one must load (the bad tag is reported, the
 *   rest applies).
 * - `TestAdditionalLabels`: `filter_state.{upstream,downstream}_peer.labels['role']` with `additional_labels: [role]`.
 * Inputs and expectations: fixtures/stats-customized.json (+ the Default node metadata in stats-default.json).
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createIstioStats, renderMetricsToString } from '../../../src/index.js';
import type { HttpStreamAttributes, IstioStatsOptions, PeerMetadata, WorkloadMetadata } from '../../../src/index.js';
import { parseExposition } from '../../../src/stats/exposition-parser.js';
import { DEFAULT_129, exchangePeers, expectExactStat, fixture, fromNodeMetadata, telemetryOfPluginConfig } from './support.js';
import type { MetricFamily, StatsPluginConfig } from './support.js';

interface Files {
  client_config_customized: { value: StatsPluginConfig };
  client_custom_metric: { value: MetricFamily };
  client_request_total_customized: { value: MetricFamily };
  client_additional_labels: { value: StatsPluginConfig };
  server_additional_labels: { value: StatsPluginConfig };
  mx_native_outbound_labels: { value: ReadonlyArray<{ typed_config: { value: { additional_labels: string[] } } }> };
  client_request_total_labels: { value: MetricFamily };
  server_request_total_labels: { value: MetricFamily };
  cluster_server: {
    value: { name: string; metadata: { filter_metadata: { istio: { services: Array<{ host: string; name: string; namespace: string }> } } } };
  };
}
const F = fixture<{ commit: string; files: Files }>('stats-customized.json').files;
const D = DEFAULT_129;

const CLIENT = fromNodeMetadata(D.clientNodeMetadata.value);
const SERVER = fromNodeMetadata(D.serverNodeMetadata.value);
/** testdata/cluster/server.yaml.tmpl: the client's cluster and its istio.services metadata. */
const CLUSTER = F.cluster_server.value;
const SERVICE = CLUSTER.metadata.filter_metadata.istio.services[0]!;
/** testdata/listener/client.yaml.tmpl names the client's only route `client_route`. */
const CLIENT_ROUTE = 'client_route';
/** The server's inbound route and cluster as istiod names them (the scenarios do not read them). */
const SERVER_CLUSTER = 'inbound|9080||';

function attrs(reporter: 'source' | 'destination', peer: PeerMetadata | null): HttpStreamAttributes {
  return {
    reporter,
    peer,
    peerPrincipal: '',
    localPrincipal: '',
    service: SERVICE,
    clusterName: reporter === 'source' ? CLUSTER.name : SERVER_CLUSTER,
    routeName: reporter === 'source' ? CLIENT_ROUTE : 'default',
    authority: '127.0.0.1',
    protocol: 'http',
    responseCode: 200,
    responseFlags: 0,
    durationMs: 1,
    requestBytes: 100,
    responseBytes: 100,
  };
}

function exchange(additionalLabels: readonly string[] = []): { upstream: PeerMetadata; downstream: PeerMetadata } {
  return exchangePeers(CLIENT, SERVER, { additionalLabels });
}

async function run(local: WorkloadMetadata, options: Partial<IstioStatsOptions>, record: HttpStreamAttributes, n = 10): Promise<{ text: string; errors: number }> {
  const stats = createIstioStats({ local, registry: new Registry(), ...options });
  try {
    for (let i = 0; i < n; i++) stats.recordHttp(record);
    const text = await renderMetricsToString(stats, 'text');
    const errors = parseExposition(text).find((s) => s.name === 'meshtel_stats_errors_total')?.value ?? 0;
    return { text, errors };
  } finally {
    stats.close();
  }
}

describe(`stats_plugin Customized (release-1.29@${fixture<{ commit: string }>('stats-customized.json').commit.slice(0, 8)})`, () => {
  it('client: Envoy attribute names evaluate as in Envoy; the unparsable tag is dropped, the unevaluable one is unknown', async () => {
    const { upstream } = exchange();
    const { telemetry, definitions } = telemetryOfPluginConfig(F.client_config_customized.value, 'CLIENT');
    // Exactly one tag does not compile: destination_app ("cannot _ parse | 0").
    expect(telemetry.expressionErrors.map((e) => e.tag)).toEqual(['destination_app']);
    const { text, errors } = await run(CLIENT, { telemetry, definitions }, attrs('source', upstream));
    expect(errors).toBe(0);
    expectExactStat(text, F.client_request_total_customized.value);
    expectExactStat(text, F.client_custom_metric.value);
    // driver.MissingStat: the dropped metric has no series.
    expect(parseExposition(text).filter((s) => s.name.startsWith('istio_request_duration_milliseconds'))).toEqual([]);
  });

  it('server (server_config.yaml, no overrides) is the Default series', async () => {
    const { downstream } = exchange();
    const { text } = await run(SERVER, {}, attrs('destination', downstream));
    expectExactStat(text, D.server_request_total.value);
  });
});

describe('TestStatsParserRegression (release-1.29)', () => {
  it('the customized config replaces an empty one; the bad expression is reported once and the rest applies', async () => {
    const { upstream } = exchange();
    const empty = telemetryOfPluginConfig({}, 'CLIENT');
    const first = await run(CLIENT, { telemetry: empty.telemetry }, attrs('source', upstream), 1);
    expect(first.errors).toBe(0);
    const next = telemetryOfPluginConfig(F.client_config_customized.value, 'CLIENT');
    const second = await run(CLIENT, { telemetry: next.telemetry, definitions: next.definitions }, attrs('source', upstream), 1);
    expect(second.errors).toBe(0);
    expect(next.telemetry.expressionErrors).toHaveLength(1);
    expect(next.telemetry.expressionErrors[0]).toMatchObject({ tag: 'destination_app', value: 'cannot _ parse | 0' });
    const samples = parseExposition(second.text);
    expect(samples.find((s) => s.name === 'istio_requests_total')?.labels.route_name).toBe('client_route,server-outbound-cluster,server');
  });
});

describe('TestAdditionalLabels (release-1.29)', () => {
  const labels = F.mx_native_outbound_labels.value[0]!.typed_config.value.additional_labels;

  it('filter_state.upstream_peer.labels[\'role\'] on the client, downstream_peer on the server', async () => {
    expect(labels).toEqual(['role']);
    const { upstream, downstream } = exchange(labels);
    const client = telemetryOfPluginConfig(F.client_additional_labels.value, 'CLIENT');
    const server = telemetryOfPluginConfig(F.server_additional_labels.value, 'SERVER');
    expectExactStat((await run(CLIENT, { telemetry: client.telemetry }, attrs('source', upstream))).text, F.client_request_total_labels.value);
    expectExactStat((await run(SERVER, { telemetry: server.telemetry }, attrs('destination', downstream))).text, F.server_request_total_labels.value);
  });

  it('without additional_labels the peer carries no role: the tag is unknown', async () => {
    const { upstream } = exchange();
    const client = telemetryOfPluginConfig(F.client_additional_labels.value, 'CLIENT');
    const { text } = await run(CLIENT, { telemetry: client.telemetry }, attrs('source', upstream));
    expect(parseExposition(text).find((s) => s.name === 'istio_requests_total')?.labels.role).toBe('unknown');
  });
});

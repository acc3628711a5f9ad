/**
 * The other scenarios of istio/proxy test/envoye2e/tcp_metadata_exchange/tcp_metadata_exchange_test.go
 * (release-1.29), through real meshtel sidecars on loopback with the upstream node metadata and sa/client, sa/server
 * certificates (fixtures/tcp-metadata-exchange-scenarios.json: the resolved metric, filter and cluster templates):
 * - `TestTCPMXAdditionalLabels`: `additional_labels: [role]` on both MX filters and a `role` dimension on
 *   `tcp_connections_opened_total` (client `filter_state.upstream_peer.labels['role']`, server
 *   `filter_state.downstream_peer...`): the eight families exactly (driver.ExactStat); the client's `role` is
 *   `unknown`, as Envoy's CEL reads the downstream connection's filter state and a TCP client's peer is upstream.
 * - `TestTCPMetricsDuringActiveConnection`: one connection pinging every second, reports every second
 *   (`tcp_reporting_duration: 1s`); after 3 s, while it is open, the server's received bytes carry the peer's labels.
 * - `TestTCPMetadataNotFoundReporting`: a client whose endpoint runs no proxy: the sent-bytes series exists (what
 *   the Go ExistStat checks) with the unknown peer's labels, `destination_service_namespace` from the cluster's
 *   `istio.services` (docs/compatibility.md says why the template's `unknown` is not what Envoy emits).
 * - `TestTCPMetadataExchangeNoAlpn`: neither side negotiates the MX ALPN (PILOT_DISABLE_MX_ALPN on both
 *   sidecars), so no frame is sent and the server reports the client by its certificate only.
 * - `TestTCPMetadataExchangeWithConnectionTermination`: the client half (its frame sent to a server that negotiates
 *   the MX ALPN but runs no MX filter, whose app closes on the first line): each connection is ended.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { ALPN_PEER_EXCHANGE, MX_MAGIC } from '../../../src/index.js';
import { eventually, get } from '../../sidecar/helpers.js';
import { expectExactStat, expectExistStat, fixture, telemetryOfPluginConfig } from './support.js';
import type { MetricFamily, StatsPluginConfig } from './support.js';
import { acceptAndCloseApp, connection, useDriverMesh, driverClient, driverServer, interceptedConnection, prefixApp, tcpLoad } from './tcp-driver.js';

interface Scenario {
  readonly vars: Record<string, string>;
  readonly files: Record<string, { readonly path: string; readonly value: unknown }>;
  readonly driver?: { readonly writes: string; readonly everyMs?: number; readonly checkAfterMs?: number; readonly readTimeoutMs?: number; readonly connections?: number };
}
const T = fixture<{ commit: string; scenarios: Record<string, Scenario> }>('tcp-metadata-exchange-scenarios.json');
const S = T.scenarios;
const family = (s: Scenario, k: string): MetricFamily => s.files[k]!.value as MetricFamily;

const mesh = useDriverMesh();
const { cleanups } = mesh;

async function scrape(port: number): Promise<string> {
  return (await get(`http://127.0.0.1:${port}/stats/prometheus`)).body;
}

const CLIENT_FAMILIES = ['tcp_client_connection_open', 'tcp_client_connection_close', 'tcp_client_received_bytes', 'tcp_client_sent_bytes'];
const SERVER_FAMILIES = ['tcp_server_connection_open', 'tcp_server_connection_close', 'tcp_server_received_bytes', 'tcp_server_sent_bytes'];

describe(`tcp_metadata_exchange scenarios through sidecars (release-1.29@${T.commit.slice(0, 8)})`, () => {
  it('TestTCPMXAdditionalLabels: role from the exchanged labels on the server, unknown on the TCP client', async () => {
    const s = S.TestTCPMXAdditionalLabels!;
    const mx = s.files.client_mx_network_filter!.value as Array<{ typed_config: { value: { additional_labels: string[] } } }>;
    const additionalLabels = mx[0]!.typed_config.value.additional_labels;
    const clientCfg = telemetryOfPluginConfig(s.files.client_stats_network_filter!.value as StatsPluginConfig, 'CLIENT');
    const serverCfg = telemetryOfPluginConfig(s.files.server_stats_network_filter!.value as StatsPluginConfig, 'SERVER');
    const server = await driverServer(cleanups, mesh.certs, await prefixApp(cleanups, 'hello '), { additionalLabels, telemetryResources: serverCfg.telemetry });
    const client = await driverClient(cleanups, mesh.certs, server.ports.inbound, { additionalLabels, telemetryResources: clientCfg.telemetry });
    for (let i = 0; i < 10; i++) expect(await connection(client.ports.serviceListeners[0]!, 'world\n')).toBe('hello world\n');
    await eventually(async () => {
      const body = await scrape(client.ports.prometheus);
      for (const k of CLIENT_FAMILIES) expectExactStat(body, family(s, k));
    });
    await eventually(async () => {
      const body = await scrape(server.ports.prometheus);
      for (const k of SERVER_FAMILIES) expectExactStat(body, family(s, k));
    });
  });

  it('TestTCPMetricsDuringActiveConnection: the server reports the peer\'s bytes while the connection is open', async () => {
    const s = S.TestTCPMetricsDuringActiveConnection!;
    const d = s.driver!;
    // tcp_reporting_duration: 1s on both stats filters.
    const server = await driverServer(cleanups, mesh.certs, await prefixApp(cleanups, 'hello '), { reportingIntervalMs: 1000 });
    const client = await driverClient(cleanups, mesh.certs, server.ports.inbound, { reportingIntervalMs: 1000 });
    tcpLoad(cleanups, client.ports.serviceListeners[0]!, d.writes, d.everyMs!);
    await new Promise((r) => setTimeout(r, d.checkAfterMs));
    const body = await scrape(server.ports.prometheus);
    // ExistStat with the labels it names; the value is the pings so far.
    expectExistStat(body, family(s, 'tcp_server_received_bytes'));
    expect(body).not.toMatch(/^istio_tcp_connections_closed_total\{/m);
  });

  it('TestTCPMetadataNotFoundReporting: a peer without a proxy is reported unknown, the service from the cluster', async () => {
    const s = S.TestTCPMetadataNotFoundReporting!;
    // testdata/cluster/tcp_client_unknown.yaml.tmpl: the endpoint is the backend itself, no sidecar, no TLS.
    const cluster = s.files.tcp_client_unknown_cluster!.value as { metadata: { filter_metadata: { istio: { services: Array<{ namespace: string }> } } } };
    // tcp_reporting_duration: 1s: the series is reported while the connection is open.
    const client = await driverClient(cleanups, mesh.certs, await prefixApp(cleanups, ' '), { reportingIntervalMs: 1000 }, false);
    tcpLoad(cleanups, client.ports.serviceListeners[0]!, s.driver!.writes, s.driver!.everyMs!);
    // The template's destination_service_namespace is `unknown`, which the Go ExistStat never compares; Envoy takes
    // it from the cluster's istio.services[0].namespace (istio_stats.cc populatePeerInfo), as meshtel does.
    const want = family(s, 'tcp_client_sent_bytes_unknown');
    const envoy: MetricFamily = {
      ...want,
      metric: want.metric.map((m) => ({
        ...m,
        label: m.label.map((l) => (l.name === 'destination_service_namespace' ? { ...l, value: cluster.metadata.filter_metadata.istio.services[0]!.namespace } : l)),
      })),
    };
    await eventually(async () => expectExistStat(await scrape(client.ports.prometheus), envoy), 5000);
  });

  it('TestTCPMetadataExchangeNoAlpn: without the MX ALPN no frame is sent; the server knows the client by its certificate', async () => {
    const s = S.TestTCPMetadataExchangeNoAlpn!;
    const env = { PILOT_DISABLE_MX_ALPN: 'true' };
    const server = await driverServer(cleanups, mesh.certs, await prefixApp(cleanups, 'hello '), { env });
    const client = await driverClient(cleanups, mesh.certs, server.ports.inbound, { env });
    // The app sees the client's bytes only: no frame reached it.
    for (let i = 0; i < 10; i++) expect(await connection(client.ports.serviceListeners[0]!, 'world\n')).toBe('hello world\n');
    await eventually(async () => expectExactStat(await scrape(server.ports.prometheus), family(s, 'tcp_server_connection_open_without_mx')));
  });

  it('TestTCPMetadataExchangeWithConnectionTermination: a server that never answers the frame and closes ends each connection', async () => {
    const s = S.TestTCPMetadataExchangeWithConnectionTermination!;
    const d = s.driver!;
    // The server of the scenario: mTLS with the MX ALPN, no MX filter (its chain is the stats filter and tcp_proxy),
    // so the client's frame goes to the app with the line; the app closes on the first line.
    const appPort = await acceptAndCloseApp(cleanups);
    const appGot: Buffer[] = [];
    const server = tls.createServer(
      { cert: readFileSync(mesh.certs.server.certFile), key: readFileSync(mesh.certs.server.keyFile), ca: readFileSync(mesh.certs.server.caFile), requestCert: true, rejectUnauthorized: true, ALPNProtocols: [ALPN_PEER_EXCHANGE] },
      (down) => {
        const up: Socket = net.connect(appPort, '127.0.0.1');
        down.on('data', (c: Buffer) => appGot.push(c));
        down.pipe(up).pipe(down);
        up.on('error', () => down.destroy());
        down.on('error', () => up.destroy());
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const client = await driverClient(cleanups, mesh.certs, (server.address() as AddressInfo).port);
    for (let i = 0; i < d.connections!; i++) expect(await interceptedConnection(client.ports.serviceListeners[0]!, d.writes, d.readTimeoutMs!)).toBe('');
    // The client did send its frame first (the MX ALPN was negotiated).
    expect(Buffer.concat(appGot).readUInt32BE(0)).toBe(MX_MAGIC);
  });
});

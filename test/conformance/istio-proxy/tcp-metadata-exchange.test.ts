/**
 * istio/proxy test/envoye2e/tcp_metadata_exchange/tcp_metadata_exchange_test.go `TestTCPMetadataExchange/false`
 * (release-1.29; MX over the `istio-peer-exchange` ALPN, mTLS) end to end: the upstream client and server node
 * metadata in two real meshtel sidecars on loopback with certificates for sa/client and sa/server, a TCP app that
 * answers each line with "hello " + line (driver.TCPServer{Prefix: "hello"}), 10 connections writing "world\n"
 * (driver.TCPConnection). Both sidecars' four TCP families compared like driver.ExactStat with
 * testdata/metric/tcp_{client,server}_*.yaml.tmpl (fixtures/tcp-metadata-exchange.json).
 * The `/true` variant (workload discovery instead of MX) needs Istio's WDS and is not replayed.
 */
import { describe, expect, it } from 'vitest';
import { eventually, get } from '../../sidecar/helpers.js';
import { expectExactStat, fixture } from './support.js';
import type { MetricFamily } from './support.js';
import { connection, useDriverMesh, driverClient, driverServer, prefixApp } from './tcp-driver.js';

const T = fixture<{ commit: string; files: Record<string, { value: MetricFamily }>; driver: { connections: number; clientWrites: string; serverPrefix: string } }>(
  'tcp-metadata-exchange.json',
);

const mesh = useDriverMesh();
const { cleanups } = mesh;

describe(`tcp_metadata_exchange through two sidecars, mTLS (release-1.29@${T.commit.slice(0, 8)})`, () => {
  it('both reporters emit exactly Istio\'s TCP series: labels from the exchanged frames, app bytes only', async () => {
    const appPort = await prefixApp(cleanups, T.driver.serverPrefix);
    const server = await driverServer(cleanups, mesh.certs, appPort);
    const client = await driverClient(cleanups, mesh.certs, server.ports.inbound);
    for (let i = 0; i < T.driver.connections; i++) {
      expect(await connection(client.ports.serviceListeners[0]!, T.driver.clientWrites)).toBe(`${T.driver.serverPrefix}${T.driver.clientWrites}`);
    }
    await eventually(async () => {
      const { body } = await get(`http://127.0.0.1:${client.ports.prometheus}/stats/prometheus`);
      for (const k of ['tcp_client_connection_open', 'tcp_client_connection_close', 'tcp_client_received_bytes', 'tcp_client_sent_bytes']) expectExactStat(body, T.files[k]!.value);
    });
    await eventually(async () => {
      const { body } = await get(`http://127.0.0.1:${server.ports.prometheus}/stats/prometheus`);
      for (const k of ['tcp_server_connection_open', 'tcp_server_connection_close', 'tcp_server_received_bytes', 'tcp_server_sent_bytes']) expectExactStat(body, T.files[k]!.value);
    });
  });
});

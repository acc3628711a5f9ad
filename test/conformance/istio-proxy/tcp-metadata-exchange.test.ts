/**
 * istio/proxy test/envoye2e/tcp_metadata_exchange/tcp_metadata_exchange_test.go `TestTCPMetadataExchange/false`
 * (release-1.29; MX over the `istio-peer-exchange` ALPN, mTLS) end to end: the upstream client and server node
 * metadata in two real meshtel sidecars on loopback with certificates for sa/client and sa/server, a TCP app that
 * answers each line with "hello " + line (driver.TCPServer{Prefix: "hello"}), 10 connections writing "world\n"
 * (driver.TCPConnection). Both sidecars' four TCP families compared like driver.ExactStat with
 * testdata/metric/tcp_{client,server}_*.yaml.tmpl (fixtures/tcp-metadata-exchange.json).
 * The `/true` variant (workload discovery instead of MX) needs Istio's WDS and is not replayed.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mintCertificates } from '../../../src/sidecar/certs.js';
import type { MintedWorkload } from '../../../src/sidecar/certs.js';
import { eventually, get, sidecar } from '../../sidecar/helpers.js';
import type { Cleanups } from '../../sidecar/helpers.js';
import { DEFAULT_129, expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

const T = fixture<{ commit: string; files: Record<string, { value: MetricFamily }>; driver: { connections: number; clientWrites: string; serverPrefix: string } }>(
  'tcp-metadata-exchange.json',
);
const D = DEFAULT_129;

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
let dir: string;
let clientCert: MintedWorkload;
let serverCert: MintedWorkload;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'meshtel-tcp-mx-'));
  // testdata/certs: the client holds spiffe://cluster.local/ns/default/sa/client, the server .../sa/server.
  const minted = mintCertificates({ outDir: dir, workloads: [{ namespace: 'default', serviceAccount: 'client' }, { namespace: 'default', serviceAccount: 'server' }] });
  [clientCert, serverCert] = minted.workloads as [MintedWorkload, MintedWorkload];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** driver.TCPServer: answers every line with the prefix + the line. */
async function prefixApp(prefix: string): Promise<number> {
  const server = net.createServer((s) => {
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        s.write(`${prefix}${buf.slice(0, i + 1)}`);
        buf = buf.slice(i + 1);
      }
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** driver.TCPConnection: write one line, read one line back, close. */
function connection(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(line));
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.endsWith('\n')) s.end();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

describe(`tcp_metadata_exchange through two sidecars, mTLS (release-1.29@${T.commit.slice(0, 8)})`, () => {
  it('both reporters emit exactly Istio\'s TCP series: labels from the exchanged frames, app bytes only', async () => {
    const appPort = await prefixApp(T.driver.serverPrefix);
    const server = await sidecar({
      metadata: fromNodeMetadata(D.serverNodeMetadata.value),
      app: { port: appPort, protocol: 'tcp' },
      tls: serverCert,
      // testdata/cluster/tcp_server.yaml.tmpl: the inbound cluster's istio.services is Service `server`.
      mesh: { services: [{ name: 'server', selector: { app: 'ratings' }, ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }] }] },
    });
    cleanups.push(server.close);
    const client = await sidecar({
      metadata: fromNodeMetadata(D.clientNodeMetadata.value),
      tls: clientCert,
      mesh: { services: [{ name: 'server', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: server.ports.inbound } }] }] },
      serviceListeners: [{ host: 'server', port: 9000, listenPort: 0 }],
    });
    cleanups.push(client.close);
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

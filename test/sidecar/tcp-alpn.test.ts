/**
 * The TCP exchange follows the negotiated ALPN, as Envoy's TCP MX filter does (istio/proxy
 * metadata_exchange.cc: nothing written or read unless `nextProtocol()` is `istio-peer-exchange`), and
 * `istio-peer-exchange` is offered and accepted only while the exchange runs (istiod's PILOT_DISABLE_MX_ALPN;
 * telemetry off). The replay of istio/proxy TestTCPMetadataExchangeNoAlpn is in test/conformance/istio-proxy.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sidecarOptionsFromFlags } from '../../src/cli/commands/sidecar.js';
import { encodeTcpFrame } from '../../src/metadata/tcp-frame.js';
import type { MintedWorkload } from '../../src/sidecar/certs.js';
import { resolveSidecarOptions } from '../../src/sidecar/options.js';
import type { SidecarOptions } from '../../src/sidecar/options.js';
import { ALPN_SERVER, ALPN_TCP_CLIENT, loadSidecarTls } from '../../src/sidecar/tls.js';
import { eventually, mintDefaultWorkloads, series, sidecar, tcpLine, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
let dir: string;
let reviews: MintedWorkload;
let productpage: MintedWorkload;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'meshtel-alpn-'));
  [reviews, productpage] = mintDefaultWorkloads(dir, 'bookinfo-reviews', 'bookinfo-productpage') as [MintedWorkload, MintedWorkload];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A TCP app that keeps every byte it gets and answers "ok\n" to each connection's first chunk. */
async function recordingApp(): Promise<{ port: number; got: () => string }> {
  const chunks: Buffer[] = [];
  const server = net.createServer((s) => {
    s.once('data', () => s.write('ok\n'));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, got: () => Buffer.concat(chunks).toString('latin1') };
}

async function reviewsServer(appPort: number, extra: Partial<SidecarOptions> = {}): Promise<Awaited<ReturnType<typeof sidecar>>> {
  const sc = await sidecar({
    metadata: workload('reviews', 'bookinfo-reviews'),
    app: { port: appPort, protocol: 'tcp' },
    tls: reviews,
    mesh: { services: [{ name: 'reviews', selector: { app: 'reviews' }, ports: [{ name: 'tcp', protocol: 'tcp', port: 9080 }] }] },
    ...extra,
  });
  cleanups.push(sc.close);
  return sc;
}

async function productpageClient(endpointPort: number, extra: Partial<SidecarOptions> = {}): Promise<Awaited<ReturnType<typeof sidecar>>> {
  const sc = await sidecar({
    metadata: workload('productpage', 'bookinfo-productpage'),
    tls: productpage,
    mesh: { services: [{ name: 'reviews', ports: [{ name: 'tcp', protocol: 'tcp', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { tcp: endpointPort } }] }] },
    serviceListeners: [{ host: 'reviews', port: 9080, listenPort: 0 }],
    ...extra,
  });
  cleanups.push(sc.close);
  return sc;
}

/** A TLS server that records the ALPN each client negotiated against `offer` and closes. */
async function alpnProbe(offer: readonly string[]): Promise<{ port: number; chosen: Array<string | false> }> {
  const chosen: Array<string | false> = [];
  const server = tls.createServer(
    { cert: readFileSync(reviews.certFile), key: readFileSync(reviews.keyFile), ca: readFileSync(reviews.caFile), requestCert: true, ALPNProtocols: [...offer] },
    (s) => {
      chosen.push(s.alpnProtocol ?? false);
      // Drain what the client sends (its frame, its bytes), so the connection can finish closing.
      s.resume();
      s.end();
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, chosen };
}

describe('PILOT_DISABLE_MX_ALPN', () => {
  it('is off by default, read from the environment, and the option wins', () => {
    expect(resolveSidecarOptions({ env: {} }).disableMxAlpn).toBe(false);
    expect(resolveSidecarOptions({ env: { PILOT_DISABLE_MX_ALPN: 'true' } }).disableMxAlpn).toBe(true);
    expect(resolveSidecarOptions({ env: { PILOT_DISABLE_MX_ALPN: 'true' }, disableMxAlpn: false }).disableMxAlpn).toBe(false);
    // `meshtel sidecar --disable-mx-alpn`.
    const flags = { inbound: [] as string[], serviceListener: [] as string[], telemetry: true };
    expect(sidecarOptionsFromFlags({ ...flags, disableMxAlpn: true }, {}).disableMxAlpn).toBe(true);
    expect(sidecarOptionsFromFlags(flags, {}).disableMxAlpn).toBeUndefined();
  });

  it('leaves istio-peer-exchange out of what the server accepts and the TCP client offers (istiod ALPNDownstream, ALPNInMesh)', () => {
    const on = loadSidecarTls(reviews);
    const off = loadSidecarTls(reviews, { mxAlpn: false });
    expect([on.mxAlpn, on.tcpClientAlpn, on.serverOptions().ALPNProtocols]).toEqual([true, ALPN_TCP_CLIENT, ALPN_SERVER]);
    expect([off.mxAlpn, off.tcpClientAlpn]).toEqual([false, ['istio']]);
    expect(off.serverOptions().ALPNProtocols).toEqual(ALPN_SERVER.filter((p) => p !== 'istio-peer-exchange'));
  });
});

describe('Sidecar outbound TCP ALPN', () => {
  it.each([
    { what: 'by default', extra: {}, want: 'istio-peer-exchange' },
    { what: 'with PILOT_DISABLE_MX_ALPN', extra: { env: { PILOT_DISABLE_MX_ALPN: 'true' } }, want: 'istio' },
    { what: 'with telemetry off (no exchange to offer)', extra: { telemetry: false }, want: 'istio' },
  ])('offers istio-peer-exchange only while the exchange runs: $what', async ({ extra, want }) => {
    const probe = await alpnProbe(['istio-peer-exchange', 'istio']);
    const client = await productpageClient(probe.port, extra);
    await tcpLine(client.ports.serviceListeners[0]!, 'hi\n');
    await eventually(async () => expect(probe.chosen).toEqual([want]));
  });

  it('writes no frame when the server does not take the MX ALPN: the app gets the client\'s bytes only, both sides report', async () => {
    const app = await recordingApp();
    // Only the server has the flag: the client still offers istio-peer-exchange, the handshake settles on istio.
    const server = await reviewsServer(app.port, { env: { PILOT_DISABLE_MX_ALPN: 'true' } });
    const client = await productpageClient(server.ports.inbound);
    expect(await tcpLine(client.ports.serviceListeners[0]!, 'hello\n')).toBe('ok\n');
    expect(app.got()).toBe('hello\n');
    await eventually(async () => {
      const [opened] = await series(server, 'istio_tcp_connections_opened_total');
      expect(opened).toContain('source_workload="unknown"');
      expect(opened).toContain('source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage"');
      expect(opened).toContain('connection_security_policy="mutual_tls"');
      const [out] = await series(client, 'istio_tcp_connections_opened_total');
      expect(out).toContain('destination_workload="unknown"');
      expect(out).toContain('destination_principal="spiffe://cluster.local/ns/default/sa/bookinfo-reviews"');
    });
  });
});

describe('Sidecar inbound TCP ALPN', () => {
  it('reads no frame on a connection that negotiated another ALPN: the bytes reach the app untouched', async () => {
    const app = await recordingApp();
    const server = await reviewsServer(app.port);
    const frame = encodeTcpFrame(workload('productpage', 'bookinfo-productpage'), 'sidecar~10.0.0.1~pp.default~default.svc.cluster.local', 'reduced-1.29');
    const s: Socket = tls.connect({
      host: '127.0.0.1',
      port: server.ports.inbound,
      cert: readFileSync(productpage.certFile),
      key: readFileSync(productpage.keyFile),
      ca: readFileSync(productpage.caFile),
      ALPNProtocols: ['istio'],
      checkServerIdentity: () => undefined,
    });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => {
        s.end(Buffer.concat([frame, Buffer.from('after\n')]));
        resolve();
      });
      s.once('error', reject);
    });
    s.resume();
    await new Promise((r) => s.once('close', r));
    await eventually(async () => expect(app.got()).toBe(Buffer.concat([frame, Buffer.from('after\n')]).toString('latin1')));
    // Envoy's filter sets NoPeer at once: the client is known by its certificate only.
    await eventually(async () => expect((await series(server, 'istio_tcp_connections_opened_total'))[0]).toContain('source_workload="unknown"'));
  });
});

/**
 * The TCP steps of istio/proxy's Go e2e driver (test/envoye2e/driver/tcp.go, release-1.29) for the
 * tcp_metadata_exchange replays, and the two mTLS sidecars those scenarios run: apps, clients and the
 * certificates of sa/client and sa/server (testdata/certs).
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mintCertificates } from '../../../src/sidecar/certs.js';
import type { MintedWorkload } from '../../../src/sidecar/certs.js';
import type { Sidecar } from '../../../src/sidecar/sidecar.js';
import type { SidecarOptions } from '../../../src/sidecar/options.js';
import { sidecar, tcpLine } from '../../sidecar/helpers.js';
import type { Cleanups } from '../../sidecar/helpers.js';
import { DEFAULT_129, fromNodeMetadata } from './support.js';

/** Listen on loopback with `onConnection`; closed with `cleanups`. */
async function listen(cleanups: Cleanups, onConnection: (s: Socket) => void): Promise<number> {
  const server = net.createServer(onConnection);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** driver.TCPServer: answers every line with the prefix + the line ("hello " + "world\n"). */
export function prefixApp(cleanups: Cleanups, prefix: string): Promise<number> {
  return listen(cleanups, (s) => {
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
    s.on('error', () => s.destroy());
  });
}

/** driver.TCPServerAcceptAndClose: reads one line, answers nothing, closes. */
export function acceptAndCloseApp(cleanups: Cleanups): Promise<number> {
  return listen(cleanups, (s) => {
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.includes('\n')) s.end();
    });
    s.on('error', () => s.destroy());
  });
}

/** driver.TCPConnection: write one line, read one line back, close. */
export const connection = tcpLine;

/**
 * driver.InterceptedTCPConnection: write one line and expect the connection to be ended (EOF) with nothing read,
 * within `readTimeoutMs`; resolves with what was read before the end.
 */
export function interceptedConnection(port: number, line: string, readTimeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(line));
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the connection was not terminated within ${readTimeoutMs} ms`));
    }, readTimeoutMs);
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('end', () => {
      clearTimeout(timer);
      s.end();
      resolve(got);
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** driver.TCPLoad: one connection that writes `line` at once and every `everyMs`, closed with `cleanups`. */
export function tcpLoad(cleanups: Cleanups, port: number, line: string, everyMs: number): void {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.on('data', () => {});
  const write = (): void => {
    if (!s.destroyed) s.write(line);
  };
  s.once('connect', write);
  const timer = setInterval(write, everyMs);
  cleanups.push(async () => {
    clearInterval(timer);
    s.destroy();
  });
}

/** testdata/certs: the client holds spiffe://cluster.local/ns/default/sa/client, the server .../sa/server. */
export interface DriverCerts {
  readonly client: MintedWorkload;
  readonly server: MintedWorkload;
  remove(): void;
}

/** Mint testdata/certs' two identities under a fresh temporary directory (`remove()` deletes it). */
export function driverCerts(): DriverCerts {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-tcp-mx-'));
  const minted = mintCertificates({ outDir: dir, workloads: [{ namespace: 'default', serviceAccount: 'client' }, { namespace: 'default', serviceAccount: 'server' }] });
  const [client, server] = minted.workloads as [MintedWorkload, MintedWorkload];
  return { client, server, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The service of testdata/cluster/tcp_{client,server}.yaml.tmpl: `istio.services[0]` is Service `server`. */
function service(): { name: string; ports: Array<{ name: string; protocol: 'tcp'; port: number }> } {
  return { name: 'server', ports: [{ name: 'tcp', protocol: 'tcp', port: 9000 }] };
}

/**
 * The server sidecar of the tcp_metadata_exchange scenarios: the upstream server node metadata, mTLS as sa/server,
 * the inbound cluster's service `server` (it selects the pod: app=ratings), in front of the app on `appPort`.
 */
export async function driverServer(cleanups: Cleanups, certs: DriverCerts, appPort: number, extra: Partial<SidecarOptions> = {}): Promise<Sidecar> {
  const server = await sidecar({
    metadata: fromNodeMetadata(DEFAULT_129.serverNodeMetadata.value),
    app: { port: appPort, protocol: 'tcp' },
    tls: certs.server,
    mesh: { services: [{ ...service(), selector: { app: 'ratings' } }] },
    ...extra,
  });
  cleanups.push(server.close);
  return server;
}

/**
 * The client sidecar: the upstream client node metadata, mTLS as sa/client, one listener for `server:9000`
 * (testdata/listener/tcp_client.yaml.tmpl) whose endpoint is `endpointPort` on loopback, a sidecar endpoint unless
 * `sidecarEndpoint` is false (then plain text, no MX: a workload without a proxy).
 */
export async function driverClient(
  cleanups: Cleanups,
  certs: DriverCerts,
  endpointPort: number,
  extra: Partial<SidecarOptions> = {},
  sidecarEndpoint = true,
): Promise<Sidecar> {
  const client = await sidecar({
    metadata: fromNodeMetadata(DEFAULT_129.clientNodeMetadata.value),
    tls: certs.client,
    mesh: { services: [{ ...service(), endpoints: [{ address: '127.0.0.1', ports: { tcp: endpointPort }, ...(sidecarEndpoint ? {} : { sidecar: false }) }] }] },
    serviceListeners: [{ host: 'server', port: 9000, listenPort: 0 }],
    ...extra,
  });
  cleanups.push(client.close);
  return client;
}

/**
 * The Go driver's per-test setup for a TCP scenario file: the driver's certificates minted once for the file (removed
 * after it), and the cleanups of each test run after it.
 */
export function useDriverMesh(): { readonly cleanups: Cleanups; readonly certs: DriverCerts } {
  const cleanups: Cleanups = [];
  let certs: DriverCerts | undefined;
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  beforeAll(() => {
    certs = driverCerts();
  });
  afterAll(() => certs?.remove());
  return {
    cleanups,
    get certs(): DriverCerts {
      if (certs === undefined) throw new Error('driver certificates are minted in beforeAll');
      return certs;
    },
  };
}

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mintCertificates } from '../../src/sidecar/certs.js';
import type { MintedWorkload } from '../../src/sidecar/certs.js';
import { loadSidecarTls } from '../../src/sidecar/tls.js';
import { bookinfoLabels, eventually, httpApp, mintDefaultWorkloads, rawExchange, refused, requestCount, reviewsMesh, send, series, sidecar, workload } from './helpers.js';
import { resolveSidecarOptions } from '../../src/sidecar/options.js';

const PP = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';
const RV = 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews';

let dir: string;
let reviews: MintedWorkload;
let productpage: MintedWorkload;
let foreign: MintedWorkload;
let ratings: MintedWorkload;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'meshtel-mtls-'));
  [reviews, productpage, ratings] = mintDefaultWorkloads(dir, 'bookinfo-reviews', 'bookinfo-productpage', 'bookinfo-ratings') as [MintedWorkload, MintedWorkload, MintedWorkload];
  // A workload certificate from another CA: must not be accepted.
  [foreign] = mintCertificates({ outDir: path.join(dir, 'other'), workloads: [{ namespace: 'evil', serviceAccount: 'mallory' }] }).workloads as [MintedWorkload];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('mintCertificates()', () => {
  it('writes Istio-layout files whose only identity is the SPIFFE URI SAN', () => {
    expect(reviews.spiffeId).toBe(RV);
    const loaded = loadSidecarTls(reviews);
    expect(loaded.localPrincipal).toBe(RV);
    expect(loaded.trustDomain).toBe('cluster.local');
  });

  it('refuses names that are not DNS labels with MESHTEL_ERR_CLI_USAGE', () => {
    expect(() => mintCertificates({ outDir: dir, workloads: [{ namespace: 'Bad NS', serviceAccount: 'x' }] })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_CLI_USAGE' }));
  });
});

describe('loadSidecarTls()', () => {
  it.each([
    { what: 'a missing file', files: () => ({ ...reviews, certFile: path.join(dir, 'nope.pem') }) },
    { what: 'a key of another certificate', files: () => ({ ...reviews, keyFile: productpage.keyFile }) },
    {
      what: 'a certificate that is not PEM',
      files: () => {
        const f = path.join(dir, 'garbage.pem');
        writeFileSync(f, 'not a certificate');
        return { ...reviews, certFile: f };
      },
    },
  ])('rejects $what with MESHTEL_ERR_TLS', ({ files }) => {
    expect(() => loadSidecarTls(files())).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_TLS' }));
  });
});

describe('Sidecar with mutual TLS', () => {
  it('takes principals from the certificates and reports mutual_tls on the server', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({ tls: reviews, metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
    cleanups.push(server.close);
    const client = await sidecar({ tls: productpage, metadata: workload('productpage', 'bookinfo-productpage'), mesh: reviewsMesh(server.ports.inbound) });
    cleanups.push(client.close);
    expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
    await eventually(async () => {
      expect(await series(client, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('source', { source_principal: PP, destination_principal: RV })} 1`,
      ]);
      expect(await series(server, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('destination', {
          source_principal: PP,
          destination_principal: RV,
          // The server's registry is empty: destination_service falls back to the local canonical name.
          destination_service: 'reviews',
          connection_security_policy: 'mutual_tls',
        })} 1`,
      ]);
    });
  });

  it('refuses plain-text and foreign-CA clients on the inbound port', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({ tls: reviews, metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
    cleanups.push(server.close);
    await expect(send(server.ports.inbound, {})).rejects.toThrow();
    const foreignResult = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: server.ports.inbound, cert: readPem(foreign.certFile), key: readPem(foreign.keyFile), ca: readPem(reviews.caFile), checkServerIdentity: () => undefined });
      s.on('secureConnect', () => {
        s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      s.on('data', () => resolve('answered'));
      s.on('error', () => resolve('refused'));
      s.on('close', () => resolve('refused'));
    });
    expect(foreignResult).toBe('refused');
    expect(app.seen).toHaveLength(0);
    // Never crashed: a raw connection still gets accepted and closed.
    await new Promise<void>((resolve) => net.connect(server.ports.inbound, '127.0.0.1').on('connect', function (this: net.Socket) {
      this.destroy();
      resolve();
    }));
  });
});

describe('Sidecar PeerAuthentication PERMISSIVE (mtlsMode)', () => {
  it('serves mutual TLS and plain text on one inbound port, each reported with its own security policy', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({ tls: reviews, mtlsMode: 'PERMISSIVE', metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
    cleanups.push(server.close);
    const client = await sidecar({ tls: productpage, metadata: workload('productpage', 'bookinfo-productpage'), mesh: reviewsMesh(server.ports.inbound) });
    cleanups.push(client.close);
    expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
    // A plain-text caller (a proxyless app, a pod without a sidecar) on the same port.
    expect((await send(server.ports.inbound, { host: 'reviews:9080' })).status).toBe(200);
    expect(app.seen).toHaveLength(2);
    await eventually(async () => {
      expect(await requestCount(server, { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: PP })).toBe(1);
      expect(await requestCount(server, { reporter: 'destination', connection_security_policy: 'none', source_principal: 'unknown' })).toBe(1);
    });
  });

  it('closes a connection that sends nothing within the header timeout and counts it as headers_timeout', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({ tls: reviews, mtlsMode: 'PERMISSIVE', metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, limits: { headersTimeoutMs: 200 } });
    cleanups.push(server.close);
    const started = Date.now();
    expect(await rawExchange(server.ports.inbound, '')).toBe('');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await refused(server, 'inbound', 'headers_timeout')).toBe(1);
  });

  // The TLS handshake has the header deadline (docs/security.md, listener limits): a client that starts a handshake
  // and never finishes it is closed and counted on the HTTP and the TCP inbound port alike.
  it.each(['http', 'tcp'] as const)('STRICT: closes a %s connection whose TLS handshake does not finish within the header timeout, counted as headers_timeout', async (protocol) => {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({ tls: reviews, metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port, protocol }, limits: { headersTimeoutMs: 200 } });
    cleanups.push(server.close);
    const started = Date.now();
    // The first bytes of a TLS handshake record (type 0x16, version 3.1, length 512), never the rest.
    expect(await rawExchange(server.ports.inbound, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))).toBe('');
    expect(Date.now() - started).toBeLessThan(3000);
    await eventually(async () => expect(await refused(server, 'inbound', 'headers_timeout')).toBe(1));
    expect(app.seen).toHaveLength(0);
  });

  it('keeps STRICT by default and refuses an unknown mode with MESHTEL_ERR_INVALID_CONFIG', () => {
    expect(resolveSidecarOptions({ env: {} }).mtlsMode).toBe('STRICT');
    expect(resolveSidecarOptions({ env: { MESHTEL_MTLS_MODE: 'PERMISSIVE' } }).mtlsMode).toBe('PERMISSIVE');
    expect(() => resolveSidecarOptions({ env: { MESHTEL_MTLS_MODE: 'DISABLE' } })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
  });
});

describe('Sidecar mTLS endpoint identity', () => {
  /** A reviews server sidecar holding `cert`, and a productpage client whose mesh expects `identity`. */
  async function pair(cert: MintedWorkload, identity: string | undefined, retries = 0) {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({ tls: cert, metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
    cleanups.push(server.close);
    const client = await sidecar({
      tls: productpage,
      metadata: workload('productpage', 'bookinfo-productpage'),
      retries,
      mesh: {
        services: [
          { name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: server.ports.inbound }, ...(identity ? { identity } : {}) }] },
        ],
      },
    });
    cleanups.push(client.close);
    return { app, client };
  }

  it('accepts an endpoint whose certificate carries the expected identity', async () => {
    const { app, client } = await pair(reviews, RV);
    expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
    expect(app.seen).toHaveLength(1);
  });

  it('refuses an endpoint holding another workload\'s certificate of the same trust domain: 503 UF, counted', async () => {
    const { app, client } = await pair(ratings, RV);
    const res = await send(client.ports.outbound, { host: 'reviews:9080' });
    expect(res.status).toBe(503);
    expect(res.body).toContain('connection failure');
    expect(app.seen).toHaveLength(0);
    await eventually(async () => {
      const lines = await series(client, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('response_code="503",grpc_response_status="",response_flags="UF"');
      expect(await series(client, 'meshtel_proxy_refused_total')).toEqual(['meshtel_proxy_refused_total{listener="outbound",reason="upstream_san_mismatch"} 1']);
    });
  });

  it('retries the next attempt after a mismatch like any connection failure (UF,URX) and counts each', async () => {
    const { client } = await pair(ratings, RV, 2);
    expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(503);
    await eventually(async () => {
      expect((await series(client, 'istio_requests_total'))[0]).toContain('response_flags="UF,URX"');
      expect(await series(client, 'meshtel_proxy_refused_total')).toEqual(['meshtel_proxy_refused_total{listener="outbound",reason="upstream_san_mismatch"} 3']);
    });
  });

  it('without an expected identity accepts any workload of the trust domain', async () => {
    const { client } = await pair(ratings, undefined);
    expect((await send(client.ports.outbound, { host: 'reviews:9080' })).status).toBe(200);
  });
});

function readPem(file: string): string {
  return readFileSync(file, 'utf8');
}

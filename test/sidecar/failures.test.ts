import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bookinfoLabels, deadPort, eventually, productpageClient, reviewsMesh, reviewsServer, send, series, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Source-side labels when no peer answered but EDS `istio.workload` metadata names it (no app/version). */
const FALLBACK_PEER = {
  destination_principal: 'unknown',
  destination_app: 'unknown',
  destination_version: 'unknown',
};

describe('Sidecar failure mapping', () => {
  it.each([
    { retries: 2, flags: 'UF,URX' },
    { retries: 0, flags: 'UF' },
  ])('answers 503 $flags when the endpoint refuses connections (retries: $retries)', async ({ retries, flags }) => {
    const port = await deadPort();
    const c = await productpageClient(
      cleanups,
      { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, workload: 'reviews-v1;default;reviews;v1;Kubernetes' }] }] },
      { retries },
    );
    const res = await send(c.ports.outbound, { host: 'reviews:9080' });
    expect(res.status).toBe(503);
    expect(res.body).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
    await eventually(async () => {
      expect(await series(c, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('source', { ...FALLBACK_PEER, response_code: '503', response_flags: flags })} 1`,
      ]);
    });
  });

  it('answers 503 UC when the app resets the connection, and the client sees the 503 its peer sent', async () => {
    const { server } = await reviewsServer(cleanups, (_req, res) => res.socket?.destroy());
    const c = await productpageClient(cleanups, reviewsMesh(server.ports.inbound));
    const res = await send(c.ports.outbound, { host: 'reviews:9080' });
    expect(res.status).toBe(503);
    await eventually(async () => {
      expect(await series(server, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('destination', { response_code: '503', response_flags: 'UC' })} 1`,
      ]);
      expect(await series(c, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('source', { response_code: '503' })} 1`]);
    });
  });

  it('answers 504 UT on a route timeout; the server side sees the downstream go away (DC, code 0)', async () => {
    const { server } = await reviewsServer(cleanups, (_req, res) => setTimeout(() => res.end('late'), 400));
    const c = await productpageClient(cleanups, reviewsMesh(server.ports.inbound), { timeoutMs: 100 });
    const res = await send(c.ports.outbound, { host: 'reviews:9080' });
    expect(res.status).toBe(504);
    expect(res.body).toBe('upstream request timeout');
    await eventually(async () => {
      expect(await series(c, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('source', { ...FALLBACK_PEER, destination_workload: 'unknown', destination_workload_namespace: 'unknown', destination_canonical_service: 'unknown', destination_canonical_revision: 'latest', destination_cluster: 'unknown', response_code: '504', response_flags: 'UT' })} 1`,
      ]);
      expect(await series(server, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('destination', { response_code: '0', response_flags: 'DC' })} 1`,
      ]);
    });
  });

  it('answers 404 NR for a known host on a port the service does not have', async () => {
    const c = await productpageClient(cleanups, reviewsMesh(1));
    const res = await send(c.ports.outbound, { host: 'reviews:9999' });
    expect(res.status).toBe(404);
    await eventually(async () => {
      const lines = await series(c, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('response_code="404",grpc_response_status="",response_flags="NR"');
    });
  });

  it('answers 503 UH for a service without endpoints', async () => {
    const c = await productpageClient(cleanups, { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] });
    expect((await send(c.ports.outbound, { host: 'reviews:9080' })).status).toBe(503);
    await eventually(async () => {
      const lines = await series(c, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('response_code="503",grpc_response_status="",response_flags="UH"');
    });
  });

  it('records DC with response code 0 on both sides when the client hangs up first', async () => {
    const { server } = await reviewsServer(cleanups, (_req, res) => setTimeout(() => res.end('late'), 300));
    const c = await productpageClient(cleanups, reviewsMesh(server.ports.inbound));
    await new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: c.ports.outbound, headers: { host: 'reviews:9080' }, agent: false });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 80);
    });
    await eventually(async () => {
      const src = await series(c, 'istio_requests_total');
      expect(src).toHaveLength(1);
      expect(src[0]).toContain('response_code="0",grpc_response_status="",response_flags="DC"');
      expect(await series(server, 'istio_requests_total')).toEqual([
        `istio_requests_total${bookinfoLabels('destination', { response_code: '0', response_flags: 'DC' })} 1`,
      ]);
    });
    // The proxy is still serving.
    const after = await send(server.ports.inbound, {});
    expect(after.status).toBe(200);
  });

  it('answers 503 UF from the inbound side when the app is down, without retrying', async () => {
    const port = await deadPort();
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port }, retries: 2 });
    cleanups.push(server.close);
    expect((await send(server.ports.inbound, {})).status).toBe(503);
    await eventually(async () => {
      const lines = await series(server, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('response_code="503",grpc_response_status="",response_flags="UF"');
    });
  });
  it('answers 502 UPE when the app answers bytes that are not HTTP (Envoy: upstream protocol error)', async () => {
    // A raw TCP app that reads the request and answers garbage.
    const raw = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end('NOT HTTP AT ALL\r\n\r\n'));
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => raw.close(() => resolve())));
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: (raw.address() as AddressInfo).port } });
    cleanups.push(server.close);
    const res = await send(server.ports.inbound, {});
    expect(res.status).toBe(502);
    await eventually(async () => {
      const lines = await series(server, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('response_code="502",grpc_response_status="",response_flags="UPE"');
    });
  });

  it('flags a reset the proxy makes itself UC without DC (the client never left)', async () => {
    // The app sends the head and part of the body, then resets: the inbound proxy resets the downstream.
    const { server } = await reviewsServer(cleanups, (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 30);
    });
    await new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: server.ports.inbound, agent: false }, (res) => {
        res.on('data', () => {});
        res.on('error', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
    await eventually(async () => {
      const lines = await series(server, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('response_code="200",grpc_response_status="",response_flags="UC"');
    });
  });
});

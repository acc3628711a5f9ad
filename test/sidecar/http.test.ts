import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bookinfoLabels, bookinfoPair, eventually, httpApp, productpageClient, send, series } from './helpers.js';
import type { Cleanups } from './helpers.js';

const MX_ID = 'x-envoy-peer-metadata-id';
const MX_VALUE = 'x-envoy-peer-metadata';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('Sidecar over HTTP/1.1', () => {
  describe('outbound → inbound', () => {
    it('records one request once per reporter with the labels Istio emits', async () => {
      const { client, server } = await bookinfoPair(cleanups);
      const res = await send(client.ports.outbound, { host: 'reviews:9080', path: '/reviews/1' });
      expect(res).toMatchObject({ status: 200, body: 'ok' });
      await eventually(async () => {
        expect(await series(client, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('source')} 1`]);
        expect(await series(server, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('destination')} 1`]);
      });
    });

    it('strips MX headers before the app and before the client, and forwards everything else', async () => {
      const { client, app } = await bookinfoPair(cleanups);
      const res = await send(client.ports.outbound, { host: 'reviews:9080', path: '/p?q=1', method: 'POST', body: 'payload', headers: { 'x-custom': 'kept', [MX_ID]: 'forged' } });
      expect(res.status).toBe(200);
      expect(res.headers[MX_ID]).toBeUndefined();
      expect(res.headers[MX_VALUE]).toBeUndefined();
      const seen = app.seen[0]!;
      expect(seen).toMatchObject({ method: 'POST', url: '/p?q=1', body: 'payload' });
      expect(seen.headers['x-custom']).toBe('kept');
      expect(seen.headers[MX_ID]).toBeUndefined();
      expect(seen.headers[MX_VALUE]).toBeUndefined();
    });

    it('routes absolute-form requests from apps that use it as HTTP_PROXY', async () => {
      const { client, server } = await bookinfoPair(cleanups);
      const res = await send(client.ports.outbound, { path: 'http://reviews:9080/abs' });
      expect(res.status).toBe(200);
      await eventually(async () => {
        expect(await series(server, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('destination')} 1`]);
      });
    });

    it('counts every request on a keep-alive connection exactly once', async () => {
      const { client, server } = await bookinfoPair(cleanups);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 5; i++) expect((await send(client.ports.outbound, { host: 'reviews', agent })).status).toBe(200);
      } finally {
        agent.destroy();
      }
      await eventually(async () => {
        expect(await series(client, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('source')} 5`]);
        expect(await series(server, 'istio_requests_total')).toEqual([`istio_requests_total${bookinfoLabels('destination')} 5`]);
      });
    });
  });

  describe('inbound', () => {
    it.each([
      { sent: [MX_ID, MX_VALUE], answered: [MX_ID, MX_VALUE] },
      { sent: [MX_ID], answered: [MX_ID] },
      { sent: [MX_VALUE], answered: [MX_VALUE] },
      { sent: [], answered: [] },
    ])('answers with its own MX headers only for those the request carried: $sent', async ({ sent, answered }) => {
      const { server } = await bookinfoPair(cleanups);
      const headers: Record<string, string> = {};
      // Empty values still count as "received" (request_peer_id_received_ is header presence).
      for (const h of sent) headers[h] = '';
      const res = await send(server.ports.inbound, { headers });
      expect(res.status).toBe(200);
      expect(res.headers[MX_ID] !== undefined).toBe(answered.includes(MX_ID));
      expect(res.headers[MX_VALUE] !== undefined).toBe(answered.includes(MX_VALUE));
      if (answered.includes(MX_ID)) expect(res.headers[MX_ID]).toBe(server.nodeId);
    });

    it('counts request and response bytes exactly as they crossed the wire', async () => {
      const { server } = await bookinfoPair(cleanups);
      const request = 'POST /bytes HTTP/1.1\r\nhost: reviews:9080\r\ncontent-length: 11\r\nconnection: close\r\n\r\nhello world';
      const received = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const s = net.connect(server.ports.inbound, '127.0.0.1', () => s.write(request));
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => resolve(Buffer.concat(chunks)));
        s.on('error', reject);
      });
      expect(received.toString()).toMatch(/^HTTP\/1\.1 200 OK/);
      const dest = bookinfoLabels('destination', {
        source_workload: 'unknown',
        source_canonical_service: 'unknown',
        source_canonical_revision: 'latest',
        source_workload_namespace: 'unknown',
        source_app: 'unknown',
        source_version: 'unknown',
        source_cluster: 'unknown',
      });
      await eventually(async () => {
        expect(await series(server, 'istio_request_bytes_sum')).toEqual([`istio_request_bytes_sum${dest} ${request.length}`]);
        expect(await series(server, 'istio_response_bytes_sum')).toEqual([`istio_response_bytes_sum${dest} ${received.length}`]);
        expect(await series(server, 'meshtel_peer_unknown_total')).toContain('meshtel_peer_unknown_total{reason="no_header",reporter="destination"} 1');
      });
    });

    it('survives a garbled MX header and counts the request once with an empty peer', async () => {
      const { server } = await bookinfoPair(cleanups);
      const res = await send(server.ports.inbound, { headers: { [MX_ID]: 'bad-peer', [MX_VALUE]: '%%% not base64 %%%' } });
      expect(res.status).toBe(200);
      await eventually(async () => {
        const lines = await series(server, 'istio_requests_total');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/source_workload="unknown".*response_code="200".* 1$/);
      });
    });
  });

  describe('routing', () => {
    it('round-robins over a service\'s endpoints', async () => {
      const a = await httpApp();
      const b = await httpApp();
      cleanups.push(a.close, b.close);
      const client = await productpageClient(cleanups, {
        services: [
          {
            name: 'reviews',
            ports: [{ name: 'http', protocol: 'http', port: 9080 }],
            endpoints: [
              { address: '127.0.0.1', ports: { http: a.port }, sidecar: false },
              { address: '127.0.0.1', ports: { http: b.port }, sidecar: false },
            ],
          },
        ],
      });
      for (let i = 0; i < 4; i++) expect((await send(client.ports.outbound, { host: 'reviews.default.svc.cluster.local:9080' })).status).toBe(200);
      expect([a.seen.length, b.seen.length]).toEqual([2, 2]);
    });

    it('sends unknown hosts to PassthroughCluster under ALLOW_ANY, keeping the Host as destination_service', async () => {
      const external = await httpApp();
      cleanups.push(external.close);
      const { client } = await bookinfoPair(cleanups);
      const host = `127.0.0.1:${external.port}`;
      const res = await send(client.ports.outbound, { host });
      expect(res.status).toBe(200);
      // ALWAYS mode: MX headers go to external hosts too (Istio's default).
      expect(external.seen[0]!.headers[MX_ID]).toBe(client.nodeId);
      await eventually(async () => {
        const lines = await series(client, 'istio_requests_total');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`destination_service="${host}"`);
        expect(lines[0]).toContain('destination_service_name="PassthroughCluster"');
        expect(lines[0]).toContain('destination_workload="unknown"');
      });
    });

    it('sends no MX headers to a passthrough host in IN_MESH mode', async () => {
      const external = await httpApp();
      cleanups.push(external.close);
      const { client } = await bookinfoPair(cleanups, { mxMode: 'IN_MESH' });
      expect((await send(client.ports.outbound, { host: `127.0.0.1:${external.port}`, headers: { [MX_ID]: 'app-set' } })).status).toBe(200);
      // Skipped MX means nothing is set and nothing is removed.
      expect(external.seen[0]!.headers[MX_ID]).toBe('app-set');
      expect(external.seen[0]!.headers[MX_VALUE]).toBeUndefined();
    });

    it.each([
      { mode: 'IN_MESH' as const, sent: false },
      { mode: 'ALWAYS' as const, sent: true },
    ])('sends MX headers to a MeshExternal service only in ALWAYS mode ($mode)', async ({ mode, sent }) => {
      const external = await httpApp();
      cleanups.push(external.close);
      const c = await productpageClient(
        cleanups,
        { services: [{ name: 'payments', hostnames: ['api.payments.example'], external: true, ports: [{ name: 'http', protocol: 'http', port: 80 }], endpoints: [{ address: '127.0.0.1', ports: { http: external.port }, sidecar: false }] }] },
        { mxMode: mode },
      );
      expect((await send(c.ports.outbound, { path: 'http://api.payments.example/charge' })).status).toBe(200);
      expect(external.seen[0]!.url).toBe('/charge');
      expect(external.seen[0]!.headers[MX_ID] !== undefined).toBe(sent);
    });

    it('answers 502 from BlackHoleCluster under REGISTRY_ONLY', async () => {
      const external = await httpApp();
      cleanups.push(external.close);
      const { client } = await bookinfoPair(cleanups, { outboundTrafficPolicy: 'REGISTRY_ONLY' });
      const res = await send(client.ports.outbound, { host: `127.0.0.1:${external.port}` });
      expect(res.status).toBe(502);
      expect(external.seen).toHaveLength(0);
      await eventually(async () => {
        const lines = await series(client, 'istio_requests_total');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain('destination_service_name="BlackHoleCluster"');
        expect(lines[0]).toContain('response_code="502",grpc_response_status="",response_flags="-"');
      });
    });
  });
});

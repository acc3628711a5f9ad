/**
 * `TestStatsPayload/Default` end to end: the upstream client and server node metadata in two real meshtel sidecars on
 * loopback, 10 POSTs of "hello, world!" from the client app through the client sidecar to Service `server` (whose pod
 * is ratings-v1, canonical name `ratings`), and the client sidecar's istio_requests_total compared like
 * driver.ExactStat with testdata/metric/client_request_total.yaml.tmpl (release-1.29, RequestCount=10).
 * and the server sidecar's with server_request_total.yaml.tmpl (destination_service from the Service selecting the pod).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, get, httpApp, send, sidecar } from '../../sidecar/helpers.js';
import type { Cleanups } from '../../sidecar/helpers.js';
import { expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

interface Files {
  clientNodeMetadata: { value: Record<string, unknown> };
  serverNodeMetadata: { value: Record<string, unknown> };
  client_request_total: { value: MetricFamily };
  server_request_total: { value: MetricFamily };
}
const F = fixture<{ branches: Record<string, { files: Files }> }>('stats-default.json').branches['release-1.29']!.files;

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('stats_plugin Default through two sidecars (release-1.29)', () => {
  it('both reporters emit exactly Istio\'s series; no principal over plain text', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const server = await sidecar({
      metadata: fromNodeMetadata(F.serverNodeMetadata.value),
      app: { port: app.port },
      // Service `server` selects the ratings pod (testdata/cluster/server.yaml.tmpl istio.services).
      mesh: { services: [{ name: 'server', selector: { app: 'ratings' }, ports: [{ name: 'http', protocol: 'http', port: 8080 }] }] },
    });
    cleanups.push(server.close);
    const client = await sidecar({
      metadata: fromNodeMetadata(F.clientNodeMetadata.value),
      mesh: { services: [{ name: 'server', ports: [{ name: 'http', protocol: 'http', port: 8080 }], endpoints: [{ address: '127.0.0.1', ports: { http: server.ports.inbound } }] }] },
    });
    cleanups.push(client.close);
    for (let i = 0; i < 10; i++) {
      const r = await send(client.ports.outbound, { method: 'POST', host: 'server:8080', body: 'hello, world!' });
      expect(r.status).toBe(200);
    }
    await eventually(async () => {
      const { body } = await get(`http://127.0.0.1:${client.ports.prometheus}/stats/prometheus`);
      expectExactStat(body, F.client_request_total.value);
    });
    await eventually(async () => {
      const { body } = await get(`http://127.0.0.1:${server.ports.prometheus}/stats/prometheus`);
      expectExactStat(body, F.server_request_total.value);
    });
  });
});

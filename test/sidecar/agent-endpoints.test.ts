import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PROMETHEUS_TEXT_CONTENT_TYPE, parsePrometheusAnnotations } from '../../src/sidecar/agent-endpoints.js';
import { get, httpApp, send, sidecar, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** An app exposing its own metrics, recording the scrape headers. */
async function metricsApp(contentType: string, body: string, status = 200) {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(status, { 'content-type': contentType });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, seen };
}

describe('parsePrometheusAnnotations()', () => {
  it.each([
    { raw: undefined, expected: undefined },
    { raw: '{"scrape":"true","path":"/m","port":"8080"}', expected: { scrape: true, path: '/m', port: 8080 } },
    { raw: '{}', expected: { scrape: true, path: '/metrics', port: 80 } },
    { raw: '{"scrape":"false"}', expected: { scrape: false, path: '/metrics', port: 80 } },
  ])('reads $raw', ({ raw, expected }) => {
    expect(parsePrometheusAnnotations(raw, 15020)).toEqual(expected);
  });

  it.each(['not json', '{"port":"http"}', '{"port":"15020"}'])('rejects %s with MESHTEL_ERR_INVALID_CONFIG', (raw) => {
    expect(() => parsePrometheusAnnotations(raw, 15020)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
  });
});

describe('Sidecar agent endpoints', () => {
  it('serves the proxy metrics on :15090 and readiness on :15021', async () => {
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews') });
    cleanups.push(sc.close);
    const prom = await get(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`);
    expect(prom.status).toBe(200);
    expect(prom.type).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(prom.body).toContain('istio_build{component="proxy",tag="1.29.0"} 1');
    expect(await get(`http://127.0.0.1:${sc.ports.health}/healthz/ready`)).toEqual({ status: 200, type: expect.any(String), body: '' });
  });

  it('merges agent, proxy and app metrics on :15020 with the app last and forwards the scrape headers', async () => {
    const app = await metricsApp('text/plain; version=0.0.4', '# TYPE app_hits_total counter\napp_hits_total 7\n');
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), prometheusAnnotations: JSON.stringify({ scrape: 'true', path: '/custom', port: String(app.port) }) });
    cleanups.push(sc.close);
    const res = await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`, { accept: 'text/plain', 'user-agent': 'Prometheus/2.42.0', 'x-prometheus-scrape-timeout-seconds': '3' });
    expect(res.status).toBe(200);
    expect(res.type).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    const agentAt = res.body.indexOf('istio_agent_scrapes_total');
    const proxyAt = res.body.indexOf('istio_build{');
    const appAt = res.body.indexOf('app_hits_total 7');
    expect(agentAt).toBeGreaterThanOrEqual(0);
    expect(proxyAt).toBeGreaterThan(agentAt);
    expect(appAt).toBeGreaterThan(proxyAt);
    expect(res.body.endsWith('app_hits_total 7\n')).toBe(true);
    expect(app.seen[0]).toMatchObject({ accept: 'text/plain', 'user-agent': 'Prometheus/2.42.0', 'x-prometheus-scrape-timeout-seconds': '3' });
  });

  it('follows the app to OpenMetrics so its # EOF ends the body', async () => {
    const om = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
    const app = await metricsApp(om, '# TYPE app_up gauge\napp_up 1\n# EOF\n');
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), prometheusAnnotations: JSON.stringify({ port: String(app.port) }) });
    cleanups.push(sc.close);
    const res = await get(`http://127.0.0.1:${sc.ports.status}/metrics`);
    expect(res.type).toBe(om);
    expect(res.body.endsWith('# EOF\n')).toBe(true);
  });

  it('swallows and counts a failed app scrape', async () => {
    const app = await metricsApp('text/plain', 'oops', 500);
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), prometheusAnnotations: JSON.stringify({ port: String(app.port) }) });
    cleanups.push(sc.close);
    expect((await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`)).status).toBe(200);
    const second = await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`);
    expect(second.status).toBe(200);
    expect(second.body).toContain('istio_agent_scrape_failures_total{type="application"} 1');
    expect(second.body).not.toContain('oops');
  });

  describe('admin (:15000)', () => {
    it('dumps the loaded identity and mesh, and flat /stats', async () => {
      const sc = await sidecar({
        metadata: workload('reviews', 'bookinfo-reviews'),
        mesh: { services: [{ name: 'ratings', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] },
      });
      cleanups.push(sc.close);
      const dump = await get(`http://127.0.0.1:${sc.ports.admin}/config_dump`);
      const body = JSON.parse(dump.body) as { node: { id: string; metadata: { workload: string } }; mesh: { services: Array<{ name: string }> } };
      expect(body.node.id).toBe(sc.nodeId);
      expect(body.node.metadata.workload).toBe('reviews-v1');
      expect(body.mesh.services.map((s) => s.name)).toEqual(['ratings']);
      const stats = await get(`http://127.0.0.1:${sc.ports.admin}/stats`);
      expect(stats.body).toContain('istiocustom.istio_build.component.proxy.tag.1.29.0: 1');
    });

    it('shuts the sidecar down on POST /quitquitquit', async () => {
      const app = await httpApp();
      cleanups.push(app.close);
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
      cleanups.push(sc.close);
      expect((await send(sc.ports.inbound, {})).status).toBe(200);
      const res = await fetch(`http://127.0.0.1:${sc.ports.admin}/quitquitquit`, { method: 'POST' });
      expect(await res.text()).toBe('OK\n');
      await sc.closed;
      await expect(send(sc.ports.inbound, {})).rejects.toThrow();
    });
  });
});

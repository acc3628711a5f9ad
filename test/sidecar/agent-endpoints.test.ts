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

  describe('merged page in the negotiated format', () => {
    const OM = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
    // What Prometheus 2.42 sends when it prefers OpenMetrics.
    const PROM_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
    const omApp = '# HELP app_requests Requests served.\n# TYPE app_requests counter\napp_requests_total{path="/a"} 3 # {trace_id="abc"} 1 1700000000.5\napp_requests_created{path="/a"} 1700000000\n# TYPE app_up gauge\napp_up 1 1700000000.25\n# EOF\n';
    const textApp = '# HELP app_hits_total Hits.\n# TYPE app_hits_total counter\napp_hits_total 7\n# TYPE app_temp gauge\napp_temp{room="a \\"b\\""} 21.5 1700000000250\n';
    const start = async (contentType: string, body: string, extra: Record<string, unknown> = {}) => {
      const app = await metricsApp(contentType, body);
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), prometheusAnnotations: JSON.stringify({ port: String(app.port) }), ...extra });
      cleanups.push(sc.close);
      return sc;
    };

    it('renders agent, proxy and app in OpenMetrics with exactly one # EOF, at the end', async () => {
      const sc = await start(OM, omApp);
      const res = await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`, { accept: PROM_ACCEPT });
      expect(res.type).toBe(OM);
      expect(res.body.match(/^# EOF$/gm)).toHaveLength(1);
      expect(res.body.endsWith('\n# EOF\n')).toBe(true);
      // Agent counters in OpenMetrics shape: family without _total, sample with it.
      expect(res.body).toContain('# TYPE istio_agent_scrapes counter\nistio_agent_scrapes_total 1\n');
      expect(res.body).toContain('istio_build{component="proxy",tag="1.29.0"} 1');
      expect(res.body).toContain('# HELP app_requests Requests served.\n# TYPE app_requests counter\napp_requests_total{path="/a"} 3 # {trace_id="abc"} 1 1700000000.5\n');
      expect(res.body).toContain('app_up 1 1700000000.25\n');
      expect(res.body.indexOf('istio_agent_scrapes_total')).toBeLessThan(res.body.indexOf('istio_build{'));
      expect(res.body.indexOf('istio_build{')).toBeLessThan(res.body.indexOf('app_requests_total'));
    });

    it('turns a text app into OpenMetrics when the scraper asks for it', async () => {
      const sc = await start('text/plain; version=0.0.4', textApp);
      const res = await get(`http://127.0.0.1:${sc.ports.status}/metrics`, { accept: PROM_ACCEPT });
      expect(res.type).toBe(OM);
      expect(res.body).toContain('# HELP app_hits Hits.\n# TYPE app_hits counter\napp_hits_total 7\n');
      // Timestamps: milliseconds in text, seconds in OpenMetrics; label escapes kept.
      expect(res.body).toContain('app_temp{room="a \\"b\\""} 21.5 1700000000.25\n');
      expect(res.body.match(/^# EOF$/gm)).toHaveLength(1);
    });

    it('turns an OpenMetrics app into text when the scraper asks for text (no # EOF, no exemplars)', async () => {
      const sc = await start(OM, omApp);
      const res = await get(`http://127.0.0.1:${sc.ports.status}/metrics`, { accept: 'text/plain;version=0.0.4' });
      expect(res.type).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
      expect(res.body).not.toContain('# EOF');
      expect(res.body).toContain('# HELP app_requests_total Requests served.\n# TYPE app_requests_total counter\napp_requests_total{path="/a"} 3\n');
      expect(res.body).toContain('app_up 1 1700000000250\n');
      expect(res.body).toContain('# TYPE istio_agent_scrapes_total counter\nistio_agent_scrapes_total 1\n');
    });

    it.each([
      ['a line that is no sample', 'text/plain', 'app_ok 1\nthis is { not a sample\n'],
      ['OpenMetrics cut short (no # EOF)', OM, '# TYPE app_up gauge\napp_up 1\n'],
      ['content after # EOF', OM, 'app_up 1\n# EOF\napp_late 2\n'],
    ])('leaves out an invalid app page (%s), keeps agent and proxy metrics and counts it', async (_name, type, body) => {
      const sc = await start(type, body);
      await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`, { accept: PROM_ACCEPT });
      const res = await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`, { accept: PROM_ACCEPT });
      expect(res.body).not.toMatch(/^app_/m);
      expect(res.body).toContain('istio_build{component="proxy",tag="1.29.0"} 1');
      expect(res.body).toContain('istio_agent_scrape_failures_total{type="application"} 1\n');
      expect(res.body).toContain('meshtel_app_scrape_rejected_total{reason="invalid"} 1\n');
      expect(res.body.endsWith('\n# EOF\n')).toBe(true);
    });

    it.each([
      ['with content-length', false],
      ['chunked', true],
    ])('refuses an app page over the bound (%s) and counts it', async (_name, chunked) => {
      const big = `# TYPE app_big gauge\n${'app_big{x="0123456789"} 1\n'.repeat(100)}`;
      const server = http.createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', ...(chunked ? {} : { 'content-length': Buffer.byteLength(big) }) });
        if (chunked) for (let i = 0; i < big.length; i += 512) res.write(big.slice(i, i + 512));
        res.end(chunked ? undefined : big);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
      const port = (server.address() as AddressInfo).port;
      const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), prometheusAnnotations: JSON.stringify({ port: String(port) }), appScrapeMaxBytes: 1024 });
      cleanups.push(sc.close);
      await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`);
      const res = await get(`http://127.0.0.1:${sc.ports.status}/stats/prometheus`);
      expect(res.body).not.toContain('app_big');
      expect(res.body).toContain('meshtel_app_scrape_rejected_total{reason="too_large"} 1\n');
      expect(res.body).toContain('istio_build{component="proxy",tag="1.29.0"} 1');
    });
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

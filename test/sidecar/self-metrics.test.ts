import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { bookinfoPair, eventually, httpApp, send, series, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** GET a URL with raw node:http so the gzip body is not decoded for us. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
      })
      .on('error', reject);
  });
}

describe('Sidecar self-metrics', () => {
  it('exports peer-cache hits, misses and decodes: the second request from a known peer is not decoded', async () => {
    const { server, client } = await bookinfoPair(cleanups);

    for (let i = 0; i < 3; i++) expect((await send(client.ports.outbound, { host: 'reviews:9080', path: '/' })).status).toBe(200);
    await eventually(async () => {
      // Inbound: the first request decodes the client's header, the next two hit the cache by id.
      expect(await series(server, 'meshtel_peer_decodes_total')).toEqual(['meshtel_peer_decodes_total 1']);
      expect(await series(server, 'meshtel_peer_cache_hits_total')).toEqual(['meshtel_peer_cache_hits_total 2']);
      expect(await series(server, 'meshtel_peer_cache_misses_total')).toEqual(['meshtel_peer_cache_misses_total 1']);
      expect(await series(server, 'meshtel_peer_cache_entries')).toEqual(['meshtel_peer_cache_entries 1']);
      expect(await series(server, 'meshtel_proxy_requests_active')).toEqual(['meshtel_proxy_requests_active 0']);
    });
  });

  it('counts in-flight requests while the app is still answering', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const app = await httpApp((_req, res) => void held.then(() => res.end('late')));
    cleanups.push(app.close);
    const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
    cleanups.push(server.close);
    const pending = send(server.ports.inbound, { host: 'reviews:9080', path: '/' });
    await eventually(async () => expect(await series(server, 'meshtel_proxy_requests_active')).toEqual(['meshtel_proxy_requests_active 1']));
    release();
    expect((await pending).status).toBe(200);
    await eventually(async () => expect(await series(server, 'meshtel_proxy_requests_active')).toEqual(['meshtel_proxy_requests_active 0']));
  });

  it('serves process metrics and gzip-compresses :15090 and :15020 when the scraper asks', async () => {
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews') });
    cleanups.push(sc.close);
    for (const port of [sc.ports.prometheus, sc.ports.status]) {
      const res = await rawGet(`http://127.0.0.1:${port}/stats/prometheus`, { 'accept-encoding': 'gzip' });
      expect(res.headers['content-encoding']).toBe('gzip');
      const text = gunzipSync(res.body).toString('utf8');
      expect(text).toContain('istio_build{component="proxy",tag="1.29.0"} 1');
      expect(text).toMatch(/^process_cpu_seconds_total \d/m);
      expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    }
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpointSource } from '../../src/console/sources.js';
import type { ConsoleSource } from '../../src/console/sources.js';

const LABELS =
  'reporter="source",source_workload="productpage-v1",source_workload_namespace="bookinfo",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",request_protocol="http"';

/** A metrics page whose counters grow by `perScrape` requests (every fifth a 500) each time it is read. */
function countingEndpoint(perScrape: number): Promise<{ url: string; close(): Promise<void> }> {
  let ok = 0;
  let failed = 0;
  const server = http.createServer((_req, res) => {
    ok += perScrape * 0.8;
    failed += perScrape * 0.2;
    res.end(`istio_requests_total{${LABELS},response_code="200",response_flags="-"} ${ok}\nistio_requests_total{${LABELS},response_code="500",response_flags="-"} ${failed}\n`);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/stats/prometheus`, close: () => new Promise((r) => server.close(() => r())) }),
    ),
  );
}

describe('createEndpointSource()', () => {
  let source: ConsoleSource | undefined;
  afterEach(() => source?.close());

  it('rates over the window, not over the last interval: the window widens with each scrape up to its length', async () => {
    const ep = await countingEndpoint(10);
    try {
      source = createEndpointSource({ urls: [ep.url], intervalMs: 200, windowMs: 700 });
      const windows: number[] = [];
      const deadline = Date.now() + 10_000;
      while (windows.length < 10 && Date.now() < deadline) {
        const g = await source.graph();
        if (g && windows[windows.length - 1] !== g.windowSeconds) windows.push(g.windowSeconds);
        await new Promise((r) => setTimeout(r, 30));
      }
      // Grows from one interval to about the window (never beyond window + one interval), then stays there.
      // (Bounds leave room for timer lag on a loaded machine.)
      expect(windows[0]).toBeLessThan(0.5);
      expect(Math.max(...windows)).toBeGreaterThanOrEqual(0.7);
      expect(Math.max(...windows)).toBeLessThan(1.3);
      const g = await source.graph();
      const e = g?.edges[0];
      // Every scrape adds 10 requests, 2 of them 500: the share over several scrapes is exact.
      expect(e?.errorShare).toBeCloseTo(0.2, 10);
      expect(e?.codes['500']).toBeCloseTo((e?.rps ?? 0) * 0.2, 10);
    } finally {
      await ep.close();
    }
  });
});

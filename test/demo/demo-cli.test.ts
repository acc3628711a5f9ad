import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import type { Sample } from '../../src/stats/exposition-parser.js';
import { spawnMeshtel } from '../cli/support.js';

/** Every edge of the demo: [source workload, destination workload, metric that carries it]. */
const EDGES = [
  ['istio-ingressgateway', 'productpage-v1', 'istio_requests_total'],
  ['productpage-v1', 'details-v1', 'istio_requests_total'],
  ['productpage-v1', 'reviews-v1', 'istio_requests_total'],
  ['productpage-v1', 'reviews-v2', 'istio_requests_total'],
  ['productpage-v1', 'reviews-v3', 'istio_requests_total'],
  ['reviews-v2', 'ratings-v1', 'istio_requests_total'],
  ['reviews-v3', 'ratings-v1', 'istio_requests_total'],
  ['ratings-v1', 'mongodb-v1', 'istio_tcp_connections_opened_total'],
] as const;

async function scrapeAll(urls: readonly string[]): Promise<Sample[]> {
  const bodies = await Promise.all(urls.map(async (u) => (await fetch(u)).text()));
  return bodies.flatMap((b) => parseExposition(b));
}

/** Edges (with reporter) that have at least one non-zero series. */
function edgesSeen(samples: readonly Sample[]): Set<string> {
  const seen = new Set<string>();
  for (const s of samples) {
    if (s.value > 0 && s.labels.reporter) seen.add(`${s.name}|${s.labels.source_workload}|${s.labels.destination_workload}|${s.labels.reporter}`);
  }
  return seen;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('meshtel demo (CLI)', () => {
  it('serves istio_* series from both reporters on every edge within seconds and exits 0 on SIGINT', async () => {
    const child = spawnMeshtel(['demo', '--no-tty', '--rate', '40', '--refresh', '1s']);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      // The header lists every merged metrics URL, one per workload, before traffic tables.
      const deadline = Date.now() + 30_000;
      while (!stdout.includes('# Prometheus configuration') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const urls = [...stdout.matchAll(/(http:\/\/127\.0\.0\.1:\d+\/stats\/prometheus)/g)].map((m) => m[1] as string);
      const unique = [...new Set(urls)];
      expect(unique).toHaveLength(8);
      expect(stdout).toMatch(/productpage-v1\s+proxyless/);
      expect(stdout).toMatch(/istio-ingressgateway\s+gateway/);
      expect(stdout).toContain('scrape_configs:');

      const wanted = EDGES.flatMap(([src, dst, metric]) =>
        (src === 'istio-ingressgateway' ? ['source'] : ['source', 'destination']).map((r) => `${metric}|${src}|${dst}|${r}`),
      );
      // The gateway's copy of gateway→productpage is reporter=source; productpage (proxyless) reports destination.
      wanted.push('istio_requests_total|istio-ingressgateway|productpage-v1|destination');
      let missing = wanted;
      const until = Date.now() + 20_000;
      while (missing.length > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 500));
        const seen = edgesSeen(await scrapeAll(unique));
        missing = wanted.filter((w) => !seen.has(w));
      }
      expect(missing).toEqual([]);

      // gRPC edge is labelled grpc, the TCP edge tcp, and the injected fault shows on reviews-v2 only.
      const samples = await scrapeAll(unique);
      const grpc = samples.find((s) => s.name === 'istio_requests_total' && s.labels.destination_workload === 'ratings-v1');
      expect(grpc?.labels.request_protocol).toBe('grpc');
      const tcp = samples.find((s) => s.name === 'istio_tcp_connections_opened_total');
      expect(tcp?.labels.request_protocol).toBe('tcp');
      const failedAt = new Set(
        samples.filter((s) => s.name === 'istio_requests_total' && s.labels.reporter === 'destination' && s.labels.response_code === '500').map((s) => s.labels.destination_workload),
      );
      expect([...failedAt]).toEqual(['reviews-v2']);
      // The table is printed as plain lines (no escape sequences) when stdout is not a terminal; the first one
      // comes one refresh after traffic starts, which can be later than the edges appear on a loaded machine.
      const tableBy = Date.now() + 15_000;
      while (!/EDGES \(reporter=source/.test(stdout) && Date.now() < tableBy) await new Promise((r) => setTimeout(r, 200));
      expect(stdout).toMatch(/EDGES \(reporter=source/);
      expect(stdout).not.toContain('\x1b[');

      const ports = unique.map((u) => Number(new URL(u).port));
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 10_000))]);
      expect(code).toBe(0);
      expect(stdout).toMatch(/SIGINT: stopping the demo/);
      expect(stdout).toMatch(/stopped after \d+ requests/);
      expect(await Promise.all(ports.map(refused))).toEqual(ports.map(() => true));
      expect(stderr).not.toMatch(/unexpected error|Unhandled/i);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});

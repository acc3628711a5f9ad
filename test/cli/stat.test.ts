import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeStat, histogramQuantile } from '../../src/stats/golden-signals.js';
import type { StatRow } from '../../src/stats/golden-signals.js';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { runMeshtel, spawnMeshtel } from './support.js';

describe('histogramQuantile()', () => {
  const b = (pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }));
  it.each([
    ['interpolates inside the bucket holding the rank', 0.5, b([[1, 0], [5, 10], [10, 20], [Infinity, 20]]), 5],
    ['interpolates a higher quantile', 0.75, b([[1, 0], [5, 10], [10, 20], [Infinity, 20]]), 7.5],
    ['interpolates p99', 0.99, b([[1, 0], [5, 10], [10, 20], [Infinity, 20]]), 9.9],
    ['starts the first bucket at 0', 0.5, b([[0.5, 4], [Infinity, 4]]), 0.25],
    ['answers the highest finite bound when the rank is in +Inf', 0.99, b([[5, 1], [10, 2], [Infinity, 100]]), 10],
    ['repairs non-monotonic buckets', 0.5, b([[1, 10], [5, 8], [Infinity, 10]]), 0.5],
    ['sorts buckets given out of order', 0.5, b([[Infinity, 20], [10, 20], [5, 10], [1, 0]]), 5],
  ])('%s', (_name, q, buckets, expected) => {
    expect(histogramQuantile(q, buckets)).toBeCloseTo(expected, 9);
  });

  it.each([
    ['no +Inf bucket', b([[1, 1], [5, 2]])],
    ['no observations', b([[1, 0], [Infinity, 0]])],
    ['a single bucket', b([[Infinity, 3]])],
  ])('is NaN with %s', (_name, buckets) => {
    expect(histogramQuantile(0.5, buckets)).toBeNaN();
  });

  it('is -Inf below 0 and +Inf above 1, as PromQL', () => {
    const buckets = b([[1, 1], [Infinity, 1]]);
    expect(histogramQuantile(-0.1, buckets)).toBe(-Infinity);
    expect(histogramQuantile(1.1, buckets)).toBe(Infinity);
  });
});

describe('parseExposition()', () => {
  it('reads names, escaped label values, special values and ignores comments, timestamps and exemplars', () => {
    const samples = parseExposition(
      [
        '# HELP x help',
        '# TYPE x counter',
        'x{a="1",b="q\\"uote\\\\back\\nline"} 3 1700000000000',
        'y_bucket{le="+Inf"} +Inf',
        'z NaN',
        'w{a="b",} 2 # {trace_id="abc"} 1',
        '# EOF',
      ].join('\n'),
    );
    expect(samples.map((s) => [s.name, s.labels, s.value])).toEqual([
      ['x', { a: '1', b: 'q"uote\\back\nline' }, 3],
      ['y_bucket', { le: '+Inf' }, Infinity],
      ['z', {}, NaN],
      ['w', { a: 'b' }, 2],
    ]);
  });

  it('throws MESHTEL_ERR_DECODE naming the line for a sample that does not parse', () => {
    try {
      parseExposition('ok 1\nbroken{a=1} 2\n');
      expect.unreachable();
    } catch (err) {
      expect(isMeshtelError(err, 'MESHTEL_ERR_DECODE')).toBe(true);
      expect((err as Error).message).toMatch(/^line 2 /);
    }
  });
});

/**
 * A known traffic mix as two scrapes of an inbound sidecar of reviews-v2 (reporter=destination) and the
 * outbound sidecar of productpage (reporter=source): 100 requests (10 of them 503) in the window to
 * reviews-v2, latencies 40 ≤ 5 ms, 50 in (5,10], 10 in (10,25]; 3 TCP connections open to ratings.
 */
const LABELS = (reporter: string, code: string) =>
  `reporter="${reporter}",source_workload="productpage-v1",source_workload_namespace="bookinfo",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_service_name="reviews",destination_service_namespace="bookinfo",response_code="${code}"`;
const TCP = (reporter: string) =>
  `reporter="${reporter}",source_workload="reviews-v2",source_workload_namespace="bookinfo",destination_workload="ratings-v1",destination_workload_namespace="bookinfo",destination_service_name="ratings",destination_service_namespace="bookinfo"`;

function scrape(ok: number, failed: number, buckets: [number, number, number, number], tcpOpened: number, tcpClosed: number): string {
  const lines: string[] = ['# TYPE istio_requests_total counter'];
  for (const reporter of ['destination', 'source']) {
    lines.push(`istio_requests_total{${LABELS(reporter, '200')}} ${ok}`);
    if (failed > 0) lines.push(`istio_requests_total{${LABELS(reporter, '503')}} ${failed}`);
    const [le5, le10, le25, inf] = buckets;
    lines.push(
      `istio_request_duration_milliseconds_bucket{${LABELS(reporter, '200')},le="5"} ${le5}`,
      `istio_request_duration_milliseconds_bucket{${LABELS(reporter, '200')},le="10"} ${le10}`,
      `istio_request_duration_milliseconds_bucket{${LABELS(reporter, '200')},le="25"} ${le25}`,
      `istio_request_duration_milliseconds_bucket{${LABELS(reporter, '200')},le="+Inf"} ${inf}`,
      `istio_tcp_connections_opened_total{${TCP(reporter)}} ${tcpOpened}`,
      `istio_tcp_connections_closed_total{${TCP(reporter)}} ${tcpClosed}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

// before: 50 requests already counted; after: +90 ok, +10 failed, buckets +40/+90/+100/+100.
const BEFORE = scrape(50, 0, [50, 50, 50, 50], 5, 4);
const AFTER = scrape(140, 10, [90, 140, 150, 150], 9, 6);

describe('computeStat()', () => {
  const before = parseExposition(BEFORE);
  const after = parseExposition(AFTER);

  it('gives per-workload success rate, RPS and quantiles from the deltas of the destination reporter', () => {
    const rows = computeStat(before, after, 10, { resource: 'workload' });
    const reviews = rows.find((r) => r.name === 'reviews-v2') as StatRow;
    expect(reviews).toMatchObject({ namespace: 'bookinfo', reporter: 'destination', requests: 100, failures: 10, successRate: 0.9, rps: 10 });
    // rank 50 of 100 lies in (5,10] holding 50: 5 + 5 * (10/50) = 6; p95 → 10 + 15 * (5/10) = 17.5.
    expect(reviews.p50).toBeCloseTo(6, 9);
    expect(reviews.p95).toBeCloseTo(17.5, 9);
    expect(reviews.p99).toBeCloseTo(23.5, 9);
    // productpage-v1 only calls out: listed with no traffic of its own.
    expect(rows.find((r) => r.name === 'productpage-v1')).toMatchObject({ requests: 0, successRate: null, p50: null });
  });

  it('gives open TCP connections as opened − closed at the end of the window', () => {
    const rows = computeStat(before, after, 10, { resource: 'workload' });
    expect(rows.find((r) => r.name === 'ratings-v1')?.tcpConnections).toBe(3);
  });

  it('groups edges by source and destination workload from the source reporter', () => {
    const rows = computeStat(before, after, 10, { resource: 'edge' });
    expect(rows.map((r) => [r.source, r.name, r.reporter, r.requests])).toEqual([
      ['productpage-v1', 'reviews-v2', 'source', 100],
      ['reviews-v2', 'ratings-v1', 'source', 0],
    ]);
  });

  it('treats a counter that went down as a reset (counts from zero) and a new series as wholly in the window', () => {
    const reset = computeStat(parseExposition(AFTER), parseExposition(scrape(7, 0, [7, 7, 7, 7], 0, 0)), 1, { resource: 'service' });
    expect(reset.find((r) => r.name === 'reviews')?.requests).toBe(7);
    const fresh = computeStat([], after, 1, { resource: 'service' });
    expect(fresh.find((r) => r.name === 'reviews')?.requests).toBe(150);
  });

  it('filters by namespace', () => {
    expect(computeStat(before, after, 10, { resource: 'workload', namespace: 'other' })).toEqual([]);
  });
});

describe('meshtel stat (CLI)', () => {
  let url = '';
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(hits === 1 ? BEFORE : AFTER);
  });
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/stats/prometheus`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('prints the table for a known traffic mix read from an endpoint scraped twice', async () => {
    hits = 0;
    const run = await runMeshtel(['stat', 'workload', '-e', url, '--interval', '200ms', '-o', 'wide']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
    expect(lines[0]).toEqual(['NAMESPACE', 'WORKLOAD', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'TCP_CONN', 'REQUESTS', 'FAILURES', 'REPORTER']);
    const reviews = lines.find((l) => l[1] === 'reviews-v2') as string[];
    expect(reviews.slice(0, 3)).toEqual(['bookinfo', 'reviews-v2', '90.00%']);
    expect(reviews.slice(4)).toEqual(['6.0ms', '18ms', '24ms', '-', '100', '10', 'destination']);
    expect(lines.find((l) => l[1] === 'ratings-v1')?.[7]).toBe('3');
  });

  it('prints JSON rows with -o json', async () => {
    hits = 0;
    const run = await runMeshtel(['stat', 'service', '-e', url, '--interval', '100ms', '-o', 'json']);
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as StatRow[];
    expect(rows.find((r) => r.name === 'reviews')).toMatchObject({ requests: 100, failures: 10, successRate: 0.9 });
  });

  it('--watch prints a fresh table every interval as plain blocks off a terminal and exits 0 on SIGINT', async () => {
    hits = 0;
    const child = spawnMeshtel(['stat', '-e', url, '--interval', '150ms', '--watch']);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while ((out.match(/^NAMESPACE/gm) ?? []).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect((out.match(/^NAMESPACE\s+WORKLOAD/gm) ?? []).length).toBeGreaterThanOrEqual(3);
    expect(out).not.toContain('\x1b[');
  });

  it.each([
    [['stat', 'pods', '-e', 'http://x'], 2, 'MESHTEL_ERR_CLI_USAGE'],
    [['stat'], 2, 'MESHTEL_ERR_CLI_USAGE'],
    [['stat', '-e', 'http://127.0.0.1:1/metrics', '--interval', '10ms'], 1, 'MESHTEL_ERR_SCRAPE'],
  ])('meshtel %j exits %i with %s', async (args, code, errorCode) => {
    const run = await runMeshtel(args);
    expect(run.code).toBe(code);
    expect(run.stderr).toContain(errorCode);
  });
});

import { describe, expect, it } from 'vitest';
import { graphFromScrapes, healthOf } from '../../src/console/graph.js';
import type { Sample } from '../../src/stats/exposition-parser.js';

const edge = (reporter: string, extra: Record<string, string> = {}): Record<string, string> => ({
  reporter,
  source_workload: 'productpage-v1',
  source_workload_namespace: 'bookinfo',
  destination_workload: 'reviews-v2',
  destination_workload_namespace: 'bookinfo',
  request_protocol: 'http',
  connection_security_policy: reporter === 'destination' ? 'mutual_tls' : 'unknown',
  ...extra,
});
const s = (name: string, labels: Record<string, string>, value: number, endpoint = '0'): Sample => ({ name, labels: { ...labels, __endpoint: endpoint }, value });

describe('console graph from two scrapes', () => {
  it('takes rates, error share and quantiles from the source side and the mTLS lock from the destination side', () => {
    const before = [
      s('istio_requests_total', edge('source', { response_code: '200' }), 100),
      s('istio_requests_total', edge('source', { response_code: '500' }), 20),
      s('istio_requests_total', edge('destination', { response_code: '200' }), 100, '1'),
    ];
    const after = [
      s('istio_requests_total', edge('source', { response_code: '200' }), 180),
      s('istio_requests_total', edge('source', { response_code: '500' }), 40),
      s('istio_requests_total', edge('destination', { response_code: '200' }), 180, '1'),
      s('istio_request_duration_milliseconds_bucket', edge('source', { le: '10' }), 50),
      s('istio_request_duration_milliseconds_bucket', edge('source', { le: '100' }), 100),
      s('istio_request_duration_milliseconds_bucket', edge('source', { le: '+Inf' }), 100),
      s('meshtel_peer_unknown_total', { reason: 'no_header', reporter: 'destination' }, 5, '1'),
    ];
    const g = graphFromScrapes(before, after, 10, 0);
    expect(g.edges).toHaveLength(1);
    const e = g.edges[0];
    expect(e).toMatchObject({ source: 'bookinfo/productpage-v1', target: 'bookinfo/reviews-v2', protocol: 'http', reporter: 'source', rps: 10, mtls: true, health: 'bad' });
    expect(e?.errorShare).toBeCloseTo(0.2, 10);
    expect(e?.p50).toBe(10);
    expect(e?.p99).toBeCloseTo(98.2, 6);
    // The destination endpoint (index 1) is reviews-v2: its unknown peers are attached to that node.
    expect(g.nodes.find((n) => n.id === 'bookinfo/reviews-v2')?.unknownPeers).toEqual([{ reason: 'no_header', reporter: 'destination', rate: 0.5 }]);
  });

  it('colours by health', () => {
    expect(healthOf(0, null)).toBe('idle');
    expect(healthOf(1, 0)).toBe('ok');
    expect(healthOf(1, 0.01)).toBe('warn');
    expect(healthOf(1, 0.2)).toBe('bad');
    expect(healthOf(0, null, 100)).toBe('ok');
  });
});

describe('console graph: errors by code and flag', () => {
  it('gives each edge its requests per second by response code and by response flag (not "-")', () => {
    const req = (code: string, flags: string, v: number): Sample => s('istio_requests_total', edge('source', { response_code: code, response_flags: flags }), v);
    const before = [req('200', '-', 100), req('503', 'UF', 10), req('0', 'DC', 0)];
    const after = [req('200', '-', 150), req('503', 'UF', 30), req('0', 'DC', 10), req('504', 'UT', 5)];
    const e = graphFromScrapes(before, after, 5, 0).edges[0];
    expect(e?.codes).toEqual({ '200': 10, '503': 4, '0': 2, '504': 1 });
    expect(e?.flags).toEqual({ UF: 4, DC: 2, UT: 1 });
    // 5xx share counts 503 and 504, not the 0 of a request that got no response.
    expect(e?.errorShare).toBeCloseTo(5 / 17, 10);
  });
});

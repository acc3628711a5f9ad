import { describe, expect, it } from 'vitest';
import { graphFromScrapes, healthOf, legsOf, nodeId, parseNodeId, serviceNodeId } from '../../src/console/graph.js';
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

describe('console graph: service nodes', () => {
  const svc = (reporter: string, target: string, code: string, extra: Record<string, string> = {}): Record<string, string> =>
    edge(reporter, { destination_workload: target, destination_service_name: 'reviews', destination_service_namespace: 'bookinfo', response_code: code, ...extra });

  it('draws caller → service → workload legs, the caller leg summing every workload behind the service', () => {
    const before = [
      s('istio_requests_total', svc('source', 'reviews-v1', '200'), 0),
      s('istio_requests_total', svc('source', 'reviews-v2', '200'), 0),
      s('istio_requests_total', svc('source', 'reviews-v2', '500'), 0),
    ];
    const after = [
      s('istio_requests_total', svc('source', 'reviews-v1', '200'), 50),
      s('istio_requests_total', svc('source', 'reviews-v2', '200'), 40),
      s('istio_requests_total', svc('source', 'reviews-v2', '500'), 10),
      // Quantiles per leg from the buckets of that leg only: v1 fast, v2 slow.
      s('istio_request_duration_milliseconds_bucket', svc('source', 'reviews-v1', '200', { le: '10' }), 50),
      s('istio_request_duration_milliseconds_bucket', svc('source', 'reviews-v1', '200', { le: '1000' }), 50),
      s('istio_request_duration_milliseconds_bucket', svc('source', 'reviews-v1', '200', { le: '+Inf' }), 50),
      s('istio_request_duration_milliseconds_bucket', svc('source', 'reviews-v2', '200', { le: '10' }), 0),
      s('istio_request_duration_milliseconds_bucket', svc('source', 'reviews-v2', '200', { le: '1000' }), 50),
      s('istio_request_duration_milliseconds_bucket', svc('source', 'reviews-v2', '200', { le: '+Inf' }), 50),
      s('istio_requests_total', svc('destination', 'reviews-v2', '200', { connection_security_policy: 'mutual_tls' }), 40, '1'),
    ];
    const g = graphFromScrapes(before, after, 10, 0);
    expect(g.edges.map((e) => e.id)).toEqual([
      'bookinfo/productpage-v1|svc:bookinfo/reviews|http',
      'svc:bookinfo/reviews|bookinfo/reviews-v1|http',
      'svc:bookinfo/reviews|bookinfo/reviews-v2|http',
    ]);
    const [caller, v1, v2] = g.edges;
    expect(caller).toMatchObject({ rps: 10, reporter: 'source', mtls: true });
    expect(caller?.errorShare).toBeCloseTo(0.1, 10);
    expect(v1).toMatchObject({ rps: 5, errorShare: 0, health: 'ok', mtls: false, p50: 5 });
    expect(v2).toMatchObject({ rps: 5, health: 'bad', mtls: true });
    expect(v2?.errorShare).toBeCloseTo(0.2, 10);
    expect(v2?.p50).toBeGreaterThan(10);
    // The caller leg's median is over both workloads' buckets: between the two.
    expect(caller?.p50).toBe(10);
    expect(g.nodes.find((n) => n.id === 'svc:bookinfo/reviews')).toMatchObject({ kind: 'service', name: 'reviews', namespace: 'bookinfo' });
    expect(g.nodes.find((n) => n.id === 'bookinfo/reviews-v2')).toMatchObject({ kind: 'workload', name: 'reviews-v2', inboundRps: 4 });
  });

  it('keeps a direct caller → workload edge when the service is unknown, and ends at the service when the workload is', () => {
    const after = [
      s('istio_requests_total', edge('source', { destination_service_name: 'unknown', response_code: '200' }), 5),
      s('istio_requests_total', edge('source', { destination_workload: 'unknown', destination_workload_namespace: 'unknown', destination_service_name: 'httpbin.org', destination_service_namespace: 'unknown', response_code: '200' }), 5),
    ];
    const ids = graphFromScrapes([], after, 1, 0).edges.map((e) => e.id);
    expect(ids).toEqual(['bookinfo/productpage-v1|bookinfo/reviews-v2|http', 'bookinfo/productpage-v1|svc:unknown/httpbin.org|http']);
  });

  it('parses every node id it makes', () => {
    expect(parseNodeId(serviceNodeId('bookinfo', 'reviews'))).toEqual({ kind: 'service', namespace: 'bookinfo', name: 'reviews' });
    expect(parseNodeId(nodeId('bookinfo', 'reviews'))).toEqual({ kind: 'workload', namespace: 'bookinfo', name: 'reviews' });
    expect(legsOf({})).toEqual([['unknown/unknown', 'unknown/unknown']]);
  });
});

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo } from '../../src/demo/demo.js';
import type { Demo } from '../../src/demo/demo.js';
import { createFaultSchedule } from '../../src/demo/apps.js';
import { parseExposition } from '../../src/stats/exposition-parser.js';
import type { Sample } from '../../src/stats/exposition-parser.js';
import { parse } from 'yaml';

describe('createFaultSchedule()', () => {
  it.each([[0.2, 100, 20], [0.25, 8, 2], [0, 50, 0], [1, 7, 7], [1 / 3, 9, 3]])('fails exactly a %d share (%d requests → %d failures)', (rate, n, failures) => {
    const fail = createFaultSchedule(rate);
    expect(Array.from({ length: n }, fail).filter(Boolean)).toHaveLength(failures);
  });
});

describe('startDemo()', () => {
  let demo: Demo;
  const N = 30;
  let samples: Sample[] = [];
  const sum = (pred: (s: Sample) => boolean) => samples.filter(pred).reduce((a, s) => a + s.value, 0);

  beforeAll(async () => {
    demo = await startDemo({ rate: 0, failRate: 0.5, delayMs: 0, reportingIntervalMs: 200 });
    for (let i = 0; i < N; i++) {
      const res = await request(demo.gatewayUrl);
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    }
    // TCP bytes are reported every 200 ms; give one interval.
    await new Promise((r) => setTimeout(r, 400));
    const bodies = await Promise.all(demo.metricsUrls.map(async (u) => (await fetch(u)).text()));
    samples = bodies.flatMap((b) => parseExposition(b));
  }, 60_000);
  afterAll(() => demo?.close());

  it('counts every request exactly once per reporter on the gateway → productpage edge', () => {
    const edge = (r: string) => sum((s) => s.name === 'istio_requests_total' && s.labels.reporter === r && s.labels.destination_workload === 'productpage-v1');
    expect(edge('source')).toBe(N);
    expect(edge('destination')).toBe(N);
  });

  it('labels the gateway as a router in istio-system and the proxyless productpage with its own identity', () => {
    const s = samples.find((x) => x.name === 'istio_requests_total' && x.labels.reporter === 'destination' && x.labels.destination_workload === 'productpage-v1');
    expect(s?.labels).toMatchObject({
      source_workload: 'istio-ingressgateway',
      source_workload_namespace: 'istio-system',
      destination_service: 'productpage.bookinfo.svc.cluster.local',
      destination_canonical_service: 'productpage',
    });
  });

  it('runs mutual TLS between sidecars and plain text from the proxyless productpage (PERMISSIVE inbound)', () => {
    expect(demo.mtls).toBe(true);
    // Servers' view, per caller → server pair: which connections were mutual TLS.
    const policies = new Map<string, Set<string>>();
    for (const s of samples) {
      if (s.labels.reporter !== 'destination' || !(s.name === 'istio_requests_total' || s.name === 'istio_tcp_connections_opened_total')) continue;
      const k = `${s.labels.source_workload}->${s.labels.destination_workload}`;
      policies.set(k, (policies.get(k) ?? new Set()).add(s.labels.connection_security_policy ?? ''));
    }
    expect(Object.fromEntries([...policies].map(([k, v]) => [k, [...v].join(',')]))).toEqual({
      'istio-ingressgateway->productpage-v1': 'none', // the gateway does not originate mTLS to a pod without a sidecar
      'productpage-v1->details-v1': 'none',
      'productpage-v1->reviews-v1': 'none',
      'productpage-v1->reviews-v2': 'none',
      'productpage-v1->reviews-v3': 'none',
      'reviews-v2->ratings-v1': 'mutual_tls',
      'reviews-v3->ratings-v1': 'mutual_tls',
      'ratings-v1->mongodb-v1': 'mutual_tls',
    });
    // And the principals both reporters agree on come from the certificates.
    const grpc = samples.find((s) => s.name === 'istio_requests_total' && s.labels.reporter === 'source' && s.labels.destination_workload === 'ratings-v1');
    expect(grpc?.labels).toMatchObject({ source_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews', destination_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings' });
  });

  it('spreads reviews round robin and fails exactly the configured share of reviews-v2', () => {
    const at = (w: string, code?: string) =>
      sum((s) => s.name === 'istio_requests_total' && s.labels.reporter === 'destination' && s.labels.destination_workload === w && (code === undefined || s.labels.response_code === code));
    expect([at('reviews-v1'), at('reviews-v2'), at('reviews-v3')]).toEqual([N / 3, N / 3, N / 3]);
    expect(at('reviews-v2', '500')).toBe(N / 3 / 2);
    expect(at('details-v1')).toBe(N);
  });

  it('counts the gRPC calls from reviews-v2/v3 to ratings on both reporters, as grpc', () => {
    const grpc = (r: string) => sum((s) => s.name === 'istio_requests_total' && s.labels.reporter === r && s.labels.destination_workload === 'ratings-v1' && s.labels.request_protocol === 'grpc');
    // v2 answers half its requests with an injected 500 before calling ratings.
    const expected = N / 3 / 2 + N / 3;
    expect(grpc('source')).toBe(expected);
    expect(grpc('destination')).toBe(expected);
    expect(sum((s) => s.name === 'istio_request_messages_total' && s.labels.reporter === 'destination' && s.labels.destination_workload === 'ratings-v1')).toBe(expected);
  });

  it('keeps one TCP connection open to mongodb and counts its bytes both ways', () => {
    const tcp = (name: string, r: string) => sum((s) => s.name === name && s.labels.reporter === r && s.labels.destination_workload === 'mongodb-v1');
    expect(tcp('istio_tcp_connections_opened_total', 'source')).toBe(1);
    expect(tcp('istio_tcp_connections_opened_total', 'destination')).toBe(1);
    expect(tcp('istio_tcp_sent_bytes_total', 'destination')).toBeGreaterThan(0);
    expect(tcp('istio_tcp_received_bytes_total', 'source')).toBeGreaterThan(0);
  });

  it('merges the details app\'s own metrics into its sidecar\'s endpoint', () => {
    expect(sum((s) => s.name === 'bookinfo_details_lookups_total')).toBe(N);
  });

  it('gives a Prometheus config scraping every merged endpoint with namespace and pod labels', () => {
    const config = parse(demo.prometheusConfig) as { scrape_configs: { static_configs: { targets: string[]; labels: Record<string, string> }[] }[] };
    const targets = config.scrape_configs.flatMap((j) => j.static_configs);
    expect(targets.map((t) => `http://${t.targets[0]}/stats/prometheus`).sort()).toEqual([...demo.metricsUrls].sort());
    expect(targets.every((t) => t.labels.namespace && t.labels.pod)).toBe(true);
  });

  it('rejects bad options with MESHTEL_ERR_INVALID_CONFIG before starting anything', async () => {
    await expect(startDemo({ failRate: 2 })).rejects.toMatchObject({ code: 'MESHTEL_ERR_INVALID_CONFIG' });
  });
});

/**
 * The recorder: exact counts, histograms, TCP and gRPC reporting, cardinality guard, expiry,
 * exemplars, prom-client integration and the never-throw contract.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { createIstioStats, type IstioStats, type IstioStatsOptions } from '../../src/stats/istio-stats.js';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import { HTTP_LABELS } from '../../src/stats/definitions.js';
import { ResponseFlag, type HttpStreamAttributes } from '../../src/stats/types.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { CATALOG, WEBAPP, inboundFromGateway, outboundToCatalog, peer, samples } from './fixtures.js';

let stats: IstioStats | undefined;
afterEach(() => {
  stats?.close();
  stats = undefined;
});

function make(o: Partial<IstioStatsOptions> = {}): IstioStats {
  stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, ...o });
  return stats;
}
const text = (s: IstioStats): Promise<string> => renderMetricsToString(s, 'text');
const value = (t: string, name: string, match: Record<string, string> = {}): number =>
  samples(t, name)
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + Number(s.value), 0);

describe('IstioStats', () => {
  describe('.recordHttp()', () => {
    it('counts exactly per reporter and label set (N recorded = N)', async () => {
      const s = make();
      const peers = [CATALOG, peer({ ...CATALOG, workload: 'catalog-v2' }), peer({ ...CATALOG, workload: 'catalog-v3' })];
      const expected = new Map<string, number>();
      for (let i = 0; i < 10_000; i++) {
        const p = peers[i % 3];
        const code = i % 7 === 0 ? 503 : 200;
        const reporter = i % 2 === 0 ? outboundToCatalog({ peer: p ?? null, responseCode: code }) : inboundFromGateway({ responseCode: code });
        s.recordHttp(reporter);
        const key = `${reporter.reporter}|${reporter.reporter === 'source' ? p?.workload : 'gw'}|${code}`;
        expected.set(key, (expected.get(key) ?? 0) + 1);
      }
      const t = await text(s);
      const got = new Map<string, number>();
      for (const x of samples(t, 'istio_requests_total')) {
        const key = `${x.labels.reporter}|${x.labels.reporter === 'source' ? x.labels.destination_workload : 'gw'}|${x.labels.response_code}`;
        got.set(key, Number(x.value));
      }
      expect(got).toEqual(expected);
      expect(value(t, 'istio_request_duration_milliseconds_count')).toBe(10_000);
      expect(value(t, 'istio_request_bytes_count')).toBe(10_000);
    });

    it('maps equal peers held in different objects to the same series', async () => {
      const s = make();
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG }) }));
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG }) }));
      expect(samples(await text(s), 'istio_requests_total').map((x) => x.value)).toEqual(['2']);
    });

    it('records whole milliseconds (truncated) and wire bytes into Envoy default buckets', async () => {
      const s = make();
      s.recordHttp(inboundFromGateway({ durationMs: 12.9, requestBytes: 800, responseBytes: 1500 }));
      s.recordHttp(inboundFromGateway({ durationMs: 0.4, requestBytes: 0, responseBytes: 4_000_000 }));
      const t = await text(s);
      const buckets = samples(t, 'istio_request_duration_milliseconds_bucket').map((x) => [x.labels.le, x.value]);
      expect(buckets[0]).toEqual(['0.5', '1']); // 0.4 ms → 0
      expect(buckets.find((b) => b[0] === '10')).toEqual(['10', '1']);
      expect(buckets.find((b) => b[0] === '25')).toEqual(['25', '2']);
      expect(buckets.at(-1)).toEqual(['+Inf', '2']);
      expect(buckets).toHaveLength(20);
      expect(value(t, 'istio_request_duration_milliseconds_sum')).toBe(12);
      expect(value(t, 'istio_response_bytes_sum')).toBe(4_001_500);
      const resp = samples(t, 'istio_response_bytes_bucket');
      expect(resp.find((b) => b.labels.le === '3600000')?.value).toBe('1');
      expect(resp.find((b) => b.labels.le === '+Inf')?.value).toBe('2');
    });

    it('uses per-metric bucket overrides', async () => {
      const s = make({ buckets: { istio_request_duration_milliseconds: [1, 10] } });
      s.recordHttp(inboundFromGateway({ durationMs: 5 }));
      const les = samples(await text(s), 'istio_request_duration_milliseconds_bucket').map((x) => `${x.labels.le}=${x.value}`);
      expect(les).toEqual(['1=0', '10=1', '+Inf=1']);
    });

    it('labels grpc streams with request_protocol=grpc and the inferred status', async () => {
      const s = make();
      s.recordHttp(inboundFromGateway({ protocol: 'grpc', responseCode: 503 }));
      s.recordHttp(inboundFromGateway({ protocol: 'grpc', responseCode: 200, grpcStatus: '0' }));
      s.recordHttp(inboundFromGateway({ responseCode: 0, responseFlags: ResponseFlag.DC | ResponseFlag.UH }));
      const got = samples(await text(s), 'istio_requests_total').map((x) => [x.labels.request_protocol, x.labels.response_code, x.labels.grpc_response_status, x.labels.response_flags]);
      expect(got).toEqual([
        ['grpc', '503', '14', '-'],
        ['grpc', '200', '0', '-'],
        ['http', '0', '', 'UH,DC'],
      ]);
    });

    it.each([
      [false, 'httpbin.org:8080', 'httpbin.org:8080'],
      [true, 'unknown', 'unknown'],
    ])('with disableHostHeaderFallback=%s reports an unregistered outbound host as %s', async (disable, svc, name) => {
      const s = make({ disableHostHeaderFallback: disable });
      s.recordHttp(outboundToCatalog({ peer: null, peerPrincipal: '', service: null, authority: 'httpbin.org:8080' }));
      s.recordHttp(outboundToCatalog({ peer: null, peerPrincipal: '', service: null, authority: 'httpbin.org:8080' }));
      const got = samples(await text(s), 'istio_requests_total');
      expect(got.map((x) => [x.labels.destination_service, x.labels.destination_service_name, x.value])).toEqual([[svc, name, '2']]);
    });

    it('never uses the Host header inbound, even with the fallback enabled', async () => {
      const s = make();
      s.recordHttp(inboundFromGateway({ service: null, authority: 'webapp:9080' }));
      expect(samples(await text(s), 'istio_requests_total')[0]?.labels.destination_service).toBe('webapp');
    });

    it('reads omitted peer, service and principals (plain JS callers) as absent', async () => {
      const s = make();
      s.recordHttp({ reporter: 'destination', authority: 'x', protocol: 'http', responseCode: 200, responseFlags: 0, durationMs: 1, requestBytes: 1, responseBytes: 1 } as unknown as HttpStreamAttributes);
      const t = await text(s);
      expect(value(t, 'meshtel_stats_errors_total')).toBe(0);
      expect(samples(t, 'istio_requests_total')[0]?.labels).toMatchObject({ source_workload: 'unknown', source_principal: 'unknown', connection_security_policy: 'none', destination_service: 'webapp' });
    });

    it('never throws on bad input and counts the failure', async () => {
      const s = make();
      expect(() => s.recordHttp(null as unknown as HttpStreamAttributes)).not.toThrow();
      expect(() => s.recordHttp({} as HttpStreamAttributes)).not.toThrow();
      s.recordHttp(inboundFromGateway({ durationMs: NaN, requestBytes: -5 }));
      const t = await text(s);
      expect(value(t, 'meshtel_stats_errors_total')).toBe(2);
      expect(value(t, 'istio_request_duration_milliseconds_sum')).toBe(0);
      expect(value(t, 'istio_requests_total')).toBe(1);
    });

    it('ignores recordings after close()', async () => {
      const s = make();
      s.close();
      s.recordHttp(inboundFromGateway());
      expect(samples(await text(s), 'istio_requests_total')).toHaveLength(0);
    });
  });

  describe('reporter=waypoint', () => {
    it('keeps separate series per upstream peer behind the same downstream peer', async () => {
      const s = make();
      const up1 = peer({ ...CATALOG, workload: 'catalog-v1', identity: 'spiffe://cluster.local/ns/istioinaction/sa/catalog' });
      const up2 = peer({ ...CATALOG, workload: 'catalog-v2', identity: 'spiffe://cluster.local/ns/istioinaction/sa/catalog' });
      for (const up of [up1, up2, up1]) s.recordHttp(inboundFromGateway({ reporter: 'waypoint', upstreamPeer: up }));
      const got = samples(await text(s), 'istio_requests_total').map((x) => `${x.labels.reporter}:${x.labels.source_workload}->${x.labels.destination_workload}=${x.value}`);
      expect(got).toEqual(['waypoint:istio-ingressgateway->catalog-v1=2', 'waypoint:istio-ingressgateway->catalog-v2=1']);
    });
  });

  describe('.recordGrpcMessages()', () => {
    it('adds message deltas under the 20 peer labels only (istio/proxy server_request_messages.yaml)', async () => {
      const s = make();
      const a = inboundFromGateway({ protocol: 'grpc' });
      s.recordGrpcMessages(a, 3, 1);
      s.recordGrpcMessages(a, 2, 0);
      s.recordGrpcMessages(a, -1, NaN);
      const t = await text(s);
      const req = samples(t, 'istio_request_messages_total');
      expect(req.map((x) => x.value)).toEqual(['5']);
      expect(Object.keys(req[0]?.labels ?? {})).toEqual(HTTP_LABELS.slice(0, 20));
      expect(value(t, 'istio_response_messages_total')).toBe(1);
    });
  });

  describe('.openTcp()', () => {
    it('counts opened at open, byte deltas on flush and at close, closed once', async () => {
      const s = make();
      const c = s.openTcp(inboundFromGateway());
      c.addReceived(100);
      c.addSent(40);
      c.flush();
      c.addReceived(1);
      c.close();
      c.close();
      c.addReceived(1000);
      c.flush();
      const t = await text(s);
      expect(value(t, 'istio_tcp_connections_opened_total')).toBe(1);
      expect(value(t, 'istio_tcp_connections_closed_total')).toBe(1);
      expect(value(t, 'istio_tcp_received_bytes_total')).toBe(101);
      expect(value(t, 'istio_tcp_sent_bytes_total')).toBe(40);
    });

    it('keeps byte totals exact across many connections, interleaved flushes and timer reports', async () => {
      const s = make({ tcpReportingIntervalMs: 5 });
      const conns = Array.from({ length: 100 }, (_, i) => s.openTcp(i % 2 === 0 ? inboundFromGateway() : outboundToCatalog()));
      let rx = 0;
      let tx = 0;
      for (let round = 0; round < 20; round++) {
        conns.forEach((c, i) => {
          const n = (i * 7 + round * 13) % 97;
          c.addReceived(n);
          c.addSent(n + 1);
          rx += n;
          tx += n + 1;
          if ((i + round) % 5 === 0) c.flush();
        });
        await new Promise((r) => setTimeout(r, 2));
      }
      conns.forEach((c) => c.close());
      const t = await text(s);
      expect(value(t, 'istio_tcp_received_bytes_total')).toBe(rx);
      expect(value(t, 'istio_tcp_sent_bytes_total')).toBe(tx);
      expect(value(t, 'istio_tcp_connections_opened_total')).toBe(100);
      expect(value(t, 'istio_tcp_connections_closed_total')).toBe(100);
      expect(samples(t, 'istio_tcp_connections_opened_total').map((x) => x.labels.reporter).sort()).toEqual(['destination', 'source']);
    });

    it('labels the close and the last deltas with the flags given to close()', async () => {
      const s = make();
      const c = s.openTcp(outboundToCatalog());
      c.addSent(7);
      c.close(ResponseFlag.UF);
      const t = await text(s);
      expect(samples(t, 'istio_tcp_connections_closed_total').map((x) => x.labels.response_flags)).toEqual(['UF']);
      expect(samples(t, 'istio_tcp_connections_opened_total').map((x) => x.labels.response_flags)).toEqual(['-']);
      expect(samples(t, 'istio_tcp_sent_bytes_total').map((x) => `${x.labels.response_flags}=${x.value}`)).toEqual(['UF=7']);
    });

    it('reports deltas periodically on its own timer (tcpReportingIntervalMs)', async () => {
      const s = make({ tcpReportingIntervalMs: 20 });
      const c = s.openTcp(inboundFromGateway());
      c.addReceived(10);
      await new Promise((r) => setTimeout(r, 80));
      expect(value(await text(s), 'istio_tcp_received_bytes_total')).toBe(10);
      c.close();
    });

    it('closes open connections on close()', async () => {
      const s = make();
      const c = s.openTcp(inboundFromGateway());
      c.addSent(3);
      s.close();
      const t = await text(s);
      expect(value(t, 'istio_tcp_connections_closed_total')).toBe(1);
      expect(value(t, 'istio_tcp_sent_bytes_total')).toBe(3);
    });
  });

  describe('.recordPeerUnknown()', () => {
    it('counts meshtel_peer_unknown_total by reason and reporter', async () => {
      const s = make();
      s.recordPeerUnknown('no_header', 'destination');
      s.recordPeerUnknown('no_header', 'destination');
      s.recordPeerUnknown('bad_base64', 'source');
      const got = samples(await text(s), 'meshtel_peer_unknown_total').map((x) => `${x.labels.reason}/${x.labels.reporter}=${x.value}`);
      expect(got).toEqual(['no_header/destination=2', 'bad_base64/source=1']);
    });
  });

  describe('cardinality guard', () => {
    it('routes label sets beyond maxSeriesPerMetric to one overflow series and counts them', async () => {
      const s = make({ maxSeriesPerMetric: 2 });
      for (let i = 0; i < 5; i++) s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `w${i}` }) }));
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'w0' }) }));
      const t = await text(s);
      const lines = samples(t, 'istio_requests_total');
      expect(lines.map((x) => x.labels.destination_workload ?? `overflow:${x.labels.meshtel_overflow}`)).toEqual(['w0', 'w1', 'overflow:true']);
      expect(lines.map((x) => x.value)).toEqual(['2', '1', '3']);
      expect(value(t, 'meshtel_series_overflow_total', { metric: 'istio_requests_total' })).toBe(3);
      expect(value(t, 'istio_requests_total')).toBe(6);
    });

    it('replaces values outside a label allow-list with "overflow" and counts them', async () => {
      const s = make({ labelAllowList: { destination_workload: ['catalog'] } });
      s.recordHttp(outboundToCatalog());
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'random-1' }) }));
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'random-2' }) }));
      const t = await text(s);
      expect(samples(t, 'istio_requests_total').map((x) => `${x.labels.destination_workload}=${x.value}`)).toEqual(['catalog=1', 'overflow=2']);
      expect(value(t, 'meshtel_label_value_rejected_total', { label: 'destination_workload' })).toBeGreaterThanOrEqual(2);
    });

    it.each([
      [{ maxSeriesPerMetric: 0 }, 'MESHTEL_ERR_INVALID_CONFIG'],
      [{ seriesTtlMs: -1 }, 'MESHTEL_ERR_INVALID_CONFIG'],
      [{ buckets: { istio_request_bytes: [5, 1] } }, 'MESHTEL_ERR_INVALID_BUCKETS'],
      [{ buckets: { istio_requests_total: [1] } }, 'MESHTEL_ERR_INVALID_BUCKETS'],
      [{ labelAllowList: { reporter: 'source' } }, 'MESHTEL_ERR_INVALID_CONFIG'],
      [{ local: undefined }, 'MESHTEL_ERR_INVALID_CONFIG'],
    ] as const)('rejects options %j with %s', (o, code) => {
      try {
        make(o as unknown as Partial<IstioStatsOptions>);
        expect.unreachable();
      } catch (e) {
        expect(isMeshtelError(e, code)).toBe(true);
      }
    });
  });

  describe('series TTL', () => {
    it('removes series untouched for seriesTtlMs from memory and exposition, keeps active ones', async () => {
      let now = 0;
      const s = make({ seriesTtlMs: 1000, now: () => now });
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'idle' }) }));
      for (let t = 0; t <= 2000; t += 250) {
        now = t;
        s.recordHttp(outboundToCatalog());
        s.sweep();
      }
      const t = await text(s);
      expect(samples(t, 'istio_requests_total').map((x) => `${x.labels.destination_workload}=${x.value}`)).toEqual(['catalog=9']);
      expect(value(t, 'meshtel_series_expired_total', { metric: 'istio_requests_total' })).toBe(1);
      expect(value(t, 'meshtel_series_active', { metric: 'istio_requests_total' })).toBe(1);
    });

    it('keeps a series touched within the TTL', () => {
      let now = 0;
      const s = make({ seriesTtlMs: 1000, now: () => now });
      s.recordHttp(outboundToCatalog());
      now = 900;
      expect(s.sweep()).toBe(0);
      s.recordHttp(outboundToCatalog());
      now = 1800;
      expect(s.sweep()).toBe(0);
    });

    it('stays exact with interleaved async recording while expiry runs', async () => {
      let now = 0;
      const s = make({ seriesTtlMs: 50, now: () => now });
      const workers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 500; i++) {
          s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `w${w % 4}` }) }));
          if (i % 50 === 0) await new Promise((r) => setImmediate(r));
        }
      });
      let done = false;
      let sweeps = 0;
      const sweeper = (async () => {
        while (!done) {
          now += 10; // every series is touched each round, never 50 ms idle: nothing may expire
          s.sweep();
          sweeps++;
          await new Promise((r) => setImmediate(r));
        }
      })();
      await Promise.all(workers);
      done = true;
      await sweeper;
      expect(sweeps).toBeGreaterThan(5);
      const t = await text(s);
      expect(value(t, 'istio_requests_total')).toBe(4000);
      expect(samples(t, 'istio_requests_total').map((x) => x.value)).toEqual(['1000', '1000', '1000', '1000']);
      // Now let everything expire, then record again: counting restarts from zero, exactly.
      now += 1000;
      s.sweep();
      now += 1000;
      s.sweep();
      s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'w0' }) }));
      expect(samples(await text(s), 'istio_requests_total').map((x) => x.value)).toEqual(['1']);
    });
  });

  describe('exemplars', () => {
    it('attaches the trace id to istio_requests_total and the duration bucket in OpenMetrics only', async () => {
      const s = make({ now: () => 1_700_000_000_000 });
      s.recordHttp(inboundFromGateway({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', durationMs: 7 }));
      const om = await renderMetricsToString(s, 'openmetrics');
      expect(om).toMatch(/^istio_requests_total\{.*\} 1 # \{trace_id="4bf92f3577b34da6a3ce929d0e0e4736"\} 1 1700000000\.000$/m);
      expect(om).toMatch(/^istio_request_duration_milliseconds_bucket\{.*le="10"\} 1 # \{trace_id="4bf92f3577b34da6a3ce929d0e0e4736"\} 7 1700000000\.000$/m);
      expect(om).not.toMatch(/istio_request_bytes_bucket.*trace_id/);
      expect(await text(s)).not.toContain('trace_id');
    });
  });

  describe('.registry', () => {
    it('exposes the istio metrics through prom-client registry.metrics() next to the app metrics', async () => {
      const registry = new Registry();
      const app = new Counter({ name: 'app_jobs_total', help: 'jobs', registers: [registry] });
      app.inc(2);
      const s = make({ registry });
      s.recordHttp(inboundFromGateway());
      s.recordHttp(inboundFromGateway());
      const out = await registry.metrics();
      expect(out).toContain('app_jobs_total 2');
      expect(samples(out, 'istio_requests_total').map((x) => x.value)).toEqual(['2']);
      expect(samples(out, 'istio_request_duration_milliseconds_bucket')).toHaveLength(20);
      expect(out).toContain('istio_build{component="proxy",tag="1.17.8"} 1');
      const json = await registry.getMetricsAsJSON();
      expect(json.find((m) => m.name === 'istio_requests_total')?.values[0]?.labels).toMatchObject({ reporter: 'destination', destination_version: '' });
      // The streaming renderer appends the app's metrics after meshtel's.
      expect(await text(s)).toContain('app_jobs_total 2');
    });

    it('renders counters in an OpenMetrics registry with the family name without _total', async () => {
      // prom-client's typings omit the constructor argument; the JS accepts the content type.
      const registry = new (Registry as unknown as new (contentType: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE);
      const s = make({ registry });
      s.recordHttp(inboundFromGateway());
      s.recordHttp(inboundFromGateway({ traceId: '0af7651916cd43dd8448eb211c80319c', durationMs: 3 }));
      const out = await registry.metrics();
      expect(out).toContain('# TYPE istio_requests counter');
      expect(out).toMatch(/^istio_requests_total\{.*\} 2 # \{trace_id="0af7651916cd43dd8448eb211c80319c"\} 1 \d+/m);
      expect(out).toMatch(/^istio_request_duration_milliseconds_bucket\{.*le="5"\} 1 # \{trace_id="0af7651916cd43dd8448eb211c80319c"\} 3 /m);
      expect(samples(out, 'istio_requests_total')).toHaveLength(1);
    });

    it('drops the istio series on registry.resetMetrics() and counts again from zero', async () => {
      const registry = new Registry();
      const s = make({ registry });
      s.recordHttp(inboundFromGateway());
      registry.resetMetrics();
      expect(samples(await registry.metrics(), 'istio_requests_total')).toHaveLength(0);
      s.recordHttp(inboundFromGateway());
      expect(samples(await registry.metrics(), 'istio_requests_total').map((x) => x.value)).toEqual(['1']);
    });

    it('refuses to register twice in the same registry (MESHTEL_ERR_METRIC_CONFLICT)', () => {
      const registry = new Registry();
      make({ registry });
      try {
        createIstioStats({ local: WEBAPP, registry });
        expect.unreachable();
      } catch (e) {
        expect(isMeshtelError(e, 'MESHTEL_ERR_METRIC_CONFLICT')).toBe(true);
      }
    });
  });
});

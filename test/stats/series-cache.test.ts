/**
 * Series identity under Telemetry tag overrides (issue 12.3). The recorder finds a request's series by numeric keys:
 * the standard labels' key, then each overridden value interned to a small integer. Whatever the cache does, a
 * series is one full label set: requests that differ only in an overridden value are two series, requests with the
 * same values one, and every count is exact — also across value-table resets, expiry and mixed-case header keys.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import { createIstioStats, type IstioStats, type IstioStatsOptions } from '../../src/stats/istio-stats.js';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import { WEBAPP, inboundFromGateway, outboundToCatalog, samples } from './fixtures.js';

function tags(t: Record<string, string>, match = ''): ReturnType<typeof parseTelemetry> {
  const tagOverrides = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { value: v }]));
  const override = match === '' ? { tagOverrides } : { match: { metric: match }, tagOverrides };
  return parseTelemetry({ spec: { metrics: [{ providers: [{ name: 'prometheus' }], overrides: [override] }] } });
}

const THREE = tags({ user: "request.headers['x-user']", tenant: "request.headers['x-tenant']", method: 'request.method' });

let stats: IstioStats | undefined;
afterEach(() => stats?.close());

function make(o: Partial<IstioStatsOptions>): IstioStats {
  stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, ...o });
  return stats;
}

/** `istio_requests_total` as `label values → count`, for the labels named. */
async function requests(s: IstioStats, labels: readonly string[], metric = 'istio_requests_total'): Promise<Record<string, string>> {
  const text = await renderMetricsToString(s, 'text');
  return Object.fromEntries(samples(text, metric).map((x) => [labels.map((l) => x.labels[l] ?? '-').join('/'), x.value]));
}

const req = (user: string, tenant = 'acme', method = 'GET', over = {}): ReturnType<typeof inboundFromGateway> =>
  inboundFromGateway({ method, requestHeaders: { 'x-user': user, 'x-tenant': tenant, accept: '*/*' }, ...over });

describe('series identity with tag overrides', () => {
  it('makes two series of requests that differ only in one overridden header, one of requests that do not', async () => {
    const s = make({ telemetry: THREE });
    for (let i = 0; i < 3; i++) s.recordHttp(req('alice'));
    s.recordHttp(req('bob'));
    s.recordHttp(req('alice', 'initech'));
    s.recordHttp(req('alice', 'acme', 'POST'));
    s.recordHttp(req('alice'));
    expect(await requests(s, ['user', 'tenant', 'method'])).toEqual({
      'alice/acme/GET': '4',
      'bob/acme/GET': '1',
      'alice/initech/GET': '1',
      'alice/acme/POST': '1',
    });
    // The histograms share the label sets and the counts.
    expect(await requests(s, ['user', 'tenant', 'method'], 'istio_request_duration_milliseconds_count')).toEqual({
      'alice/acme/GET': '4',
      'bob/acme/GET': '1',
      'alice/initech/GET': '1',
      'alice/acme/POST': '1',
    });
  });

  it('keeps overridden values apart from the standard labels: same user, other code or reporter is another series', async () => {
    const s = make({ telemetry: THREE });
    s.recordHttp(req('alice'));
    s.recordHttp(req('alice', 'acme', 'GET', { responseCode: 503 }));
    s.recordHttp(outboundToCatalog({ method: 'GET', requestHeaders: { 'x-user': 'alice', 'x-tenant': 'acme' } }));
    s.recordHttp(req('alice'));
    expect(await requests(s, ['reporter', 'response_code', 'user'])).toEqual({
      'destination/200/alice': '2',
      'destination/503/alice': '1',
      'source/200/alice': '1',
    });
  });

  it('reads a header by its lower-cased name whatever the key spelling, as Envoy header maps are', async () => {
    const s = make({ telemetry: THREE });
    s.recordHttp(inboundFromGateway({ method: 'GET', requestHeaders: { 'x-user': 'alice', 'x-tenant': 'acme' } }));
    s.recordHttp(inboundFromGateway({ method: 'GET', requestHeaders: { 'X-User': 'alice', 'X-Tenant': 'acme' } }));
    s.recordHttp(inboundFromGateway({ method: 'GET', requestHeaders: { 'x-user': ['alice', 'eve'], 'x-tenant': 'acme' } }));
    s.recordHttp(inboundFromGateway({ requestHeaders: {} }));
    expect(await requests(s, ['user', 'tenant', 'method'])).toEqual({
      'alice/acme/GET': '2',
      'alice,eve/acme/GET': '1',
      'unknown/unknown/unknown': '1',
    });
  });

  it('stays exact past the per-tag value table (4,096 values): ids handed out again never reach an old series', async () => {
    // Budgets far above the defaults: this is about identity, not admission.
    const s = make({ telemetry: tags({ user: "request.headers['x-user']" }), maxExpositionBytes: 2 ** 40, maxPlainTextExpositionBytes: 2 ** 38 });
    const ten = (p: string): string[] => Array.from({ length: 10 }, (_, i) => `${p}${i}`);
    // u0..u9 get the first ids under code 200; 4,086 other values (code 404) fill the table, so w0 starts it over:
    // w0..w9 get u0..u9's ids again, under code 200 where u0..u9's groups were filed.
    for (const u of ten('u')) s.recordHttp(req(u));
    for (let i = 0; i < 4086; i++) s.recordHttp(req(`v${i}`, 'acme', 'GET', { responseCode: 404 }));
    for (const w of ten('w')) s.recordHttp(req(w));
    for (const u of ten('u')) s.recordHttp(req(u));
    const got = await requests(s, ['response_code', 'user']);
    expect(Object.keys(got)).toHaveLength(4106);
    for (const u of ten('u')) expect(got[`200/${u}`]).toBe('2');
    for (const w of ten('w')) expect(got[`200/${w}`]).toBe('1');
    expect(Object.entries(got).filter(([k, v]) => k.startsWith('404/') && v === '1')).toHaveLength(4086);
  });

  it('re-resolves expired series: a value seen again after expiry counts from 1 in a new series', async () => {
    let now = 0;
    const s = make({ telemetry: THREE, seriesTtlMs: 1000, now: () => now });
    s.recordHttp(req('alice'));
    s.recordHttp(req('bob'));
    now = 5000;
    s.sweep();
    now = 10_000;
    expect(s.sweep()).toBeGreaterThan(0);
    expect(await requests(s, ['user'])).toEqual({});
    s.recordHttp(req('alice'));
    s.recordHttp(req('alice'));
    expect(await requests(s, ['user'])).toEqual({ alice: '2' });
  });

  it('applies the overrides to gRPC message counts and TCP connections with the same identity rules', async () => {
    const s = make({ telemetry: tags({ user: "request.headers['x-user']", peer_ip: 'source.address' }) });
    s.recordGrpcMessages(req('alice', 'acme', 'POST', { protocol: 'grpc' }), 2, 1);
    s.recordGrpcMessages(req('alice', 'acme', 'POST', { protocol: 'grpc' }), 3, 1);
    s.recordGrpcMessages(req('bob', 'acme', 'POST', { protocol: 'grpc' }), 1, 1);
    expect(await requests(s, ['user'], 'istio_request_messages_total')).toEqual({ alice: '5', bob: '1' });
    // TCP has no request: the header tag is unknown, the address tag tells connections apart.
    for (const ip of ['10.0.0.1', '10.0.0.1', '10.0.0.2']) {
      const c = s.openTcp({ ...inboundFromGateway(), remoteAddress: ip });
      c.addReceived(10);
      c.close(ip === '10.0.0.2' ? 0x40 : 0);
    }
    expect(await requests(s, ['user', 'peer_ip'], 'istio_tcp_connections_opened_total')).toEqual({ 'unknown/10.0.0.1': '2', 'unknown/10.0.0.2': '1' });
    expect(await requests(s, ['peer_ip', 'response_flags'], 'istio_tcp_received_bytes_total')).toEqual({ '10.0.0.1/-': '20', '10.0.0.2/UC': '10' });
  });

  it('evaluates an expression with no direct read (a ternary) per request too', async () => {
    const s = make({ telemetry: tags({ tier: "request.headers['x-user'] == 'alice' ? 'gold' : 'basic'" }) });
    s.recordHttp(req('alice'));
    s.recordHttp(req('bob'));
    s.recordHttp(req('carol'));
    expect(await requests(s, ['tier'])).toEqual({ gold: '1', basic: '2' });
  });
});

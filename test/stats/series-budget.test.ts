/**
 * What a peer can cost the exposition (issue 11.1): the label value length cap, the page byte budget
 * and the plain-text share, against a flood of spoofed plain-text peers, with the legitimate mTLS and
 * local series still exact.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIstioStats, type IstioStats, type IstioStatsOptions } from '../../src/stats/istio-stats.js';
import { renderMetrics, renderMetricsToString } from '../../src/stats/exposition.js';
import { decodeProtobufPage, encodeProtobufFamilies } from '../../src/stats/exposition-protobuf.js';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import {
  DEFAULT_MAX_EXPOSITION_BYTES,
  DEFAULT_MAX_LABEL_VALUE_LENGTH,
  DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES,
  protobufSeriesBound,
  protobufSeriesBytes,
  truncateLabelValue,
} from '../../src/stats/series-budget.js';
import type { HttpStreamAttributes } from '../../src/stats/types.js';
import { escapeLabelValue } from '../../src/stats/series.js';
import { isMeshtelError } from '../../src/core/errors.js';
import type { PeerMetadata } from '../../src/metadata/types.js';
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

const value = (t: string, name: string, match: Record<string, string> = {}): number =>
  samples(t, name)
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + Number(s.value), 0);

/** A spoofed plain-text caller: every name field `len` characters long, distinct per `i`. */
function spoofed(i: number, len: number): PeerMetadata {
  const name = `${i}-`.padEnd(len, 'x');
  return peer({ name, namespace: name, cluster: name, workload: name, canonicalService: name, canonicalRevision: name, app: name, version: name });
}

/** An inbound request of a spoofed peer over plain text (no principal on either side). */
function spoofedRequest(p: PeerMetadata): HttpStreamAttributes {
  return inboundFromGateway({ peer: p, peerPrincipal: '', localPrincipal: '' });
}

/** Bytes of the lines of the istio_* families (the budgeted part of the page). */
function istioBytes(page: string): number {
  let n = 0;
  for (const line of page.split('\n')) if (line.startsWith('istio_') && !line.startsWith('istio_build')) n += Buffer.byteLength(line) + 1;
  return n;
}

describe('truncateLabelValue()', () => {
  it('keeps values within the cap unchanged', () => {
    expect(truncateLabelValue('reviews-v1', 600)).toBe('reviews-v1');
    expect(truncateLabelValue('x'.repeat(600), 600)).toBe('x'.repeat(600));
  });

  it('cuts deterministically to the cap and keeps values that share a prefix apart', () => {
    const a = truncateLabelValue(`${'x'.repeat(700)}a`, 600);
    const b = truncateLabelValue(`${'x'.repeat(700)}b`, 600);
    expect(a).toHaveLength(600);
    expect(a).toBe(truncateLabelValue(`${'x'.repeat(700)}a`, 600));
    expect(a).not.toBe(b);
    expect(a.slice(0, 591)).toBe('x'.repeat(591));
    expect(a).toMatch(/~[0-9a-f]{8}$/);
  });

  it('never splits a surrogate pair', () => {
    const v = `${'x'.repeat(590)}😀${'y'.repeat(100)}`; // the emoji straddles the cut at 591
    const cut = truncateLabelValue(v, 600);
    expect(cut.length).toBeLessThanOrEqual(600);
    expect(Buffer.from(cut, 'utf8').toString('utf8')).toBe(cut); // no lone surrogate (would become U+FFFD)
  });
});

describe('IstioStats exposition budget', () => {
  it('fits every real Kubernetes/Istio value under the default length cap', () => {
    // spiffe://<trust domain 253>/ns/<namespace 63>/sa/<service account 253>
    const principal = `spiffe://${'t'.repeat(253)}/ns/${'n'.repeat(63)}/sa/${'s'.repeat(253)}`;
    expect(principal.length).toBeLessThanOrEqual(DEFAULT_MAX_LABEL_VALUE_LENGTH);
    expect(DEFAULT_MAX_EXPOSITION_BYTES).toBe(64 * 2 ** 20);
  });

  it('keeps a flood of 20,000 spoofed plain-text peers with 1,000-character names under budget; mTLS and local series stay exact', async () => {
    const s = make();
    const N = 20_000;
    let legitIn = 0;
    let legitOut = 0;
    for (let i = 0; i < N; i++) {
      s.recordHttp(spoofedRequest(spoofed(i, 1000)));
      if (i % 10 === 0) {
        // mTLS-verified inbound caller and the local app's outbound calls keep flowing.
        s.recordHttp(inboundFromGateway());
        legitIn++;
        s.recordHttp(outboundToCatalog());
        legitOut++;
      }
    }
    // New verified peers arriving after the flood still get their own series.
    const late = peer({ ...CATALOG, workload: 'catalog-v2' });
    s.recordHttp(outboundToCatalog({ peer: late }));
    s.recordHttp(inboundFromGateway({ peer: peer({ ...CATALOG, workload: 'late-caller' }), peerPrincipal: 'spiffe://cluster.local/ns/istioinaction/sa/late' }));

    const page = await renderMetricsToString(s, 'text');
    expect(Buffer.byteLength(page)).toBeLessThan(DEFAULT_MAX_EXPOSITION_BYTES);
    expect(istioBytes(page)).toBeLessThanOrEqual(value(page, 'meshtel_series_budget_used_bytes', { budget: 'exposition' }));
    expect(value(page, 'meshtel_series_budget_used_bytes', { budget: 'plain_text' })).toBeLessThanOrEqual(DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES);

    const requests = samples(page, 'istio_requests_total');
    const gw = requests.filter((x) => x.labels.source_workload === 'istio-ingressgateway');
    expect(gw.map((x) => [x.labels.connection_security_policy, x.value])).toEqual([['mutual_tls', String(legitIn)]]);
    const out = requests.filter((x) => x.labels.reporter === 'source' && x.labels.destination_workload === 'catalog');
    expect(out.map((x) => x.value)).toEqual([String(legitOut)]);
    expect(requests.filter((x) => x.labels.destination_workload === 'catalog-v2').map((x) => x.value)).toEqual(['1']);
    expect(requests.filter((x) => x.labels.source_workload === 'late-caller').map((x) => x.value)).toEqual(['1']);

    // Every spoofed request is still counted: in its own series or in the overflow series.
    const spoofedSeries = requests.filter((x) => x.labels.source_workload?.endsWith('x') === true || x.labels.source_workload?.includes('~') === true);
    const overflow = requests.filter((x) => x.labels.meshtel_overflow === 'true');
    expect(spoofedSeries.length).toBeGreaterThan(0);
    expect(spoofedSeries.length + Number(overflow[0]?.value ?? 0)).toBe(N);
    // Values cut at 600 code units, once per peer (not per request), counted per label.
    for (const x of spoofedSeries) expect(x.labels.source_workload).toHaveLength(DEFAULT_MAX_LABEL_VALUE_LENGTH);
    expect(value(page, 'meshtel_label_value_truncated_total', { label: 'source_workload' })).toBe(N);
    expect(value(page, 'meshtel_label_value_truncated_total', { label: 'source_app' })).toBe(N);
    // Every refused series is counted against the plain-text share: 4 series per label set.
    const plainSeries = ['istio_requests_total', 'istio_request_duration_milliseconds_count', 'istio_request_bytes_count', 'istio_response_bytes_count']
      .map((m) => samples(page, m).filter((x) => x.labels.source_workload?.includes('~') === true).length)
      .reduce((a, b) => a + b, 0);
    expect(plainSeries + value(page, 'meshtel_series_budget_refused_total', { budget: 'plain_text' })).toBe(4 * N);
    expect(value(page, 'meshtel_series_budget_refused_total', { budget: 'exposition' })).toBe(0);
  }, 120_000);

  it('bounds the page as a whole: past maxExpositionBytes new label sets go to the overflow series', async () => {
    const budget = 1 << 20;
    const s = make({ maxExpositionBytes: budget });
    const N = 2000;
    for (let i = 0; i < N; i++) s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `catalog-${i}` }), traceId: 'a'.repeat(32) }));
    // OpenMetrics with an exemplar on every line is the longest form the budget counts.
    const page = await renderMetricsToString(s, 'openmetrics');
    const used = value(page, 'meshtel_series_budget_used_bytes', { budget: 'exposition' });
    expect(used).toBeLessThanOrEqual(budget);
    const istio = page.split('\n').filter((l) => l.startsWith('istio_') && !l.startsWith('istio_build') && !l.includes('meshtel_overflow'));
    expect(istio.reduce((a, l) => a + Buffer.byteLength(l) + 1, 0)).toBeLessThanOrEqual(used);
    expect(value(page, 'meshtel_series_budget_refused_total', { budget: 'exposition' })).toBeGreaterThan(0);
    const text = await renderMetricsToString(s, 'text');
    const kept = samples(text, 'istio_requests_total').filter((x) => x.labels.destination_workload !== undefined).length;
    expect(kept).toBeGreaterThan(10);
    expect(kept).toBeLessThan(N);
    expect(value(text, 'istio_requests_total')).toBe(N);
  });

  it('bounds the protobuf page too: label sets whose native buckets spread as wide as they go stay under maxExpositionBytes', async () => {
    const budget = 1 << 20;
    // With a high maxBuckets a native series outgrows its text form (which has no native buckets): charging
    // only the text form let this page grow to twice the budget.
    const s = make({ maxExpositionBytes: budget, nativeHistograms: { schema: 8, maxBuckets: 6000 } });
    const N = 20;
    const R = 6000;
    for (let i = 0; i < N; i++) {
      const p = peer({ ...CATALOG, workload: `w${i}` });
      // Values 2^(4/256) apart: keys 4 apart at schema 8, so every populated bucket is its own span.
      for (let j = 0; j < R; j++) {
        const v = Math.round(2 ** (10 + (4 * j + 2) / 256));
        s.recordHttp(outboundToCatalog({ peer: p, traceId: 'f'.repeat(32), durationMs: v, requestBytes: v, responseBytes: v }));
      }
    }
    const parts: Buffer[] = [];
    for await (const c of renderMetrics(s, 'protobuf')) parts.push(c);
    const page = decodeProtobufPage(Buffer.concat(parts));
    if (!page.ok) throw new Error(page.reason);
    // The budgeted part: the istio_* families' metrics (the family headers, like # HELP/# TYPE lines, are not charged).
    let istio = 0;
    page.families.forEach((f, i) => {
      if (!f.name.startsWith('istio_') || f.name === 'istio_build') return;
      const header = encodeProtobufFamilies([{ name: f.name, ...(f.help ? { help: f.help } : {}), type: f.type, metric: [] }]).length;
      const overflow = f.metric.filter((m) => m.label.some((l) => l.name === 'meshtel_overflow'));
      const overflowBytes = overflow.length === 0 ? 0 : encodeProtobufFamilies([{ name: f.name, type: f.type, metric: overflow }]).length - encodeProtobufFamilies([{ name: f.name, type: f.type, metric: [] }]).length;
      istio += (page.raw[i] as Buffer).length - header - overflowBytes;
    });
    const text = await renderMetricsToString(s, 'text');
    const used = value(text, 'meshtel_series_budget_used_bytes', { budget: 'exposition' });
    expect(used).toBeLessThanOrEqual(budget);
    // At least one label set with its wide native buckets was admitted and written.
    expect(istio).toBeGreaterThan(budget / 10);
    expect(istio).toBeLessThanOrEqual(used);
    expect(value(text, 'meshtel_series_budget_refused_total', { budget: 'exposition' })).toBeGreaterThan(0);
    // Every request still counted.
    expect(value(text, 'istio_requests_total')).toBe(N * R);
  }, 60_000);

  it('charges a series the longer of its text and protobuf forms', async () => {
    const { protobufSeriesBytes, seriesCostShape } = await import('../../src/stats/series-budget.js');
    const { NativeHistogramConfig } = await import('../../src/stats/native-histogram.js');
    const labels = 'a="1",b="2"';
    const text = (sh: { fixed: number; repeats: number }): number => sh.fixed + sh.repeats * Buffer.byteLength(labels);
    // Classic histogram with short labels: text repeats them on 23 lines and is longer.
    expect(text(seriesCostShape('h', 'histogram', [1, 2, 5]))).toBeGreaterThan(protobufSeriesBytes('histogram', 3, labels, undefined));
    // With native buckets, protobuf is longer: up to maxBuckets spans and deltas.
    const native = new NativeHistogramConfig({ maxBuckets: 1000 });
    expect(protobufSeriesBytes('histogram', 3, labels, native)).toBeGreaterThan(text(seriesCostShape('h', 'histogram', [1, 2, 5])));
    expect(protobufSeriesBytes('histogram', 3, labels, native) - protobufSeriesBytes('histogram', 3, labels, undefined)).toBeGreaterThanOrEqual(1000 * 20);
  });

  it('gives the budget back when series expire, so new label sets are admitted again', async () => {
    let now = 0;
    const s = make({ maxExpositionBytes: 1 << 16, seriesTtlMs: 1000, now: () => now });
    for (let i = 0; i < 50; i++) s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `old-${i}` }) }));
    const before = await renderMetricsToString(s, 'text');
    expect(value(before, 'meshtel_series_budget_refused_total', { budget: 'exposition' })).toBeGreaterThan(0);
    now = 1000;
    s.sweep();
    now = 2500;
    s.sweep();
    expect(value(await renderMetricsToString(s, 'text'), 'meshtel_series_budget_used_bytes', { budget: 'exposition' })).toBe(0);
    s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'new-0' }) }));
    const after = samples(await renderMetricsToString(s, 'text'), 'istio_requests_total');
    expect(after.map((x) => x.labels.destination_workload)).toEqual(['new-0']);
  });

  it('caps plain-text label sets per metric (maxPlainTextSeriesPerMetric) without touching verified ones', async () => {
    const s = make({ maxPlainTextSeriesPerMetric: 3 });
    for (let i = 0; i < 10; i++) s.recordHttp(spoofedRequest(spoofed(i, 20)));
    for (let i = 0; i < 10; i++) s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `catalog-${i}` }) }));
    const page = await renderMetricsToString(s, 'text');
    const req = samples(page, 'istio_requests_total');
    expect(req.filter((x) => x.labels.reporter === 'destination')).toHaveLength(3);
    expect(req.filter((x) => x.labels.reporter === 'source')).toHaveLength(10);
    expect(value(page, 'meshtel_series_budget_refused_total', { budget: 'plain_text' })).toBe(4 * 7);
  });

  it('cuts Telemetry tag values a plain-text caller chose and charges them to the plain-text share', async () => {
    const telemetry = parseTelemetry({
      apiVersion: 'telemetry.istio.io/v1',
      kind: 'Telemetry',
      metadata: { name: 't', namespace: 'istio-system' },
      spec: { metrics: [{ overrides: [{ tagOverrides: { user: { value: "request.headers['x-user']" } } }] }] },
    });
    const s = make({ telemetry, maxPlainTextSeriesPerMetric: 2 });
    for (let i = 0; i < 5; i++) {
      s.recordHttp(inboundFromGateway({ peer: null, peerPrincipal: '', localPrincipal: '', requestHeaders: { 'x-user': `${i}`.padEnd(5000, 'u') } }));
    }
    const page = await renderMetricsToString(s, 'text');
    const users = samples(page, 'istio_requests_total').filter((x) => x.labels.user !== undefined);
    expect(users).toHaveLength(2);
    for (const u of users) expect(u.labels.user).toHaveLength(DEFAULT_MAX_LABEL_VALUE_LENGTH);
    expect(value(page, 'meshtel_label_value_truncated_total', { label: 'user' })).toBe(5);
  });

  it.each([
    ['maxLabelValueLength', { maxLabelValueLength: 3 }],
    ['maxExpositionBytes', { maxExpositionBytes: -1 }],
    ['maxExpositionBytes', { maxExpositionBytes: Number.NaN }],
    ['maxPlainTextExpositionBytes', { maxExpositionBytes: 1 << 20, maxPlainTextExpositionBytes: 2 << 20 }],
    ['maxPlainTextSeriesPerMetric', { maxSeriesPerMetric: 10, maxPlainTextSeriesPerMetric: 11 }],
  ] as const)('refuses a bad %s with MESHTEL_ERR_INVALID_CONFIG naming it', (field, o) => {
    let err: unknown;
    try {
      make(o);
    } catch (e) {
      err = e;
    }
    expect(isMeshtelError(err) && err.code).toBe('MESHTEL_ERR_INVALID_CONFIG');
    expect((err as { details?: { field?: string } }).details?.field).toBe(field);
  });
});

describe('protobufSeriesBytes()', () => {
  /** The protobuf LabelPair bytes of a parsed label set, written out the slow, obvious way. */
  const varint = (n: number): number => (n < 128 ? 1 : n < 16384 ? 2 : 3);
  const reference = (labels: Record<string, string>): number =>
    Object.entries(labels).reduce((sum, [k, v]) => {
      const n = Buffer.byteLength(k);
      const b = Buffer.byteLength(v);
      const pair = 1 + varint(n) + n + 1 + varint(b) + b;
      return sum + 1 + varint(pair) + pair;
    }, 0);
  const render = (labels: Record<string, string>): string => Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',');

  it.each<{ what: string; labels: Record<string, string> }>([
    { what: 'Istio-like ASCII values', labels: { reporter: 'source', source_workload: 'productpage-v1', response_code: '200' } },
    { what: 'escapes (backslash, quote, newline)', labels: { a: 'x\\y', b: 'say "hi"', c: 'line\nbreak', d: '\\n' } },
    { what: 'two-, three- and four-byte UTF-8', labels: { a: 'é', b: '€uro', c: '😀 x', d: '' } },
    { what: 'a 600-character value', labels: { source_workload: 'w'.repeat(600), x: 'y' } },
  ])('measures the label pairs of $what exactly, and the bound is never below', ({ labels }) => {
    const text = render(labels);
    const counterValue = protobufSeriesBytes('counter', 0, '', undefined);
    expect(protobufSeriesBytes('counter', 0, text, undefined) - counterValue).toBe(reference(labels));
    for (const type of ['counter', 'gauge', 'histogram'] as const) {
      expect(protobufSeriesBound(type, 19, Buffer.byteLength(text), undefined)).toBeGreaterThanOrEqual(protobufSeriesBytes(type, 19, text, undefined));
    }
  });
});

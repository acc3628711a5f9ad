import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { createIstioStats, type IstioStats, type IstioStatsOptions } from '../../src/stats/istio-stats.js';
import { createMetricsResponse, renderMetrics, renderMetricsToString } from '../../src/stats/exposition.js';
import { decodeProtobufPage, labelPairsOf, parsedToProtobuf, protobufToParsed } from '../../src/stats/exposition-protobuf.js';
import { METRIC_TYPE, type PbMetricFamily } from '../../src/stats/client-model.js';
import { PROTOBUF_CONTENT_TYPE } from '../../src/stats/media-types.js';
import { parseExpositionFamilies } from '../../src/stats/exposition-parser.js';
import { DEFAULT_BUCKETS } from '../../src/stats/definitions.js';
import { CATALOG, WEBAPP, inboundFromGateway, outboundToCatalog, peer, samples } from './fixtures.js';

let stats: IstioStats | undefined;
afterEach(() => {
  stats?.close();
  stats = undefined;
});

/**
 * The recorder state behind test/fixtures/exposition/golden*.txt. Those files were rendered by meshtel before the
 * protobuf exposition existed (main at aea60ff, same steps; the meshtel_series_budget_* families of issue 11.1
 * appended at the end): text and OpenMetrics must stay byte-identical.
 */
function goldenStats(extra: Partial<IstioStatsOptions> = {}): IstioStats {
  const registry = new Registry();
  new Counter({ name: 'app_hits_total', help: 'App hits.', labelNames: ['path'], registers: [registry] }).inc({ path: '/a"b' }, 3);
  new Histogram({ name: 'app_seconds', help: 'App latency.', buckets: [0.1, 1], registers: [registry] }).observe(0.5);
  let t = 1_700_000_000_000;
  const s = createIstioStats({ local: WEBAPP, registry, tcpReportingIntervalMs: 0, now: () => (t += 1), ...extra });
  s.recordHttp(inboundFromGateway({ traceId: '0af7651916cd43dd8448eb211c80319c' }));
  s.recordHttp(inboundFromGateway({ responseCode: 503, responseFlags: 0, durationMs: 1234.5, requestBytes: 0 }));
  s.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'a\\b"c\nd' }), traceId: 'abc', durationMs: 70000 }));
  for (let i = 0; i < 5; i++) s.recordHttp(outboundToCatalog({ protocol: 'grpc', grpcStatus: String(i), durationMs: i * 7.3, responseBytes: 1 << (i * 4) }));
  const tcp = s.openTcp({
    reporter: 'destination',
    peer: CATALOG,
    peerPrincipal: 'spiffe://x',
    localPrincipal: 'spiffe://y',
    service: { host: 'webapp.istioinaction.svc.cluster.local', name: 'webapp', namespace: 'istioinaction' },
  } as never);
  tcp.addReceived(10);
  tcp.addSent(20);
  tcp.close();
  return s;
}

const golden = (name: string): string => readFileSync(new URL(`../fixtures/exposition/${name}`, import.meta.url), 'utf8');

async function protobufPage(s: IstioStats): Promise<PbMetricFamily[]> {
  const parts: Buffer[] = [];
  for await (const c of renderMetrics(s, 'protobuf')) parts.push(c);
  const page = decodeProtobufPage(Buffer.concat(parts));
  if (!page.ok) throw new Error(`${page.offset}: ${page.reason}`);
  return page.families;
}

const labelsOf = (pairs: readonly { name: string; value: string }[]): Record<string, string> => Object.fromEntries(pairs.map((l) => [l.name, l.value]));

describe('text and OpenMetrics exposition', () => {
  it.each([
    ['classic histograms', {}],
    ['native histograms on (they exist in protobuf only)', { nativeHistograms: true }],
  ])('is byte-identical to the output before the protobuf exposition, with %s', async (_name, extra) => {
    stats = goldenStats(extra);
    expect(await renderMetricsToString(stats, 'text')).toBe(golden('golden.txt'));
    expect(await renderMetricsToString(stats, 'openmetrics')).toBe(golden('golden.openmetrics.txt'));
  });
});

describe('protobuf exposition', () => {
  it('carries every family and series of the text page, with the same label sets and values', async () => {
    stats = goldenStats();
    const families = await protobufPage(stats);
    const text = await renderMetricsToString(stats, 'text');
    const parsed = parseExpositionFamilies(text, 'text');
    if (!parsed.ok) throw new Error(parsed.reason);
    // The same page read back from protobuf, in text, equals the text page minus what text adds (+Inf buckets are implied).
    expect(families.map((f) => f.name)).toEqual(parsed.families.map((f) => f.name));
    const requests = families.find((f) => f.name === 'istio_requests_total');
    expect(requests?.type).toBe(METRIC_TYPE.COUNTER);
    for (const m of requests?.metric ?? []) {
      const line = samples(text, 'istio_requests_total').find((s) => JSON.stringify(s.labels) === JSON.stringify(labelsOf(m.label)));
      expect(line, JSON.stringify(labelsOf(m.label))).toBeDefined();
      expect(m.counter?.value).toBe(Number(line?.value));
    }
    // Label values with \, " and newline survive unescaped.
    expect(requests?.metric.some((m) => labelsOf(m.label).destination_workload === 'a\\b"c\nd')).toBe(true);
    // Back to text through the merged scrape's path: identical samples, HELP and TYPE.
    const again = protobufToParsed(families);
    expect(again.map((f) => [f.name, f.type, f.help, f.samples.length])).toEqual(parsed.families.map((f) => [f.name, f.type, f.help, f.samples.length]));
  });

  it('writes classic buckets cumulative with Envoy bounds, no +Inf bucket unless it holds an exemplar, and exemplars with trace ids', async () => {
    stats = goldenStats();
    const duration = (await protobufPage(stats)).find((f) => f.name === 'istio_request_duration_milliseconds');
    expect(duration?.type).toBe(METRIC_TYPE.HISTOGRAM);
    const traced = duration?.metric.find((m) => m.histogram?.bucket?.some((b) => b.exemplar !== undefined && b.exemplar !== null));
    const h = traced?.histogram;
    expect(h?.sampleCount).toBe(1);
    expect(h?.sampleSum).toBe(12);
    expect(h?.bucket?.map((b) => b.upperBound)).toEqual([...DEFAULT_BUCKETS]);
    expect(h?.bucket?.map((b) => b.cumulativeCount)).toEqual(DEFAULT_BUCKETS.map((b) => (b >= 12 ? 1 : 0)));
    const ex = h?.bucket?.find((b) => b.exemplar)?.exemplar;
    expect(ex?.label).toEqual([{ name: 'trace_id', value: '0af7651916cd43dd8448eb211c80319c' }]);
    expect(ex?.value).toBe(12);
    expect(ex?.timestamp?.seconds).toBe(1_700_000_000);
    expect(h?.bucket?.length).toBe(DEFAULT_BUCKETS.length);
    // Above the last bound: the +Inf bucket is written because its exemplar must go somewhere.
    const beyond = (DEFAULT_BUCKETS.at(-1) as number) * 2;
    stats.recordHttp(outboundToCatalog({ durationMs: beyond, traceId: 'slow' }));
    const after = (await protobufPage(stats)).find((f) => f.name === 'istio_request_duration_milliseconds');
    const slow = after?.metric.find((m) => m.histogram?.bucket?.at(-1)?.exemplar?.label[0]?.value === 'slow')?.histogram;
    expect(slow?.bucket?.at(-1)).toMatchObject({ upperBound: Infinity, cumulativeCount: slow?.sampleCount });
    // Counters carry their exemplar too.
    const requests = (await protobufPage(stats)).find((f) => f.name === 'istio_requests_total');
    expect(requests?.metric.some((m) => m.counter?.exemplar?.label[0]?.value === 'abc')).toBe(true);
  });

  it('has no native buckets unless they are switched on', async () => {
    stats = goldenStats();
    const duration = (await protobufPage(stats)).find((f) => f.name === 'istio_request_duration_milliseconds');
    for (const m of duration?.metric ?? []) {
      expect(m.histogram?.zeroThreshold ?? 0).toBe(0);
      expect(m.histogram?.positiveSpan ?? []).toEqual([]);
    }
  });

  it('appends the prom-client registry metrics converted from their text form', async () => {
    stats = goldenStats();
    const families = await protobufPage(stats);
    const hits = families.find((f) => f.name === 'app_hits_total');
    expect(hits).toMatchObject({ type: METRIC_TYPE.COUNTER, help: 'App hits.' });
    expect(hits?.metric[0]).toMatchObject({ label: [{ name: 'path', value: '/a"b' }], counter: { value: 3 } });
    const app = families.find((f) => f.name === 'app_seconds')?.metric[0]?.histogram;
    expect(app?.bucket?.map((b) => [b.upperBound, b.cumulativeCount])).toEqual([
      [0.1, 0],
      [1, 1],
      [Infinity, 1],
    ]);
  });

  it('is served by createMetricsResponse() when Accept asks for it', async () => {
    stats = goldenStats();
    const r = createMetricsResponse(stats, { accept: 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,text/plain;q=0.5' });
    expect(r.format).toBe('protobuf');
    expect(r.headers['content-type']).toBe(PROTOBUF_CONTENT_TYPE);
    const parts: Buffer[] = [];
    for await (const c of r.body) parts.push(c as Buffer);
    const page = decodeProtobufPage(Buffer.concat(parts));
    expect(page.ok && page.families.some((f) => f.name === 'istio_build')).toBe(true);
  });
});

describe('labelPairsOf()', () => {
  it.each([
    ['', []],
    ['a="x"', [{ name: 'a', value: 'x' }]],
    ['a="x\\"y",b=""', [{ name: 'a', value: 'x"y' }, { name: 'b', value: '' }]],
    ['a="\\\\n\\n",b="c"', [{ name: 'a', value: '\\n\n' }, { name: 'b', value: 'c' }]],
  ])('%j', (labels, pairs) => {
    expect(labelPairsOf(labels)).toEqual(pairs);
  });
});

describe('decodeProtobufPage()', () => {
  const encode = (families: PbMetricFamily[]): Buffer => {
    const parsed = parseExpositionFamilies('# TYPE ok gauge\nok 1\n', 'text');
    if (!parsed.ok) throw new Error('fixture');
    return Buffer.concat([encodeRaw(parsedToProtobuf(parsed.families, 'text')), encodeRaw(families)]);
  };
  it.each([
    ['a bad metric name', [{ name: '1bad', type: METRIC_TYPE.GAUGE, metric: [] }], 'bad metric name'],
    ['an unknown type', [{ name: 'x', type: 9, metric: [] }], 'unknown metric type'],
    ['a bad label name', [{ name: 'x', type: METRIC_TYPE.GAUGE, metric: [{ label: [{ name: 'a-b', value: '' }], gauge: { value: 1 } }] }], 'bad label name'],
    ['a value field the type does not name', [{ name: 'x', type: METRIC_TYPE.COUNTER, metric: [{ label: [], gauge: { value: 1 } }] }], 'has no counter value'],
  ] as const)('refuses %s', (_n, families, reason) => {
    const r = decodeProtobufPage(encode(families as unknown as PbMetricFamily[]));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it('refuses a page cut short and bytes that are not a MetricFamily', () => {
    const whole = encode([{ name: 'x', type: METRIC_TYPE.GAUGE, metric: [{ label: [], gauge: { value: 1 } }] }]);
    const cut = decodeProtobufPage(whole.subarray(0, whole.length - 3));
    expect(cut.ok === false && cut.reason).toContain('cut short');
    const junk = decodeProtobufPage(Buffer.from('# TYPE a gauge\na 1\n'));
    expect(junk.ok).toBe(false);
  });
});

import { encodeProtobufFamilies as encodeRaw } from '../../src/stats/exposition-protobuf.js';

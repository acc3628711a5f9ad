/**
 * The hand-written protobuf writer for the recorder's families (src/stats/protobuf-writer.ts) writes exactly
 * what protobufjs writes from client_model for the same messages, byte for byte, and encodes a series' label
 * pairs once in its life.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import { decodeProtobufPage, encodeProtobufFamilies, labelPairsOf, renderProtobufFamilies } from '../../src/stats/exposition-protobuf.js';
import { METRIC_TYPE, type PbBucket, type PbExemplar, type PbHistogram, type PbMetric, type PbMetricFamily } from '../../src/stats/client-model.js';
import { NativeHistogramConfig, nativeHistogramProto } from '../../src/stats/native-histogram.js';
import { Family, observe, type Exemplar, type HistogramSeries, type ScalarSeries, type Series } from '../../src/stats/series.js';
import { CATALOG, WEBAPP, inboundFromGateway, outboundToCatalog, peer } from './fixtures.js';

let stats: IstioStats | undefined;
afterEach(() => {
  stats?.close();
  stats = undefined;
});

function pbExemplar(e: Exemplar): PbExemplar {
  const seconds = Math.floor(e.timestamp);
  return { label: [{ name: 'trace_id', value: e.traceId }], value: e.value, timestamp: { seconds, nanos: Math.round((e.timestamp - seconds) * 1e9) } };
}

/** The reference: each series as a client_model object, as meshtel built them before the writer existed. */
function referenceMetric(f: Family, s: Series): PbMetric {
  const label = labelPairsOf(s.labels);
  if (f.type === 'histogram') {
    const h = s as HistogramSeries;
    const bucket: PbBucket[] = [];
    let cum = 0;
    for (let i = 0; i < f.buckets.length; i++) {
      cum += h.counts[i] as number;
      const b: PbBucket = { cumulativeCount: cum, upperBound: f.buckets[i] as number };
      const e = h.exemplars?.[i];
      if (e !== undefined) b.exemplar = pbExemplar(e);
      bucket.push(b);
    }
    const inf = h.exemplars?.[f.buckets.length];
    if (inf !== undefined) bucket.push({ cumulativeCount: h.count, upperBound: Infinity, exemplar: pbExemplar(inf) });
    const histogram: PbHistogram = { sampleCount: h.count, sampleSum: h.sum, bucket };
    if (h.native !== undefined) {
      Object.assign(histogram, nativeHistogramProto(h.native));
      if (h.native.exemplars !== undefined) histogram.exemplars = h.native.exemplars.map(pbExemplar);
    }
    return { label, histogram };
  }
  const c = s as ScalarSeries;
  if (f.type === 'counter') return { label, counter: c.exemplar !== undefined ? { value: c.value, exemplar: pbExemplar(c.exemplar) } : { value: c.value } };
  return { label, gauge: { value: c.value } };
}

function reference(families: readonly Family[]): Buffer {
  const out: PbMetricFamily[] = [];
  for (const f of families) {
    const all = [...f.series.values(), ...(f.overflowSeries !== undefined ? [f.overflowSeries] : [])];
    if (all.length === 0) continue;
    const mf: PbMetricFamily = { name: f.name, type: { counter: METRIC_TYPE.COUNTER, gauge: METRIC_TYPE.GAUGE, histogram: METRIC_TYPE.HISTOGRAM }[f.type], metric: all.map((s) => referenceMetric(f, s)) };
    if (f.help !== '') mf.help = f.help;
    out.push(mf);
  }
  return encodeProtobufFamilies(out);
}

async function written(families: readonly Family[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of renderProtobufFamilies(families)) parts.push(c);
  return Buffer.concat(parts);
}

describe('renderProtobufFamilies()', () => {
  it('writes the bytes protobufjs writes for the recorder: counters, gauges, classic and native histograms, exemplars (native ones too), TCP, overflow', async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, nativeHistograms: true, maxSeriesPerMetric: 3 });
    stats.recordHttp(inboundFromGateway({ traceId: '0af7651916cd43dd8448eb211c80319c', durationMs: 0 }));
    stats.recordHttp(inboundFromGateway({ responseCode: 503, durationMs: 1234.5, requestBytes: 0 }));
    // Escapes and non-ASCII in a label value; a spread of durations over many native buckets and spans.
    for (let i = 0; i < 300; i++) stats.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'a\\b"c\nd-ü' }), traceId: i % 20 === 0 ? `t${i}` : undefined, durationMs: (i * 37) % 9000, responseBytes: 2 ** (i % 40) }));
    // Past the series cap: the overflow series.
    for (let i = 0; i < 5; i++) stats.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `w${i}` }) }));
    const tcp = stats.openTcp({ reporter: 'destination', peer: CATALOG, peerPrincipal: 'spiffe://x', localPrincipal: 'spiffe://y', service: { host: 'webapp.istioinaction.svc.cluster.local', name: 'webapp', namespace: 'istioinaction' } } as never);
    tcp.addReceived(10);
    tcp.addSent(2 ** 40);
    tcp.close();
    const families = stats.families();
    expect(families.some((f) => f.overflowSeries !== undefined)).toBe(true);
    expect(families.some((f) => f.type === 'gauge' && f.series.size > 0)).toBe(true);
    // 15 traced durations into one series: its native exemplars are the bounded set of 10.
    const traced = [...(families.find((f) => f.name === 'istio_request_duration_milliseconds')?.series.values() ?? [])].map((s) => (s as HistogramSeries).native?.exemplars?.length ?? 0);
    expect(Math.max(...traced)).toBe(10);
    const got = await written(families);
    expect(got.equals(reference(families))).toBe(true);
    // A second scrape (label bytes cached on the series) writes the same bytes.
    expect((await written(families)).equals(got)).toBe(true);
  });

  it('writes native edge cases as protobufjs does: negative buckets, zero bucket, +Inf, empty with zero threshold 0, counts past 2^32, reduced schema', async () => {
    const fams: Family[] = [];
    for (const [i, cfg] of [{ zeroThreshold: 0 }, { schema: 8, maxBuckets: 3 }, { schema: -4 }, {}].entries()) {
      const f = new Family(`h${i}`, 'histogram', i === 0 ? '' : 'help with "quotes" and ünïcode', 10, [0.5, 1, 1e9]);
      f.native = new NativeHistogramConfig(cfg);
      f.get('', 0); // no observation
      const s = f.get(`k="v${i}"`, 0) as HistogramSeries;
      for (const v of [0, -3, -0.25, 1e-300, 0.75, 7, 1e12, Infinity, -Infinity, NaN, 2 ** 40, 8191.5]) observe(s, f, v);
      s.exemplars = [undefined, { traceId: 'x'.repeat(32), value: 0.75, timestamp: 1_700_000_000.123 }, undefined, { traceId: 'inf', value: 1e12, timestamp: 1 }];
      const big = f.get('big="1"', 0) as HistogramSeries;
      observe(big, f, 3);
      big.counts[1] = 2 ** 45;
      big.count = 2 ** 45 + 1;
      if (big.native) big.native.zeroCount = 2 ** 33;
      fams.push(f);
    }
    const counter = new Family('c_total', 'counter', 'c', 10);
    (counter.get('a="1"', 0) as ScalarSeries).value = 2 ** 60;
    const withExemplar = counter.get('a="2"', 0) as ScalarSeries;
    withExemplar.value = 1;
    withExemplar.exemplar = { traceId: 'abc', value: 1, timestamp: 12.5 };
    fams.push(counter);
    expect((await written(fams)).equals(reference(fams))).toBe(true);
  });

  it('writes native exemplars as Histogram field 16, which the page decoder reads back; a classic-only series has none', async () => {
    const f = new Family('h', 'histogram', 'h', 10, [1, 10]);
    f.native = new NativeHistogramConfig({ maxExemplars: 3 });
    const s = f.get('k="v"', 0) as HistogramSeries;
    const plain = new Family('p', 'histogram', 'p', 10, [1, 10]);
    const p = plain.get('k="v"', 0) as HistogramSeries;
    for (const [i, v] of [0.5, 7, 300, 2, 9000].entries()) {
      for (const [fam, series] of [[f, s], [plain, p]] as const) {
        const slot = observe(series, fam, v);
        const e = { traceId: `${i}`.repeat(32), value: v, timestamp: 1_700_000_000 + i * 0.25 };
        series.exemplars ??= new Array<undefined>(series.counts.length);
        series.exemplars[slot] = e;
        series.native?.addExemplar(e);
      }
    }
    const page = await written([f, plain]);
    expect(page.equals(reference([f, plain]))).toBe(true);
    const decoded = decodeProtobufPage(page);
    if (!decoded.ok) throw new Error(decoded.reason);
    const [h, c] = decoded.families.map((x) => x.metric[0]?.histogram);
    expect(h?.exemplars?.map((e) => e.value)).toEqual((s.native?.exemplars ?? []).map((e) => e.value));
    expect(h?.exemplars).toHaveLength(3);
    expect(h?.exemplars?.[0]).toEqual(pbExemplar(s.native?.exemplars?.[0] as Exemplar));
    // Prometheus 2.42 reads a native histogram's exemplars from its buckets: those are still there.
    expect(h?.bucket?.filter((b) => b.exemplar !== undefined && b.exemplar !== null)).toHaveLength(3);
    expect(c?.exemplars ?? []).toEqual([]);
  });

  it("encodes a series' label pairs once in its life, shared by the counter and the histograms of its label set", async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    stats.recordHttp(outboundToCatalog());
    const group = stats.families().filter((f) => f.name.startsWith('istio_') && f.name !== 'istio_build').flatMap((f) => [...f.series.values()]);
    expect(group).toHaveLength(4);
    expect(group.every((s) => s.pbLabels === undefined)).toBe(true);
    await written(stats.families());
    const first = group[0]?.pbLabels;
    expect(first).toBeInstanceOf(Uint8Array);
    expect(group.every((s) => s.pbLabels === first)).toBe(true);
    await written(stats.families());
    expect(group.every((s) => s.pbLabels === first)).toBe(true);
  });
});

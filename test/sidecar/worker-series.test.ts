/**
 * The structured protocol of `--concurrency N` (src/sidecar/worker-series.ts): a worker's snapshot carries numbers,
 * and each label string only the first time its series appears; the primary adds the workers' series up exactly,
 * takes one process's facts (build, start time) once, and forgets series a worker no longer has.
 */
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import type { HistogramSeries, ScalarSeries} from '../../src/stats/series.js';
import { Family, observe } from '../../src/stats/series.js';
import { createSeriesMerger, createSeriesPublisher } from '../../src/sidecar/worker-series.js';
import type { MergedSeries } from '../../src/sidecar/worker-series.js';
import { flatStats } from '../../src/sidecar/agent-endpoints.js';
import { NativeHistogramConfig, readNativeHistogram } from '../../src/stats/native-histogram.js';
import { renderProtobufFamilies } from '../../src/stats/exposition-protobuf.js';

/** One worker's recorder: a counter, a histogram and istio_build. */
function recorder() {
  const requests = new Family('istio_requests_total', 'counter', 'Requests.', 100);
  const duration = new Family('istio_request_duration_milliseconds', 'histogram', 'Duration.', 100, [1, 10, 100]);
  const build = new Family('istio_build', 'gauge', 'Build.', 1);
  (build.get('component="proxy",tag="1.29.0"', 0) as ScalarSeries).value = 1;
  const registry = new Registry();
  const refused = new Counter({ name: 'meshtel_refused_total', help: 'Refused.', registers: [registry] });
  const families = [requests, duration, build];
  return {
    families,
    registry,
    refused,
    request(code: string, ms: number): void {
      (requests.get(`code="${code}"`, 0) as ScalarSeries).value += 1;
      observe(duration.get(`code="${code}"`, 0) as HistogramSeries, duration, ms);
    },
    publish: createSeriesPublisher(() => families, registry),
  };
}

const render = (merged: MergedSeries): Promise<string> => renderMetricsToString({ families: () => merged.families, registry: merged.registry }, 'text');

describe('createSeriesPublisher()', () => {
  it('sends a label string and a family head once, then numbers only', async () => {
    const w = recorder();
    w.request('200', 5);
    const first = await w.publish();
    expect(first.families.map((f) => f.name)).toEqual(['istio_requests_total', 'istio_request_duration_milliseconds', 'istio_build']);
    expect(first.series.map((s) => s.labels)).toEqual(['code="200"', 'code="200"', 'component="proxy",tag="1.29.0"']);
    w.request('200', 50);
    const second = await w.publish();
    expect(second.families).toEqual([]);
    expect(second.series).toEqual([]);
    // id + value, id + sum + count + 4 buckets, id + value.
    expect(second.values).toHaveLength(2 + 7 + 2);
    expect(Array.from(second.values.subarray(0, 2))).toEqual([first.series[0]!.id, 2]);
    expect(second.metrics.map((m) => m.name)).toEqual(['meshtel_refused_total']);
    w.request('503', 1);
    expect((await w.publish()).series.map((s) => s.labels)).toEqual(['code="503"', 'code="503"']);
  });
});

describe('createSeriesMerger()', () => {
  it('adds up counters, histogram buckets, sums and counts over workers; the build gauge stays 1', async () => {
    const a = recorder();
    const b = recorder();
    for (let i = 0; i < 3; i++) a.request('200', 5);
    for (let i = 0; i < 4; i++) b.request('200', 500);
    b.request('503', 1);
    a.refused.inc(2);
    b.refused.inc(5);
    const merger = createSeriesMerger();
    merger.apply(1, await a.publish());
    merger.apply(2, await b.publish());
    const text = await render(merger.merge(new Registry()));
    expect(text).toContain('istio_requests_total{code="200"} 7\n');
    expect(text).toContain('istio_requests_total{code="503"} 1\n');
    expect(text).toContain('istio_request_duration_milliseconds_bucket{code="200",le="10"} 3\n');
    expect(text).toContain('istio_request_duration_milliseconds_bucket{code="200",le="+Inf"} 7\n');
    expect(text).toContain('istio_request_duration_milliseconds_sum{code="200"} 2015\n');
    expect(text).toContain('istio_request_duration_milliseconds_count{code="200"} 7\n');
    expect(text).toContain('istio_build{component="proxy",tag="1.29.0"} 1\n');
    expect(text).toContain('meshtel_refused_total 7\n');
    expect(text.match(/^# TYPE istio_requests_total /gm)).toHaveLength(1);
  });

  it('merges later snapshots that carry ids only, and each merge counts from the latest snapshots (no double counting)', async () => {
    const a = recorder();
    const merger = createSeriesMerger();
    a.request('200', 5);
    merger.apply(1, await a.publish());
    a.request('200', 5);
    merger.apply(1, await a.publish());
    expect(await render(merger.merge(new Registry()))).toContain('istio_requests_total{code="200"} 2\n');
    expect(await render(merger.merge(new Registry()))).toContain('istio_requests_total{code="200"} 2\n');
  });

  it('forgets a series the worker no longer has, and a worker that exited', async () => {
    const a = recorder();
    const b = recorder();
    const merger = createSeriesMerger();
    a.request('404', 5);
    b.request('200', 5);
    merger.apply(1, await a.publish());
    merger.apply(2, await b.publish());
    // The TTL sweep dropped the series.
    a.families[0]!.series.clear();
    a.families[1]!.series.clear();
    merger.apply(1, await a.publish());
    let text = await render(merger.merge(new Registry()));
    expect(text).not.toContain('code="404"');
    merger.drop(2);
    text = await render(merger.merge(new Registry()));
    expect(text).not.toContain('istio_requests_total{code="200"}');
  });

  it('refuses values of a series never announced', async () => {
    const merger = createSeriesMerger();
    expect(() => merger.apply(1, { families: [], series: [], values: Float64Array.of(7, 1), exemplars: [], metrics: [] })).toThrow(/unannounced series 7/);
  });

  it('shows the merged families in the admin /stats flat form', async () => {
    const a = recorder();
    const b = recorder();
    a.request('200', 5);
    b.request('200', 5);
    const merger = createSeriesMerger();
    merger.apply(1, await a.publish());
    merger.apply(2, await b.publish());
    const flat = await flatStats(merger.merge(new Registry()).registry as Registry);
    expect(flat).toContain('istiocustom.istio_requests_total.code.200: 2\n');
    expect(flat).toContain('meshtel_refused_total: 0\n');
  });
});

describe('native buckets and exemplars across workers', () => {
  /** A recorder with native buckets that records as the stats stage does (exemplars included). */
  function nativeRecorder(o: { maxBuckets: number; maxExemplars?: number }) {
    const requests = new Family('istio_requests_total', 'counter', 'Requests.', 100);
    const duration = new Family('istio_request_duration_milliseconds', 'histogram', 'Duration.', 100, [1, 10, 100, 1000]);
    duration.native = new NativeHistogramConfig({ schema: 3, ...o });
    const families = [requests, duration];
    return {
      families,
      request(code: string, ms: number, t: number, traceId?: string): void {
        const c = requests.get(`code="${code}"`, 0) as ScalarSeries;
        c.value += 1;
        const h = duration.get(`code="${code}"`, 0) as HistogramSeries;
        const slot = observe(h, duration, ms);
        if (traceId === undefined) return;
        c.exemplar = { traceId, value: 1, timestamp: t };
        const e = { traceId, value: ms, timestamp: t };
        h.exemplars ??= new Array<undefined>(h.counts.length);
        h.exemplars[slot] = e;
        h.native?.addExemplar(e);
      },
      publish: createSeriesPublisher(() => families, new Registry()),
    };
  }

  const bytes = async (families: readonly Family[]): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for await (const c of renderProtobufFamilies(families)) parts.push(c);
    return Buffer.concat(parts);
  };

  it('N observations over 2 workers give the native buckets one process holds (resolution reductions included), and the same protobuf page', async () => {
    const one = nativeRecorder({ maxBuckets: 12 });
    const a = nativeRecorder({ maxBuckets: 12 });
    const b = nativeRecorder({ maxBuckets: 12 });
    const N = 600;
    for (let i = 0; i < N; i++) {
      // Whole ms, fractions, zeros and large values; worker b's share reaches further out than a's. Fractions are
      // dyadic, so the sums do not depend on the order they are added in (the bytes of _sum then match too).
      const ms = i % 7 === 0 ? 0 : i % 2 === 0 ? (i * 37) % 900 : 1.5 * 2 ** (i % 37) + (i % 5) * 0.25;
      const code = i % 3 === 0 ? '503' : '200';
      const traceId = i % 80 === 0 ? `trace${i}`.padEnd(32, '0') : undefined;
      one.request(code, ms, 1_700_000_000 + i, traceId);
      (i % 2 === 0 ? a : b).request(code, ms, 1_700_000_000 + i, traceId);
    }
    const merger = createSeriesMerger();
    merger.apply(1, await a.publish());
    merger.apply(2, await b.publish());
    const merged = merger.merge(new Registry());
    const series = (fams: readonly Family[]): HistogramSeries[] => [...(fams[1]?.series.values() ?? [])] as HistogramSeries[];
    const want = series(one.families);
    const got = series(merged.families);
    expect(got.map((s) => s.labels)).toEqual(want.map((s) => s.labels));
    // The workers reduced differently from each other and from the single process: the merge still agrees.
    expect(want.every((s) => (s.native?.reductions ?? 0) > 0)).toBe(true);
    expect(series(a.families).map((s) => s.native?.schema)).not.toEqual(series(b.families).map((s) => s.native?.schema));
    for (const [i, s] of got.entries()) {
      const w = want[i] as HistogramSeries;
      expect(readNativeHistogram(s)).toEqual(readNativeHistogram(w));
      expect(s.native?.populated).toBe(w.native?.populated);
      expect(Array.from(s.counts)).toEqual(Array.from(w.counts));
      expect(s.native?.exemplars).toEqual(w.native?.exemplars);
    }
    expect((await bytes(merged.families)).equals(await bytes(one.families))).toBe(true);
    // A second merge of the same snapshots is the same page (nothing added twice).
    expect((await bytes(merger.merge(new Registry()).families)).equals(await bytes(one.families))).toBe(true);
  });

  it('sends an exemplar only when it changed, and keeps a bounded native set over the workers', async () => {
    const a = nativeRecorder({ maxBuckets: 160, maxExemplars: 3 });
    const b = nativeRecorder({ maxBuckets: 160, maxExemplars: 3 });
    for (let i = 0; i < 10; i++) (i % 2 === 0 ? a : b).request('200', 1 + i * 10, 100 + i, `t${i}`.padEnd(32, '0'));
    const first = await a.publish();
    // The counter's, one per classic bucket that got one, the native set.
    // Worker a's durations 1, 21, 41, 61, 81 fall in the buckets le=1 (slot 0) and le=100 (slot 2).
    expect(first.exemplars.map((u) => u.slot).sort((x, y) => x - y)).toEqual([-2, -1, 0, 2]);
    expect(first.exemplars.find((u) => u.slot === -2)?.exemplars).toHaveLength(3);
    expect((await a.publish()).exemplars).toEqual([]);
    const merger = createSeriesMerger();
    merger.apply(1, first);
    merger.apply(2, await b.publish());
    const h = [...(merger.merge(new Registry()).families[1]?.series.values() ?? [])][0] as HistogramSeries;
    expect(h.native?.exemplars).toHaveLength(3);
    const candidates = new Set([...(a.families[1]?.series.values() ?? []), ...(b.families[1]?.series.values() ?? [])].flatMap((s) => (s as HistogramSeries).native?.exemplars ?? []).map((e) => e.traceId));
    expect(h.native?.exemplars?.every((e) => candidates.has(e.traceId))).toBe(true);
    // Per classic bucket and on the counter: the most recent over the workers.
    expect(h.exemplars?.[2]?.traceId).toBe('t9'.padEnd(32, '0'));
    expect(h.exemplars?.[0]?.traceId).toBe('t0'.padEnd(32, '0'));
    const c = [...(merger.merge(new Registry()).families[0]?.series.values() ?? [])][0] as ScalarSeries;
    expect(c.exemplar?.traceId).toBe('t9'.padEnd(32, '0'));
  });
});

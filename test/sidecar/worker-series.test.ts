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
    expect(() => merger.apply(1, { families: [], series: [], values: Float64Array.of(7, 1), metrics: [] })).toThrow(/unannounced series 7/);
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

/**
 * Cost of native histograms and the protobuf exposition, each against the classic/text baseline in the same run
 * (issue 14):
 * 1. One observation into a histogram series with native buckets against one without (goal: < 1.5x), and a
 *    whole recordHttp (counter + 3 histograms) with nativeHistograms on against off.
 * 2. Rendering 1,000 and 10,000 label sets: protobuf with native buckets against text with classic buckets:
 *    bytes per label set and CPU time.
 * 3. Series Prometheus stores per label set for each choice.
 */
import { Bench } from 'tinybench';
import { createIstioStats, type IstioStats } from '../src/stats/istio-stats.js';
import { renderMetrics, type ExpositionFormat } from '../src/stats/exposition.js';
import { DEFAULT_BUCKETS } from '../src/stats/definitions.js';
import type { HistogramSeries} from '../src/stats/series.js';
import { Family, observe } from '../src/stats/series.js';
import { NativeHistogramConfig } from '../src/stats/native-histogram.js';
import type { PeerMetadata } from '../src/metadata/types.js';
import type { HttpStreamAttributes } from '../src/stats/types.js';
import { PRODUCTPAGE as LOCAL, reviewsPeer, reviewsRequest } from './support/fixtures.js';
import { median } from './support/measure.js';

const reviews = reviewsPeer;
/** Durations and sizes spread over many native buckets. */
const SPREAD = { durationMs: (i: number): number => 3 + ((i * 7) % 400), responseBytes: (i: number): number => 2500 + ((i * 13) % 30_000) };
const request = (peer: PeerMetadata, i: number): HttpStreamAttributes => reviewsRequest(peer, i, SPREAD);

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

const perOp = (bench: Bench, batch: number): number[] => bench.tasks.map((t) => (((t.result as { period?: number } | undefined)?.period ?? NaN) * 1e6) / batch);

async function observation(): Promise<void> {
  const BATCH = 4096;
  // Durations as the recorder sees them (whole ms, mostly small) plus a share of fractional/large values.
  const values = Float64Array.from({ length: BATCH }, (_, i) => (i % 16 === 0 ? 20_000 + i * 3.7 : (i * 7) % 900));
  const classicFam = new Family('d', 'histogram', 'd', 10, DEFAULT_BUCKETS);
  const nativeFam = new Family('d', 'histogram', 'd', 10, DEFAULT_BUCKETS);
  nativeFam.native = new NativeHistogramConfig({});
  const classic = classicFam.get('a="b"', 0) as HistogramSeries;
  const native = nativeFam.get('a="b"', 0) as HistogramSeries;
  const bench = new Bench({ time: 1500, warmup: true });
  bench.add('classic observe()', () => {
    for (let i = 0; i < BATCH; i++) observe(classic, classicFam, values[i] as number);
  });
  bench.add('classic + native observe()', () => {
    for (let i = 0; i < BATCH; i++) observe(native, nativeFam, values[i] as number);
  });
  const nativeOnly = native.native;
  bench.add('native part alone (NativeHistogram.observe)', () => {
    for (let i = 0; i < BATCH; i++) nativeOnly?.observe(values[i] as number);
  });
  await bench.run();
  const [c = NaN, both = NaN, n = NaN] = perOp(bench, BATCH);
  console.log('one histogram observation');
  bench.tasks.forEach((t, i) => console.log(`  ${t.name.padEnd(48)} ${fmt(perOp(bench, BATCH)[i] ?? NaN).padStart(7)} ns`));
  console.log(`  ratio native part / classic: ${fmt(n / c, 2)}x; classic+native / classic: ${fmt(both / c, 2)}x (goal < 1.5x)`);

  const RB = 1000;
  const attrs = Array.from({ length: RB }, (_, i) => request(reviews(1), i));
  const off = createIstioStats({ local: LOCAL, tcpReportingIntervalMs: 0 });
  const on = createIstioStats({ local: LOCAL, tcpReportingIntervalMs: 0, nativeHistograms: true });
  const rec = new Bench({ time: 1500, warmup: true });
  rec.add('recordHttp, classic only', () => {
    for (let i = 0; i < RB; i++) off.recordHttp(attrs[i] as HttpStreamAttributes);
  });
  rec.add('recordHttp, nativeHistograms: true', () => {
    for (let i = 0; i < RB; i++) on.recordHttp(attrs[i] as HttpStreamAttributes);
  });
  await rec.run();
  const [r0 = NaN, r1 = NaN] = perOp(rec, RB);
  console.log('\nrecording one request (counter + 3 histograms, 25 labels, known peer)');
  rec.tasks.forEach((t, i) => console.log(`  ${t.name.padEnd(48)} ${fmt(perOp(rec, RB)[i] ?? NaN).padStart(7)} ns`));
  console.log(`  ratio native on / off: ${fmt(r1 / r0, 2)}x`);
  off.close();
  on.close();
}

function statsWith(n: number, native: boolean): IstioStats {
  const stats = createIstioStats({
    local: LOCAL,
    tcpReportingIntervalMs: 0,
    nativeHistograms: native,
    maxSeriesPerMetric: n + 10,
    maxExpositionBytes: 2 ** 40,
    maxPlainTextExpositionBytes: 2 ** 40,
  });
  // 20 requests per label set, so each series holds a spread of values.
  for (let i = 0; i < n; i++) {
    const peer = reviews(i);
    for (let j = 0; j < 20; j++) stats.recordHttp(request(peer, i * 20 + j));
  }
  return stats;
}

/**
 * Bytes and CPU of one scrape (median of 3: the steady state) and of the first one, which for protobuf also
 * encodes every series' label pairs once (kept on the series for later scrapes).
 */
async function render(stats: IstioStats, format: ExpositionFormat): Promise<{ bytes: number; cpuMs: number; ms: number; firstCpuMs: number }> {
  const cpu: number[] = [];
  const wall: number[] = [];
  let bytes = 0;
  for (let rep = 0; rep < 3; rep++) {
    bytes = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for await (const chunk of renderMetrics(stats, format)) bytes += chunk.length;
    wall.push(performance.now() - t0);
    const d = process.cpuUsage(c0);
    cpu.push((d.user + d.system) / 1000);
  }
  return { bytes, cpuMs: median(cpu), ms: median(wall), firstCpuMs: cpu[0] as number };
}

async function rendering(): Promise<void> {
  console.log('\nrendering N label sets (1 counter + 3 histograms each, 20 requests per label set)');
  for (const n of [1000, 10_000]) {
    const classic = statsWith(n, false);
    const text = await render(classic, 'text');
    const classicPb = await render(classic, 'protobuf');
    classic.close();
    const native = statsWith(n, true);
    const pb = await render(native, 'protobuf');
    native.close();
    console.log(`  N=${n.toLocaleString('en-US')}`);
    console.log(`    text + classic          ${fmt(text.bytes / n / 1024, 2).padStart(7)} KiB/label set  ${fmt(text.cpuMs).padStart(8)} ms CPU  ${fmt(text.ms).padStart(8)} ms wall`);
    console.log(`    protobuf + classic      ${fmt(classicPb.bytes / n / 1024, 2).padStart(7)} KiB/label set  ${fmt(classicPb.cpuMs).padStart(8)} ms CPU  ${fmt(classicPb.ms).padStart(8)} ms wall`);
    console.log(`    protobuf + native       ${fmt(pb.bytes / n / 1024, 2).padStart(7)} KiB/label set  ${fmt(pb.cpuMs).padStart(8)} ms CPU  ${fmt(pb.ms).padStart(8)} ms wall  (first scrape ${fmt(pb.firstCpuMs)} ms CPU)`);
    console.log(`    ratio protobuf+native / text+classic: ${fmt(pb.bytes / text.bytes, 2)}x bytes, ${fmt(pb.cpuMs / text.cpuMs, 2)}x CPU`);
  }
}

function seriesStored(): void {
  // Per histogram: one series per bound, +Inf, _sum and _count (classic) or one native series.
  const classicPerHistogram = DEFAULT_BUCKETS.length + 3;
  console.log('\nseries Prometheus stores per HTTP label set (1 counter + 3 histograms)');
  console.log(`  text or protobuf, classic only:                          ${1 + 3 * classicPerHistogram}`);
  console.log(`  protobuf + native, Prometheus 2.42-2.44 (native only):   ${1 + 3}`);
  console.log(`  protobuf + native, 2.45+ scrape_classic_histograms:      ${1 + 3 * (classicPerHistogram + 1)}`);
}

await observation();
await rendering();
seriesStored();

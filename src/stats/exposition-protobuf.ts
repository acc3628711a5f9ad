/**
 * The protobuf exposition: varint-length-delimited `io.prometheus.client.MetricFamily` messages
 * (client_model, see client-model.ts), what Prometheus asks for first with native histograms enabled.
 *
 * Three jobs:
 * - `renderProtobufFamilies` (protobuf-writer.ts, written by hand for the scrape's hot path): the recorder's
 *   families (classic buckets, and the native buckets of the histograms that have them);
 * - {@link parsedToProtobuf} (through protobufjs, as the rest of this file): families parsed from a text or
 *   OpenMetrics page (the app's page and the agent's prom-client page in the merged :15020 scrape, and
 *   prom-client registries beside the recorder);
 * - {@link decodeProtobufPage} / {@link protobufToParsed}: reading a protobuf page (an app behind the merged
 *   scrape), never throwing, and turning it into parsed families for a text or OpenMetrics page.
 *
 * Series names on the wire are what Prometheus stores: a counter family is named with its `_total`
 * (Prometheus 2.42 `model/textparse/protobufparse.go` appends nothing to counters), histograms and summaries
 * without suffixes (the parser appends `_bucket`/`_sum`/`_count`).
 */
import protobuf from 'protobufjs';
import { clientModel, METRIC_TYPE } from './client-model.js';
import type { PbBucket, PbExemplar, PbHistogram, PbLabelPair, PbMetric, PbMetricFamily } from './client-model.js';
import type { ParsedFamily, Sample } from './exposition-parser.js';
import { parseExemplar, parseLabelString } from './exposition-parser.js';
import { escapeLabelValue } from './series.js';

export { renderProtobufFamilies } from './protobuf-writer.js';

/**
 * A rendered label string (`a="x",b="y\"z"`, as series keep it for the text formats) as label pairs, through
 * the exposition parser's one label reader. Protobuf needs pairs; a series' string is parsed once in its life.
 */
export function labelPairsOf(labels: string): PbLabelPair[] {
  return Object.entries(parseLabelString(labels)).map(([name, value]) => ({ name, value }));
}

/** Encode whole `MetricFamily` objects, delimited. */
export function encodeProtobufFamilies(families: readonly PbMetricFamily[]): Buffer {
  const { MetricFamily } = clientModel();
  const w = protobuf.Writer.create();
  for (const f of families) MetricFamily.encodeDelimited(f, w);
  const b = w.finish();
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

// --- parsed text families → protobuf ---

/** Labels of a sample without one label (`le`, `quantile`), and a key identifying that label set. */
function without(labels: Readonly<Record<string, string>>, drop: string): { key: string; label: PbLabelPair[] } {
  const label: PbLabelPair[] = [];
  let key = '';
  for (const [name, value] of Object.entries(labels)) {
    if (name === drop) continue;
    label.push({ name, value });
    key += `${name}\u0000${value}\u0001`;
  }
  return { key, label };
}

function timestampMsOf(s: Sample, scale: number): number | undefined {
  return s.timestamp === undefined ? undefined : Math.round(s.timestamp * scale);
}

/** An OpenMetrics exemplar (`{trace_id="…"} 1 1700000000.5`) as a protobuf Exemplar; undefined when malformed. */
function exemplarOf(text: string | undefined): PbExemplar | undefined {
  if (text === undefined) return undefined;
  const e = parseExemplar(text);
  if (e === undefined) return undefined;
  const out: PbExemplar = { label: Object.entries(e.labels).map(([name, value]) => ({ name, value })), value: e.value };
  if (e.timestamp !== undefined) {
    const seconds = Math.floor(e.timestamp);
    out.timestamp = { seconds, nanos: Math.round((e.timestamp - seconds) * 1e9) };
  }
  return out;
}

function parseLe(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (v === '+Inf' || v === 'Inf') return Infinity;
  const n = Number(v);
  return v.trim() === '' || Number.isNaN(n) ? undefined : n;
}

/** Histogram or gauge histogram samples grouped by label set into `Metric`s (page order). */
function histogramMetrics(f: ParsedFamily, gauge: boolean, scale: number): PbMetric[] {
  const byKey = new Map<string, PbMetric & { histogram: PbHistogram & { bucket: PbBucket[] } }>();
  const sumName = `${f.name}${gauge ? '_gsum' : '_sum'}`;
  const countName = `${f.name}${gauge ? '_gcount' : '_count'}`;
  for (const s of f.samples) {
    const isBucket = s.name === `${f.name}_bucket`;
    const { key, label } = without(s.labels, isBucket ? 'le' : '');
    let m = byKey.get(key);
    if (m === undefined) {
      m = { label, histogram: { bucket: [] } };
      const ts = timestampMsOf(s, scale);
      if (ts !== undefined) m.timestampMs = ts;
      byKey.set(key, m);
    }
    if (isBucket) {
      const le = parseLe(s.labels.le);
      if (le === undefined) continue;
      const b: PbBucket = { cumulativeCount: s.value, upperBound: le };
      const e = exemplarOf(s.exemplar);
      if (e !== undefined) b.exemplar = e;
      m.histogram.bucket.push(b);
    } else if (s.name === sumName) m.histogram.sampleSum = s.value;
    else if (s.name === countName) m.histogram.sampleCount = s.value;
  }
  return [...byKey.values()];
}

function summaryMetrics(f: ParsedFamily, scale: number): PbMetric[] {
  type SummaryMetric = PbMetric & { summary: { sampleCount: number; sampleSum: number; quantile: { quantile: number; value: number }[] } };
  const byKey = new Map<string, SummaryMetric>();
  for (const s of f.samples) {
    const isQuantile = s.name === f.name;
    const { key, label } = without(s.labels, isQuantile ? 'quantile' : '');
    let m = byKey.get(key);
    if (m === undefined) {
      m = { label, summary: { sampleCount: 0, sampleSum: 0, quantile: [] } };
      const ts = timestampMsOf(s, scale);
      if (ts !== undefined) m.timestampMs = ts;
      byKey.set(key, m);
    }
    if (isQuantile) {
      const q = parseLe(s.labels.quantile);
      if (q !== undefined) m.summary.quantile.push({ quantile: q, value: s.value });
    } else if (s.name === `${f.name}_sum`) m.summary.sampleSum = s.value;
    else if (s.name === `${f.name}_count`) m.summary.sampleCount = s.value;
  }
  return [...byKey.values()];
}

/**
 * Families parsed from a text (`from: 'text'`, timestamps in ms) or OpenMetrics page (seconds) as
 * `MetricFamily` objects. Counters take the name their samples have (`x_total`; a text counter without the
 * suffix keeps its name, so the series Prometheus stores do not change with the format); `_created` samples
 * are left out (Prometheus 2.42 ignores them in every format). OpenMetrics `info` and `stateset` become
 * gauges and `unknown` untyped, as in the text format. Exemplars are kept on counters and buckets.
 */
export function parsedToProtobuf(families: readonly ParsedFamily[], from: 'text' | 'openmetrics'): PbMetricFamily[] {
  const scale = from === 'openmetrics' ? 1000 : 1;
  const out: PbMetricFamily[] = [];
  for (const f of families) {
    const help = f.help ?? '';
    const base = (name: string, type: number, metric: PbMetric[]): PbMetricFamily => {
      const mf: PbMetricFamily = { name, type, metric };
      if (help !== '') mf.help = help;
      if (f.unit !== undefined && f.unit !== '') mf.unit = f.unit;
      return mf;
    };
    if (f.type === 'histogram' || f.type === 'gaugehistogram') {
      const gauge = f.type === 'gaugehistogram';
      out.push(base(f.name, gauge ? METRIC_TYPE.GAUGE_HISTOGRAM : METRIC_TYPE.HISTOGRAM, histogramMetrics(f, gauge, scale)));
      continue;
    }
    if (f.type === 'summary') {
      out.push(base(f.name, METRIC_TYPE.SUMMARY, summaryMetrics(f, scale)));
      continue;
    }
    // Scalar families: one protobuf family per sample name, in page order.
    const type = f.type === 'counter' ? METRIC_TYPE.COUNTER : f.type === 'gauge' || f.type === 'info' || f.type === 'stateset' ? METRIC_TYPE.GAUGE : METRIC_TYPE.UNTYPED;
    let current: PbMetricFamily | undefined;
    for (const s of f.samples) {
      if (f.type === 'counter' && s.name.endsWith('_created') && s.name !== f.name) continue;
      if (current?.name !== s.name) {
        current = out.find((o) => o.name === s.name && o.type === type) ?? base(s.name, type, []);
        if (!out.includes(current)) out.push(current);
      }
      const { label } = without(s.labels, '');
      const m: PbMetric = { label };
      if (type === METRIC_TYPE.COUNTER) {
        const e = exemplarOf(s.exemplar);
        m.counter = e !== undefined ? { value: s.value, exemplar: e } : { value: s.value };
      } else if (type === METRIC_TYPE.GAUGE) m.gauge = { value: s.value };
      else m.untyped = { value: s.value };
      const ts = timestampMsOf(s, scale);
      if (ts !== undefined) m.timestampMs = ts;
      current.metric.push(m);
    }
  }
  return out;
}

// --- protobuf page → families ---

/** A decoded protobuf page: its families and the delimited bytes of each (for a protobuf page, passed through). */
export type ProtobufPageResult =
  | { readonly ok: true; readonly families: PbMetricFamily[]; readonly raw: Buffer[] }
  | { readonly ok: false; readonly offset: number; readonly reason: string };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPE_FIELD: Readonly<Record<number, keyof PbMetric>> = {
  [METRIC_TYPE.COUNTER]: 'counter',
  [METRIC_TYPE.GAUGE]: 'gauge',
  [METRIC_TYPE.SUMMARY]: 'summary',
  [METRIC_TYPE.UNTYPED]: 'untyped',
  [METRIC_TYPE.HISTOGRAM]: 'histogram',
  [METRIC_TYPE.GAUGE_HISTOGRAM]: 'histogram',
};

function checkFamily(mf: PbMetricFamily): string | undefined {
  if (!METRIC_NAME.test(mf.name)) return `bad metric name ${JSON.stringify(mf.name.slice(0, 80))}`;
  const field = TYPE_FIELD[mf.type];
  if (field === undefined) return `unknown metric type ${mf.type}`;
  for (const m of mf.metric) {
    for (const l of m.label) if (!LABEL_NAME.test(l.name)) return `bad label name ${JSON.stringify(l.name.slice(0, 80))}`;
    if (m[field] === undefined) return `metric of ${mf.name} has no ${field} value`;
  }
  return undefined;
}

/**
 * Read a delimited protobuf page, never throwing: every record must be a `MetricFamily` with a valid
 * name, a known type, valid label names and the value field its type names (what Prometheus's parser
 * refuses, it refuses too). The page is already bounded by the caller (the merged scrape's size cap).
 */
export function decodeProtobufPage(page: Buffer): ProtobufPageResult {
  const { MetricFamily } = clientModel();
  const reader = protobuf.Reader.create(page);
  const families: PbMetricFamily[] = [];
  const raw: Buffer[] = [];
  while (reader.pos < reader.len) {
    const start = reader.pos;
    let mf: PbMetricFamily;
    try {
      const len = reader.uint32();
      if (reader.pos + len > reader.len) return { ok: false, offset: start, reason: 'record longer than the page (cut short)' };
      const msg = MetricFamily.decode(page.subarray(reader.pos, reader.pos + len));
      reader.skip(len);
      mf = MetricFamily.toObject(msg, { longs: Number, arrays: true }) as PbMetricFamily;
    } catch (err) {
      return { ok: false, offset: start, reason: `not a MetricFamily: ${(err as Error).message}` };
    }
    const bad = checkFamily(mf);
    if (bad !== undefined) return { ok: false, offset: start, reason: bad };
    families.push(mf);
    raw.push(page.subarray(start, reader.pos));
  }
  return { ok: true, families, raw };
}

function exemplarText(e: PbExemplar | undefined | null): string | undefined {
  if (e === undefined || e === null) return undefined;
  const labels = (e.label ?? []).map((l) => `${l.name}="${escapeLabelValue(l.value)}"`).join(',');
  const ts = e.timestamp !== undefined && e.timestamp !== null ? ` ${(e.timestamp.seconds + e.timestamp.nanos / 1e9).toFixed(3)}` : '';
  return `{${labels}} ${String(e.value)}${ts}`;
}

function labelsRecord(label: readonly PbLabelPair[], extra?: [string, string]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of label) out[l.name] = l.value;
  if (extra !== undefined) out[extra[0]] = extra[1];
  return out;
}

function leText(v: number): string {
  return v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v);
}

/**
 * Decoded protobuf families as parsed text families (timestamps in ms, as the text format writes them),
 * ready for `renderParsedFamilies`. The text formats have no native buckets: a native histogram keeps its
 * classic buckets (when it has them), `_sum` and `_count`, and always a `+Inf` bucket equal to the count.
 */
export function protobufToParsed(families: readonly PbMetricFamily[]): ParsedFamily[] {
  const out: ParsedFamily[] = [];
  for (const mf of families) {
    const samples: Sample[] = [];
    const type =
      mf.type === METRIC_TYPE.COUNTER ? 'counter' : mf.type === METRIC_TYPE.GAUGE ? 'gauge' : mf.type === METRIC_TYPE.SUMMARY ? 'summary' : mf.type === METRIC_TYPE.HISTOGRAM ? 'histogram' : mf.type === METRIC_TYPE.GAUGE_HISTOGRAM ? 'gaugehistogram' : 'untyped';
    const push = (name: string, labels: Record<string, string>, value: number, ts: number | undefined, exemplar?: string): void => {
      const s: { name: string; labels: Record<string, string>; value: number; timestamp?: number; exemplar?: string } = { name, labels, value };
      if (ts !== undefined && ts !== 0) s.timestamp = ts;
      if (exemplar !== undefined) s.exemplar = exemplar;
      samples.push(s);
    };
    for (const m of mf.metric) {
      const ts = m.timestampMs ?? undefined;
      const labels = labelsRecord(m.label);
      if (m.counter && type === 'counter') push(mf.name, labels, m.counter.value ?? 0, ts, exemplarText(m.counter.exemplar));
      else if (m.gauge && type === 'gauge') push(mf.name, labels, m.gauge.value ?? 0, ts);
      else if (m.untyped && type === 'untyped') push(mf.name, labels, m.untyped.value ?? 0, ts);
      else if (m.summary && type === 'summary') {
        for (const q of m.summary.quantile ?? []) push(mf.name, labelsRecord(m.label, ['quantile', leText(q.quantile)]), q.value, ts);
        push(`${mf.name}_sum`, labels, m.summary.sampleSum ?? 0, ts);
        push(`${mf.name}_count`, labels, m.summary.sampleCount ?? 0, ts);
      } else if (m.histogram) {
        const h = m.histogram;
        const count = h.sampleCountFloat !== undefined && h.sampleCountFloat > 0 ? h.sampleCountFloat : (h.sampleCount ?? 0);
        let inf = false;
        for (const b of h.bucket ?? []) {
          const c = b.cumulativeCountFloat !== undefined && b.cumulativeCountFloat > 0 ? b.cumulativeCountFloat : b.cumulativeCount;
          if (b.upperBound === Infinity) inf = true;
          push(`${mf.name}_bucket`, labelsRecord(m.label, ['le', leText(b.upperBound)]), c, ts, exemplarText(b.exemplar));
        }
        if (!inf) push(`${mf.name}_bucket`, labelsRecord(m.label, ['le', '+Inf']), count, ts);
        const gauge = type === 'gaugehistogram';
        push(`${mf.name}${gauge ? '_gsum' : '_sum'}`, labels, h.sampleSum ?? 0, ts);
        push(`${mf.name}${gauge ? '_gcount' : '_count'}`, labels, count, ts);
      }
    }
    // A counter's text family is named with its samples' `_total`; shapeFor drops it for OpenMetrics.
    out.push({ name: mf.name, type, help: mf.help === '' ? undefined : mf.help, unit: mf.unit === '' ? undefined : mf.unit, samples });
  }
  return out;
}

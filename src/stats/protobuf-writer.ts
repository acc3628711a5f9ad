/**
 * The recorder's families as delimited `io.prometheus.client.MetricFamily` messages, written by hand.
 *
 * Why not protobufjs here (it stays the schema, client-model.ts, and everything else: decoding app pages,
 * converting parsed pages, prom-client metrics): encoding through it means one `Metric` object per series, one
 * `Bucket` object per classic bucket, arrays for spans and deltas, a `Writer` and its finished buffer per series,
 * and a concatenation per family. At 10,000 label sets that was ~1 million short-lived objects per scrape and
 * render CPU grew faster than the text format's, which only copies pre-rendered bytes. Here, as in the text
 * writer (exposition.ts), the per-series work is copying bytes and writing numbers:
 * - a series' label pairs (Metric field 1) are encoded once in its life, when a protobuf scrape first sees it,
 *   and kept on the series (`pbLabels`, shared by the counter and the three histograms of one label set);
 * - a family's constant parts (each classic bound as field 2 of `Bucket`) are encoded once per scrape;
 * - numbers go straight into a reused scratch buffer, native buckets straight from the series' count windows.
 *
 * The bytes are what protobufjs writes for the same message (fields in number order, proto2 presence: a set 0
 * is written); test/stats/protobuf-writer.test.ts compares them with protobufjs's encoding byte for byte.
 */
import { clientModel, METRIC_TYPE, varintSize } from './client-model.js';
import { labelPairsOf } from './exposition-protobuf.js';
import { forEachSpan, type NativeHistogram } from './native-histogram.js';
import type { Exemplar, Family, HistogramSeries, ScalarSeries, Series } from './series.js';

/** Metrics encoded between two yields to the event loop while a large family is rendered. */
const METRICS_PER_SLICE = 256;
/** Size of the slabs a family's bytes are written into. */
const SLAB = 256 * 1024;

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const TYPE_OF: Readonly<Record<Family['type'], number>> = { counter: METRIC_TYPE.COUNTER, gauge: METRIC_TYPE.GAUGE, histogram: METRIC_TYPE.HISTOGRAM };


/** A growable byte buffer with the few protobuf primitives the recorder's messages need. */
class Bytes {
  buf: Buffer;
  len = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): void {
    this.len = 0;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }

  /** An unsigned varint of a whole number up to 2^53 (counts, lengths, zigzagged deltas). */
  varint(n: number): void {
    this.room(10);
    const b = this.buf;
    let o = this.len;
    while (n >= 0x80000000) {
      b[o++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    while (n >= 128) {
      b[o++] = (n & 127) | 0x80;
      n >>>= 7;
    }
    b[o++] = n;
    this.len = o;
  }

  /** A zigzag-encoded signed whole number (sint32 / sint64). */
  zigzag(n: number): void {
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  double(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.len);
    this.len += 8;
  }

  bytes(src: Uint8Array, n = src.length): void {
    this.room(n);
    this.buf.set(n === src.length ? src : src.subarray(0, n), this.len);
    this.len += n;
  }

  /** A length-delimited field: tag, length, then the first `n` bytes of `src`. */
  field(tag: number, src: Bytes): void {
    this.byte(tag);
    this.varint(src.len);
    this.bytes(src.buf, src.len);
  }

  /** A UTF-8 string field. */
  string(tag: number, s: string): void {
    const n = Buffer.byteLength(s);
    this.byte(tag);
    this.varint(n);
    this.room(n);
    this.len += this.buf.write(s, this.len, 'utf8');
  }
}

/** A family's body, in slabs (no copy of the whole family before it is sent). */
class Slabs {
  readonly done: Buffer[] = [];
  private cur: Buffer = Buffer.allocUnsafe(SLAB);
  private off = 0;
  total = 0;

  append(src: Buffer, n: number): void {
    let from = 0;
    while (from < n) {
      if (this.off === this.cur.length) {
        this.done.push(this.cur);
        this.cur = Buffer.allocUnsafe(SLAB);
        this.off = 0;
      }
      const k = Math.min(n - from, this.cur.length - this.off);
      src.copy(this.cur, this.off, from, from + k);
      this.off += k;
      from += k;
    }
    this.total += n;
  }

  finish(): Buffer[] {
    if (this.off > 0) this.done.push(this.cur.subarray(0, this.off));
    return this.done;
  }
}

/** Scratch buffers of one render (one render runs at a time per call; nothing is shared across calls). */
interface Scratch {
  /** One metric: tag, length, labels, value field. */
  readonly metric: Bytes;
  /** A histogram or counter body. */
  readonly body: Bytes;
  /** One sub-message (bucket, exemplar). */
  readonly sub: Bytes;
  readonly exemplar: Bytes;
  readonly native: NativeWriter;
}

function exemplarInto(out: Bytes, e: Exemplar): void {
  out.reset();
  const traceBytes = Buffer.byteLength(e.traceId);
  // label: LabelPair { name: "trace_id", value }
  out.byte(0x0a);
  out.varint(2 + 8 + 1 + varintSize(traceBytes) + traceBytes);
  out.string(0x0a, 'trace_id');
  out.string(0x12, e.traceId);
  out.byte(0x11);
  out.double(e.value);
  const seconds = Math.floor(e.timestamp);
  const nanos = Math.round((e.timestamp - seconds) * 1e9);
  // timestamp: google.protobuf.Timestamp { seconds, nanos }
  out.byte(0x1a);
  out.varint(1 + varintSize(seconds) + 1 + varintSize(nanos));
  out.byte(0x08);
  out.varint(seconds);
  out.byte(0x10);
  out.varint(nanos);
}

/**
 * Writes the native fields of a `Histogram` (5..13) from a series' count windows. The span and delta
 * callbacks are made once per render, not per series: they write into {@link NativeWriter.h}.
 */
class NativeWriter {
  h: Bytes;
  private spanTag = 0;
  private spans = 0;
  private readonly deltas = new Bytes(1024);
  private readonly onSpan = (offset: number, length: number): void => {
    const h = this.h;
    const zz = offset >= 0 ? offset * 2 : -offset * 2 - 1;
    h.byte(this.spanTag);
    h.varint(2 + varintSize(zz) + varintSize(length));
    h.byte(0x08);
    h.varint(zz);
    h.byte(0x10);
    h.varint(length);
    this.spans++;
  };
  private readonly onDelta = (d: number): void => this.deltas.zigzag(d);

  constructor(h: Bytes) {
    this.h = h;
  }

  /** One sign: its spans (field `spanTag`) then its packed deltas (`deltaTag`); returns the span count. */
  private sign(lo: number, c: Float64Array, spanTag: number, deltaTag: number): number {
    this.spanTag = spanTag;
    this.spans = 0;
    this.deltas.reset();
    forEachSpan(lo, c, 0, c.length - 1, this.onSpan, this.onDelta);
    if (this.deltas.len > 0) this.h.field(deltaTag, this.deltas);
    return this.spans;
  }

  write(n: NativeHistogram): void {
    const h = this.h;
    h.byte(0x28);
    h.zigzag(n.schema);
    h.byte(0x31);
    h.double(n.config.zeroThreshold);
    h.byte(0x38);
    h.varint(n.zeroCount);
    const spans = this.sign(n.negLo, n.neg, 0x4a, 0x52) + this.sign(n.posLo, n.pos, 0x62, 0x6a);
    // A zero threshold of 0 and no observation yet: an empty span marks the histogram native (client_golang).
    if (spans === 0 && n.zeroCount === 0 && n.config.zeroThreshold === 0) {
      h.byte(0x62);
      h.byte(4);
      h.byte(0x08);
      h.byte(0);
      h.byte(0x10);
      h.byte(0);
    }
  }
}

/** Per-family constants of one scrape: each classic bound as `Bucket.upper_bound` (tag + double). */
function boundBytes(f: Family): Buffer[] {
  return f.buckets.map((b) => {
    const out = Buffer.allocUnsafe(9);
    out[0] = 0x11;
    out.writeDoubleLE(b, 1);
    return out;
  });
}

/** The `Histogram` of one series (fields 1, 2, 3, then the native 5..13 and 16). */
function histogramInto(h: Bytes, f: Family, s: HistogramSeries, bounds: readonly Buffer[], x: Scratch): void {
  h.reset();
  h.byte(0x08);
  h.varint(s.count);
  h.byte(0x11);
  h.double(s.sum);
  let cum = 0;
  const ex = s.exemplars;
  for (let i = 0; i < bounds.length; i++) {
    cum += s.counts[i] as number;
    const e = ex?.[i];
    const bound = bounds[i] as Buffer;
    if (e === undefined) {
      h.byte(0x1a);
      h.varint(1 + varintSize(cum) + 9);
      h.byte(0x08);
      h.varint(cum);
      h.bytes(bound);
    } else {
      const sub = x.sub;
      sub.reset();
      sub.byte(0x08);
      sub.varint(cum);
      sub.bytes(bound);
      exemplarInto(x.exemplar, e);
      sub.field(0x1a, x.exemplar);
      h.field(0x1a, sub);
    }
  }
  // The +Inf bucket is implied by sample_count (client_golang leaves it out); written only to carry an exemplar.
  const inf = ex?.[f.buckets.length];
  if (inf !== undefined) {
    const sub = x.sub;
    sub.reset();
    sub.byte(0x08);
    sub.varint(s.count);
    sub.byte(0x11);
    sub.double(Infinity);
    exemplarInto(x.exemplar, inf);
    sub.field(0x1a, x.exemplar);
    h.field(0x1a, sub);
  }
  if (s.native !== undefined) {
    x.native.write(s.native);
    // Histogram.exemplars (field 16, tag 0x82 0x01): the native buckets' recent exemplars, after every other field.
    const nex = s.native.exemplars;
    if (nex !== undefined) {
      for (const e of nex) {
        exemplarInto(x.exemplar, e);
        h.byte(0x82);
        h.field(0x01, x.exemplar);
      }
    }
  }
}

/** The `Counter` or `Gauge` of one series. */
function scalarInto(b: Bytes, f: Family, s: ScalarSeries, x: Scratch): number {
  b.reset();
  b.byte(0x09);
  b.double(s.value);
  if (f.type === 'counter' && s.exemplar !== undefined) {
    exemplarInto(x.exemplar, s.exemplar);
    b.field(0x12, x.exemplar);
  }
  // Metric field 3 (counter) or 2 (gauge).
  return f.type === 'counter' ? 0x1a : 0x12;
}

/** The label pairs of a series (Metric field 1), encoded once in its life and shared within the scrape. */
function labelsOf(s: Series, fresh: Map<string, Uint8Array>): Uint8Array {
  let b = s.pbLabels;
  if (b !== undefined) return b;
  b = fresh.get(s.labels);
  if (b === undefined) {
    // Once per label set, not per scrape: protobufjs for the pairs is fine here.
    b = clientModel().Metric.encode({ label: labelPairsOf(s.labels) }).finish();
    fresh.set(s.labels, b);
  }
  s.pbLabels = b;
  return b;
}

/**
 * Render the recorder's families as delimited protobuf: per family, its length and header, then its body in
 * slabs. A large family yields to the event loop every few hundred series while it is written, so a
 * 10k-label-set scrape never blocks the proxy for its whole render.
 */
export async function* renderProtobufFamilies(families: Iterable<Family>): AsyncGenerator<Buffer> {
  const bodyBytes = new Bytes(4096);
  const x: Scratch = { metric: new Bytes(4096), body: bodyBytes, sub: new Bytes(256), exemplar: new Bytes(256), native: new NativeWriter(bodyBytes) };
  const fresh = new Map<string, Uint8Array>();
  const head = new Bytes(256);
  for (const f of families) {
    const all: Series[] = [...f.series.values()];
    if (f.overflowSeries !== undefined) all.push(f.overflowSeries);
    if (all.length === 0) continue;
    const bounds = f.type === 'histogram' ? boundBytes(f) : [];
    const body = new Slabs();
    const m = x.metric;
    let n = 0;
    for (const s of all) {
      const labels = labelsOf(s, fresh);
      let valueTag: number;
      if (f.type === 'histogram') {
        histogramInto(x.body, f, s as HistogramSeries, bounds, x);
        valueTag = 0x3a;
      } else valueTag = scalarInto(x.body, f, s as ScalarSeries, x);
      m.reset();
      m.byte(0x22);
      m.varint(labels.length + 1 + varintSize(x.body.len) + x.body.len);
      m.bytes(labels);
      m.field(valueTag, x.body);
      body.append(m.buf, m.len);
      if (++n % METRICS_PER_SLICE === 0) await yieldToLoop();
    }
    head.reset();
    head.string(0x0a, f.name);
    if (f.help !== '') head.string(0x12, f.help);
    head.byte(0x18);
    head.varint(TYPE_OF[f.type]);
    const prefix = new Bytes(head.len + 10);
    prefix.varint(head.len + body.total);
    prefix.bytes(head.buf, head.len);
    yield prefix.buf.subarray(0, prefix.len);
    for (const part of body.finish()) yield part;
    await yieldToLoop();
  }
}

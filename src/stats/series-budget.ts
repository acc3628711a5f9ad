/**
 * What one input may cost the exposition (issue 11.1): a length cap on every label value and a byte
 * budget on the page as a whole, with a smaller share for label sets whose peer identity is a
 * plain-text claim. Without them, 12,000 spoofed plain-text peers with ~1,000-character names grew
 * `:15090` to 3.4 GB and a real Prometheus marked the target down.
 *
 * Admission, not truncation of the page: a series' rendered size is known when it is created (its
 * label string is rendered once, `series.ts`), so the recorder keeps a running byte total and sends a
 * new label set to its metric's overflow series when the budget is spent. A series is charged its longest
 * form in any format the page can be asked for: text 0.0.4 / OpenMetrics ({@link seriesCostShape}) or
 * protobuf with native buckets ({@link protobufSeriesBytes}), whichever is longer, so the budget bounds the
 * page whatever Prometheus negotiates. The request path never
 * sees any of this: a label set is admitted or refused once, when its group is built, and a refused
 * one keeps pointing at the overflow series like any cached series.
 *
 * The figures behind the defaults are in docs/security.md ("What a peer can cost").
 */
import { varintSize } from './client-model.js';
import { formatLe } from './definitions.js';
import type { MetricType } from './definitions.js';

/**
 * Default longest label value, in UTF-16 code units. The longest value a real mesh produces is a
 * SPIFFE principal `spiffe://<trust domain ≤253>/ns/<namespace ≤63>/sa/<service account ≤253>` =
 * 586 characters; Kubernetes names and FQDNs are ≤ 253 (a Host header with a port ≤ 259).
 */
export const DEFAULT_MAX_LABEL_VALUE_LENGTH = 600;
/** Default byte budget of the istio_* (and custom) series of the page: 64 MiB. */
export const DEFAULT_MAX_EXPOSITION_BYTES = 64 * 1024 * 1024;
/** Default share of {@link DEFAULT_MAX_EXPOSITION_BYTES} that plain-text peers' label sets may take: 16 MiB. */
export const DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES = 16 * 1024 * 1024;
/** Default share of `maxSeriesPerMetric` plain-text peers' label sets may take (a quarter). */
export const PLAINTEXT_SERIES_SHARE = 4;
/**
 * Longest trace id kept as an exemplar (W3C/OTel ids are 32 hex digits, Jaeger's 16). Longer ids are
 * recorded without an exemplar, so an exemplar line has a known longest form.
 */
export const MAX_EXEMPLAR_TRACE_ID_LENGTH = 32;

/** Longest `String(number)` / `num()` output a sample value can have (`-1.7976931348623157e+308`). */
const MAX_VALUE_CHARS = 24;
/** ` # {trace_id="<≤32 code units, ≤3 bytes each>"} <value> <timestamp>` at its longest. */
const MAX_EXEMPLAR_BYTES = ' # {trace_id="'.length + MAX_EXEMPLAR_TRACE_ID_LENGTH * 3 + '"} '.length + MAX_VALUE_CHARS + 1 + MAX_VALUE_CHARS;

/**
 * The longest form of one series of a family, as `fixed + repeats × labelBytes`: every line a
 * series renders (text 0.0.4 or OpenMetrics, an exemplar on every line that can carry one, the
 * longest value). A histogram repeats its label string on each `_bucket` line and on `_sum`/`_count`.
 */
export interface SeriesCostShape {
  readonly fixed: number;
  readonly repeats: number;
}

/** The cost shape of a family (computed once per family). */
export function seriesCostShape(name: string, type: MetricType, buckets: readonly number[]): SeriesCostShape {
  // `_total` may be appended in OpenMetrics (custom counters); `{`, `} ` and the newline.
  const line = name.length + '_total'.length + '{} '.length + MAX_VALUE_CHARS + 1;
  if (type !== 'histogram') return { fixed: line + (type === 'counter' ? MAX_EXEMPLAR_BYTES : 0), repeats: 1 };
  let fixed = 0;
  for (const b of [...buckets, Infinity]) fixed += line + ',le=""'.length + formatLe(b).length + MAX_EXEMPLAR_BYTES;
  // _sum and _count
  fixed += 2 * line;
  return { fixed, repeats: buckets.length + 3 };
}

/** Most bytes of a varint of a 64-bit number, and of a length below 2^28 (every message here). */
const VARINT_MAX = 10;
const LEN_MAX = 4;
/** An exemplar at its longest: the trace_id pair (≤ 32 code units, ≤ 3 bytes each), value, timestamp. */
const PB_EXEMPLAR = 1 + LEN_MAX + (2 + 1 + 1 + 8 + 1 + 2 + MAX_EXEMPLAR_TRACE_ID_LENGTH * 3) + 9 + (2 + 1 + VARINT_MAX + 1 + 5);
/** A classic `Bucket` at its longest: cumulative count, bound, exemplar. */
const PB_BUCKET = 1 + LEN_MAX + 1 + VARINT_MAX + 9 + 1 + LEN_MAX + PB_EXEMPLAR;
/**
 * One populated native bucket at its longest: its own span (offset sint32, length) and up to three deltas
 * (two gap buckets filled inside a span, then its own: -count, 0, count).
 */
const PB_NATIVE_BUCKET = 1 + 1 + (1 + 5 + 1 + 5) + 3 * VARINT_MAX;
/** The fixed native fields: schema, zero threshold, zero count, two packed delta headers, the no-op span. */
const PB_NATIVE_FIXED = 1 + 5 + 9 + 1 + VARINT_MAX + 2 * (1 + LEN_MAX) + 6;

/** What a family's native buckets may hold per series (`NativeHistogramConfig.maxPopulated`, `.maxExemplars`). */
export interface NativeBucketBound {
  readonly maxPopulated: number;
  readonly maxExemplars: number;
}

/**
 * The longest protobuf form of one series (exposition-protobuf / protobuf-writer): its `Metric` with the label
 * pairs of `labels`, the value, exemplars on every field that can carry one, and for a histogram with native
 * buckets the most populated buckets it can hold. Protobuf writes a label set once per series (text: once per
 * line), but its pairs carry tags and lengths and native buckets add up to `maxPopulated` spans and deltas, so a
 * series with few labels or many native buckets can be longer in protobuf than in text.
 */
export function protobufSeriesBytes(type: MetricType, buckets: number, labels: string, native: NativeBucketBound | undefined): number {
  return 1 + LEN_MAX + labelPairBytes(labels) + 1 + LEN_MAX + protobufValueBytes(type, buckets, native);
}

/**
 * A bound on {@link protobufSeriesBytes} from the label string's UTF-8 length alone: a pair is at least `a=""` in
 * text (so at most (L+1)/4 pairs) and its protobuf form is its name and value bytes (no more than its text, escapes
 * only lengthen text) plus at most 8 bytes of tags and lengths (values ≤ 16 KiB). When the text form is already
 * longer than this (every classic histogram, most counters), the label string need not be walked.
 */
export function protobufSeriesBound(type: MetricType, buckets: number, labelBytes: number, native: NativeBucketBound | undefined): number {
  return 1 + LEN_MAX + labelBytes + 8 * Math.ceil((labelBytes + 1) / 4) + 1 + LEN_MAX + protobufValueBytes(type, buckets, native);
}

function protobufValueBytes(type: MetricType, buckets: number, native: NativeBucketBound | undefined): number {
  if (type === 'gauge') return 9;
  if (type === 'counter') return 9 + 1 + LEN_MAX + PB_EXEMPLAR;
  // count, sum, every classic bucket and the +Inf one (written when it carries an exemplar)
  let value = 1 + VARINT_MAX + 9 + (buckets + 1) * PB_BUCKET;
  // Native exemplars (Histogram field 16) have a two-byte tag.
  if (native !== undefined) value += PB_NATIVE_FIXED + native.maxPopulated * PB_NATIVE_BUCKET + native.maxExemplars * (1 + PB_EXEMPLAR);
  return value;
}

/** UTF-8 bytes of one code unit (a surrogate pair: 2 + 2). */
function utf8Units(c: number): number {
  return c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
}

/**
 * The `LabelPair` messages of a rendered label string (`a="x",b="y"`, text escapes `\\`, `\"`, `\n`), measured in
 * one pass over it: admission runs once per new series, and parsing it into an object first made a spoofed peer's
 * ~67 series cost 7× more to admit.
 */
function labelPairBytes(labels: string): number {
  let total = 0;
  let i = 0;
  const n = labels.length;
  while (i < n) {
    let name = 0;
    while (i < n && labels.charCodeAt(i) !== 61 /* = */) name += utf8Units(labels.charCodeAt(i++));
    i += 2; // ="
    let value = 0;
    while (i < n) {
      let c = labels.charCodeAt(i++);
      if (c === 34 /* " */) break;
      if (c === 92 /* \ */ && i < n) c = labels.charCodeAt(i++) === 110 ? 10 : 92;
      value += utf8Units(c);
    }
    i++; // ,
    const pair = 1 + varintSize(name) + name + 1 + varintSize(value) + value;
    total += 1 + varintSize(pair) + pair;
  }
  return total;
}

/** Options of {@link SeriesBudget}, validated by the recorder. */
export interface SeriesBudgetLimits {
  /** Bytes all budgeted series may take together. */
  readonly maxBytes: number;
  /** Bytes label sets of plain-text peers may take (≤ maxBytes). */
  readonly maxPlainTextBytes: number;
}

/**
 * The running byte total of the page. `admit` is called once per new series; `release` when the TTL
 * sweep or a registry reset removes one. Refusals are counted per budget.
 */
export class SeriesBudget {
  readonly maxBytes: number;
  readonly maxPlainTextBytes: number;
  /** Bytes held by live series (their longest form). */
  used = 0;
  /** The part of {@link used} held by plain-text peers' label sets. */
  plainTextUsed = 0;
  /** Series refused because the page budget was spent. */
  refused = 0;
  /** Series refused because the plain-text share (bytes or series per metric) was spent. */
  plainTextRefused = 0;

  constructor(limits: SeriesBudgetLimits) {
    this.maxBytes = limits.maxBytes;
    this.maxPlainTextBytes = limits.maxPlainTextBytes;
  }

  /** Take `bytes` for a new series, or count the refusal and return false. */
  admit(bytes: number, plainText: boolean): boolean {
    if (plainText && this.plainTextUsed + bytes > this.maxPlainTextBytes) {
      this.plainTextRefused++;
      return false;
    }
    if (this.used + bytes > this.maxBytes) {
      this.refused++;
      return false;
    }
    this.used += bytes;
    if (plainText) this.plainTextUsed += bytes;
    return true;
  }

  /** Give back what {@link admit} took for a series that is gone. */
  release(bytes: number, plainText: boolean): void {
    this.used -= bytes;
    if (plainText) this.plainTextUsed -= bytes;
  }
}

/**
 * Cut a label value to `max` code units, deterministically: the first `max - 9` units, `~` and the
 * FNV-1a hash of the rest (8 hex digits), so two long values that share a prefix stay two
 * series. A surrogate pair is never split. Callers run it once per peer context or label set; a Telemetry
 * tag-override or custom-metric value over the cap is cut each time a request evaluates it (bounded by the
 * 60 KiB header limit), which is what keeps the value table of series-cache.ts small.
 */
export function truncateLabelValue(value: string, max: number): string {
  if (value.length <= max) return value;
  if (max < 16) return cutAt(value, max);
  const kept = cutAt(value, max - 9);
  // The kept prefix is verbatim, so hashing the dropped tail is enough to keep values apart.
  return `${kept}~${fnv1a(value, kept.length)}`;
}

function cutAt(value: string, n: number): string {
  const c = value.charCodeAt(n - 1);
  return value.slice(0, c >= 0xd800 && c <= 0xdbff ? n - 1 : n);
}

/** FNV-1a 32-bit over the UTF-16 code units from `from` on, as 8 hex digits (a stable tag, not a security hash). */
function fnv1a(s: string, from: number): string {
  let h = 0x811c9dc5 | 0;
  for (let i = from; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

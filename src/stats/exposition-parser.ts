/**
 * A small parser for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text: sample lines
 * with labels, escaped label values, optional timestamps and (OpenMetrics) exemplars, and the `# HELP`,
 * `# TYPE`, `# UNIT` and `# EOF` lines. Two entry points:
 * - {@link parseExposition}: the samples only, throwing DecodeError on a malformed line (`meshtel stat`,
 *   `meshtel lint`, tests);
 * - {@link parseExpositionFamilies}: metric families with their metadata, never throwing (the sidecar's
 *   merged :15020 scrape reads an app's page with it on the request path, to re-render it in the format
 *   the scraper negotiated).
 *
 * Written by hand because the format is small and no maintained Node parser exists in our
 * dependencies (prom-client only writes it). Format references: prometheus/common `expfmt/text_parse.go`,
 * prometheus/prometheus `model/textparse/openmetricsparse.go`, the OpenMetrics 1.0 specification.
 */
import { DecodeError } from '../core/errors.js';

/** One sample line. */
export interface Sample {
  /** Metric name as written, e.g. `istio_request_duration_milliseconds_bucket`. */
  readonly name: string;
  /** Label pairs, in the order written. */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** Timestamp as written: milliseconds in the text format, seconds in OpenMetrics. Absent when none. */
  readonly timestamp?: number;
  /** OpenMetrics exemplar as written after ` # ` (`{trace_id="…"} 1 1700000000.000`). Absent when none. */
  readonly exemplar?: string;
}

/** Parse an exposition body. Malformed lines throw DecodeError naming the line number. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseLine(line, true);
    if (sample === null) {
      throw new DecodeError(`line ${i + 1} is not a Prometheus sample: ${line.slice(0, 120)}`, { line: i + 1 });
    }
    out.push(sample);
  }
  return out;
}

/** One metric family: its `# TYPE`/`# HELP`/`# UNIT` metadata and its samples, in page order. */
export interface ParsedFamily {
  /** Family name as the `# TYPE` line wrote it (OpenMetrics counters without `_total`), or the sample name. */
  readonly name: string;
  /** Type as written (`counter`, `gauge`, `histogram`, `summary`, `untyped`, `unknown`, `info`, ...); `untyped` when none. */
  readonly type: string;
  readonly help: string | undefined;
  readonly unit: string | undefined;
  readonly samples: Sample[];
}

/** Result of {@link parseExpositionFamilies}. */
export type ParseFamiliesResult =
  | { readonly ok: true; readonly families: ParsedFamily[] }
  | { readonly ok: false; readonly line: number; readonly reason: string };

/** Sample name suffixes that belong to a family of each type (OpenMetrics 1.0 §"Metric types"). */
const SUFFIXES: Readonly<Record<string, readonly string[]>> = {
  counter: ['_total', '_created'],
  histogram: ['_bucket', '_sum', '_count', '_created'],
  gaugehistogram: ['_bucket', '_gsum', '_gcount'],
  summary: ['_sum', '_count', '_created'],
  info: ['_info'],
};

function belongs(family: ParsedFamily, sample: string): boolean {
  if (sample === family.name) return true;
  if (!sample.startsWith(family.name)) return false;
  const suffix = sample.slice(family.name.length);
  return (SUFFIXES[family.type] ?? []).includes(suffix);
}

/**
 * Parse a page into metric families, never throwing. `format` decides the dialect: OpenMetrics needs a
 * final `# EOF` (a page without one was cut short) and nothing after it, and allows exemplars and `# UNIT`.
 */
export function parseExpositionFamilies(text: string, format: 'text' | 'openmetrics'): ParseFamiliesResult {
  const om = format === 'openmetrics';
  const families: ParsedFamily[] = [];
  let current: ParsedFamily | undefined;
  let eof = false;
  const meta = (name: string): ParsedFamily => {
    if (current?.name === name && current.samples.length === 0) return current;
    current = { name, type: 'untyped', help: undefined, unit: undefined, samples: [] };
    families.push(current);
    return current;
  };
  let lineNo = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    lineNo++;
    if (eof) return { ok: false, line: lineNo, reason: 'content after # EOF' };
    if (line === '') {
      if (om) return { ok: false, line: lineNo, reason: 'empty line' };
      continue;
    }
    if (line.charCodeAt(0) === 35 /* # */) {
      if (line === '# EOF') {
        if (!om) return { ok: false, line: lineNo, reason: '# EOF in the text format' };
        eof = true;
        continue;
      }
      const m = /^#\s+(HELP|TYPE|UNIT)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s(.*))?$/.exec(line);
      if (m === null) {
        // Text allows free comments; OpenMetrics only the three keywords and EOF.
        if (om) return { ok: false, line: lineNo, reason: 'unknown comment' };
        continue;
      }
      const [, keyword, name = '', rest = ''] = m;
      const f = meta(name);
      const mutable = f as { type: string; help: string | undefined; unit: string | undefined };
      if (keyword === 'TYPE') {
        const type = rest.trim();
        if (!/^[a-z]+$/.test(type)) return { ok: false, line: lineNo, reason: `bad type ${JSON.stringify(type)}` };
        mutable.type = type;
      } else if (keyword === 'HELP') {
        mutable.help = unescapeHelp(rest);
      } else {
        if (!om) return { ok: false, line: lineNo, reason: '# UNIT in the text format' };
        mutable.unit = rest.trim();
      }
      continue;
    }
    const sample = parseLine(line, om);
    if (sample === null) return { ok: false, line: lineNo, reason: 'malformed sample' };
    if (current === undefined || !belongs(current, sample.name)) {
      current = { name: sample.name, type: 'untyped', help: undefined, unit: undefined, samples: [] };
      families.push(current);
    }
    current.samples.push(sample);
  }
  if (om && !eof) return { ok: false, line: lineNo, reason: 'no # EOF (page cut short)' };
  return { ok: true, families };
}

/** An exemplar's parts: labels, value and (seconds) timestamp. */
export interface ParsedExemplar {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestamp?: number;
}

/** Parse an OpenMetrics exemplar as {@link Sample.exemplar} holds it (`{trace_id="…"} 1 1700000000.000`); undefined when malformed. */
export function parseExemplar(text: string): ParsedExemplar | undefined {
  if (!text.startsWith('{')) return undefined;
  // An exemplar is a sample line without a name; parse it as one under a placeholder name.
  const s = parseLine(`e${text}`, false);
  if (s === null) return undefined;
  return s.timestamp === undefined ? { labels: s.labels, value: s.value } : { labels: s.labels, value: s.value, timestamp: s.timestamp };
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** `[a-zA-Z_:]` (first) and `[a-zA-Z0-9_:]` (rest) of metric names; label names exclude `:`. */
function isNameChar(c: number, first: boolean, colon: boolean): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (colon && c === 58) || (!first && c >= 48 && c <= 57);
}

/**
 * Read `name="value"` pairs (separated by `,` and spaces, values with `\\`, `\"` and `\n` escapes) from `i` into
 * `out`; returns the index of the first character that is not part of a pair (`}` in a sample line, the end of a
 * bare label string), or -1 when a pair is malformed.
 */
function readLabels(text: string, i: number, out: Record<string, string>): number {
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i++;
    if (i >= text.length || text[i] === '}') return i;
    const start = i;
    while (i < text.length && isNameChar(text.charCodeAt(i), i === start, false)) i++;
    const key = text.slice(start, i);
    if (key === '' || text[i] !== '=' || text[i + 1] !== '"') return -1;
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) return -1;
      if (c === '\\') {
        const n = text[i + 1];
        value += n === 'n' ? '\n' : (n ?? '');
        i += 2;
        continue;
      }
      i++;
      if (c === '"') break;
      value += c;
    }
    out[key] = value;
  }
}

/**
 * Parse a rendered label string without braces (`a="x",b="y\\"z"`, as the recorder keeps it per series) into an
 * object; a malformed string yields the pairs before the fault.
 */
export function parseLabelString(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  readLabels(s, 0, out);
  return out;
}

function parseLine(line: string, allowExemplar: boolean): Sample | null {
  let i = 0;
  while (i < line.length && isNameChar(line.charCodeAt(i), i === 0, true)) i++;
  const name = line.slice(0, i);
  if (name === '') return null;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i = readLabels(line, i + 1, labels);
    if (i < 0 || line[i] !== '}') return null;
    i++;
  }
  // value [timestamp] [# exemplar]
  let rest = line.slice(i).trim();
  let exemplar: string | undefined;
  const hash = rest.indexOf(' # ');
  if (hash !== -1) {
    if (!allowExemplar) return null;
    exemplar = rest.slice(hash + 3).trim();
    if (!exemplar.startsWith('{')) return null;
    rest = rest.slice(0, hash).trim();
  }
  const tokens = rest.split(/\s+/);
  if (tokens.length > 2) return null;
  const value = parseValue(tokens[0] ?? '');
  if (value === null) return null;
  const sample: { name: string; labels: Record<string, string>; value: number; timestamp?: number; exemplar?: string } = { name, labels, value };
  if (tokens[1] !== undefined) {
    const ts = Number(tokens[1]);
    if (!Number.isFinite(ts)) return null;
    sample.timestamp = ts;
  }
  if (exemplar !== undefined) sample.exemplar = exemplar;
  return sample;
}

/**
 * A sample value as Prometheus reads it: Go's `strconv.ParseFloat`, which matches `NaN`, `Inf` and `Infinity`
 * (signed or not) ignoring case. prom-client, for one, writes `Nan` for an event-loop gauge that has no
 * sample yet, and Prometheus ingests it.
 */
function parseValue(text: string): number | null {
  if (text === '') return null;
  const n = Number(text);
  if (!Number.isNaN(n)) return text.trim() === text ? n : null;
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  const unsigned = lower[0] === '+' || lower[0] === '-' ? lower.slice(1) : lower;
  if (unsigned === 'inf' || unsigned === 'infinity') return lower[0] === '-' ? -Infinity : Infinity;
  return null;
}

/**
 * A small parser for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, enough
 * for `meshtel stat` to read a merged :15020/stats/prometheus endpoint: sample lines with labels,
 * escaped label values, optional timestamps and exemplars; comments and `# EOF` skipped.
 *
 * Written by hand because the format is small and no maintained Node parser exists in our
 * dependencies (prom-client only writes it). Format reference: prometheus/common `expfmt/text_parse.go`.
 */
import { DecodeError } from '../core/errors.js';

/** One sample line. */
export interface Sample {
  /** Metric name as written, e.g. `istio_request_duration_milliseconds_bucket`. */
  readonly name: string;
  /** Label pairs, in the order written. */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parse an exposition body. Malformed lines throw DecodeError naming the line number. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (sample === null) {
      throw new DecodeError(`line ${i + 1} is not a Prometheus sample: ${line.slice(0, 120)}`, { line: i + 1 });
    }
    out.push(sample);
  }
  return out;
}

function parseLine(line: string): Sample | null {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i] ?? '')) i++;
  const name = line.slice(0, i);
  if (name === '') return null;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const start = i;
      while (i < line.length && /[a-zA-Z0-9_]/.test(line[i] ?? '')) i++;
      const key = line.slice(start, i);
      if (key === '' || line[i] !== '=' || line[i + 1] !== '"') return null;
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return null;
        if (c === '\\') {
          const n = line[i + 1];
          value += n === 'n' ? '\n' : (n ?? '');
          i += 2;
          continue;
        }
        i++;
        if (c === '"') break;
        value += c;
      }
      labels[key] = value;
    }
  }
  const rest = line.slice(i).trim();
  // value [timestamp] [# exemplar]
  const valueText = rest.split(/\s+/)[0] ?? '';
  const value = parseValue(valueText);
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(text: string): number | null {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (text === '') return null;
  const n = Number(text);
  return Number.isNaN(n) ? null : n;
}

/**
 * The pieces of pilot-agent's merged scrape (:15020/stats/prometheus) that make one valid page out of
 * three sources in the format the scraper negotiated: the agent's own metrics, the proxy's and the app's.
 *
 * pilot-agent (istio/istio `pilot/cmd/pilot-agent/status/server.go` `handleStats`) copies the three
 * bodies one after the other and lets the Content-Type follow the app. When the app speaks OpenMetrics
 * and the other two parts are text, the page is neither: Prometheus 2.42 rejects it (`expected a valid
 * start token`, or counters without `_total`) and the pod loses every metric. Here every foreign part is
 * parsed ({@link parseExpositionFamilies}, or `decodeProtobufPage` for a protobuf app) and re-rendered in
 * the negotiated format ({@link convertPage}: text 0.0.4, OpenMetrics or delimited protobuf, from any of
 * the three), and exactly one `# EOF` ends an OpenMetrics page. Istio 1.31 instead limits :15020 to text
 * (istio/istio#60322), so native histograms cannot pass through it.
 */
import { escapeHelp, labelsOf, num } from '../stats/exposition.js';
import type { ExpositionFormat, TextFormat } from '../stats/media-types.js';
import { parseExpositionFamilies } from '../stats/exposition-parser.js';
import type { ParsedFamily, Sample } from '../stats/exposition-parser.js';
import { decodeProtobufPage, encodeProtobufFamilies, parsedToProtobuf, protobufToParsed } from '../stats/exposition-protobuf.js';

const EOF_LINE = Buffer.from('# EOF\n');

/** `# HELP` text: both formats escape `\` and newline; OpenMetrics also escapes `"`. */
function helpText(help: string, om: boolean): string {
  const s = escapeHelp(help);
  return om ? s.replace(/"/g, '\\"') : s;
}

/**
 * The family name and type as the target format writes them, and the name each sample takes.
 * Text → OpenMetrics: counters are named without `_total` and every sample ends in `_total` (or
 * `_created`); `untyped` is `unknown`. OpenMetrics → text: counters are named with `_total`; `unknown`
 * is `untyped`, `info` and `stateset` are gauges; a gauge histogram (no text equivalent) stays untyped.
 */
function shapeFor(f: ParsedFamily, om: boolean): { name: string; type: string | undefined; sample: (s: Sample) => string } {
  const same = (s: Sample): string => s.name;
  if (om) {
    switch (f.type) {
      case 'counter': {
        const name = f.name.endsWith('_total') ? f.name.slice(0, -6) : f.name;
        return { name, type: 'counter', sample: (s) => (s.name === `${name}_total` || s.name === `${name}_created` ? s.name : `${name}_total`) };
      }
      case 'untyped':
        return { name: f.name, type: 'unknown', sample: same };
      default:
        return { name: f.name, type: f.type, sample: same };
    }
  }
  switch (f.type) {
    case 'counter': {
      const name = f.name.endsWith('_total') ? f.name : `${f.name}_total`;
      return { name, type: 'counter', sample: same };
    }
    case 'unknown':
      return { name: f.name, type: 'untyped', sample: same };
    case 'info':
      return { name: `${f.name}_info`, type: 'gauge', sample: same };
    case 'stateset':
      return { name: f.name, type: 'gauge', sample: same };
    case 'gauge':
    case 'histogram':
    case 'summary':
    case 'untyped':
      return { name: f.name, type: f.type, sample: same };
    default:
      return { name: f.name, type: undefined, sample: same };
  }
}

/**
 * Render parsed families in `to`, which were parsed from a page in `from` (timestamps are milliseconds in
 * the text format and seconds in OpenMetrics). Exemplars and `# UNIT` survive into OpenMetrics only. No
 * `# EOF`: the caller writes the one that ends the whole page.
 */
export function renderParsedFamilies(families: readonly ParsedFamily[], from: TextFormat, to: TextFormat): string {
  const om = to === 'openmetrics';
  const scale = from === to ? 1 : om ? 1 / 1000 : 1000;
  let out = '';
  for (const f of families) {
    const shape = shapeFor(f, om);
    // A family without metadata stays without it (its samples are untyped in both formats).
    const hasMeta = f.type !== 'untyped' || f.help !== undefined;
    if (hasMeta && shape.type !== undefined) {
      if (f.help !== undefined) out += `# HELP ${shape.name} ${helpText(f.help, om)}\n`;
      out += `# TYPE ${shape.name} ${shape.type}\n`;
      if (om && f.unit !== undefined && f.unit !== '') out += `# UNIT ${shape.name} ${f.unit}\n`;
    }
    for (const s of f.samples) {
      out += `${shape.sample(s)}${labelsOf(s.labels)} ${num(s.value)}`;
      if (s.timestamp !== undefined) out += ` ${om ? String(s.timestamp * scale) : String(Math.round(s.timestamp * scale))}`;
      if (om && s.exemplar !== undefined) out += ` # ${s.exemplar}`;
      out += '\n';
    }
  }
  return out;
}

/**
 * Pass an OpenMetrics byte stream through without its final `# EOF` line (the merged page writes one
 * at its very end). The last few bytes are held back until the stream ends, so an `# EOF` split across
 * chunks is still recognised.
 */
export async function* withoutEof(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let held: Buffer = Buffer.alloc(0);
  for await (const c of chunks) {
    if (c.length === 0) continue;
    const all = held.length === 0 ? c : Buffer.concat([held, c]);
    if (all.length > EOF_LINE.length) {
      yield all.subarray(0, all.length - EOF_LINE.length);
      held = Buffer.from(all.subarray(all.length - EOF_LINE.length));
    } else held = all;
  }
  if (held.equals(EOF_LINE)) return;
  if (held.length > 0) yield held;
}

/** Result of {@link convertPage}: the page in the target format, or why it could not be read. */
export type ConvertedPage = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly reason: string };

/**
 * A whole page read in `from` and written in `to` (an OpenMetrics result has no `# EOF`: the merged page
 * writes one at its very end). Converted even when the formats agree: a page that parses is known valid,
 * so nothing the app writes can break the merged page. A protobuf page into protobuf is passed through
 * record by record once every record decoded and checked (native histograms survive unchanged); into
 * text or OpenMetrics it keeps the classic buckets only (the text formats have no native buckets).
 */
export function convertPage(body: Buffer, from: ExpositionFormat, to: ExpositionFormat): ConvertedPage {
  if (from === 'protobuf') {
    const page = decodeProtobufPage(body);
    if (!page.ok) return { ok: false, reason: `byte ${page.offset}: ${page.reason}` };
    if (to === 'protobuf') return { ok: true, body: Buffer.concat(page.raw) };
    return { ok: true, body: Buffer.from(renderParsedFamilies(protobufToParsed(page.families), 'text', to), 'utf8') };
  }
  const parsed = parseExpositionFamilies(body.toString('utf8'), from);
  if (!parsed.ok) return { ok: false, reason: `line ${parsed.line}: ${parsed.reason}` };
  if (to === 'protobuf') return { ok: true, body: encodeProtobufFamilies(parsedToProtobuf(parsed.families, from)) };
  return { ok: true, body: Buffer.from(renderParsedFamilies(parsed.families, from, to), 'utf8') };
}

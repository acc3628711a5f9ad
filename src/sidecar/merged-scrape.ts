/**
 * The pieces of pilot-agent's merged scrape (:15020/stats/prometheus) that make one valid page out of
 * three sources in the format the scraper negotiated: the agent's own metrics, the proxy's and the app's.
 *
 * pilot-agent (istio/istio `pilot/cmd/pilot-agent/status/server.go` `handleStats`) copies the three
 * bodies one after the other and lets the Content-Type follow the app. When the app speaks OpenMetrics
 * and the other two parts are text, the page is neither: Prometheus 2.42 rejects it (`expected a valid
 * start token`, or counters without `_total`) and the pod loses every metric. Here every foreign part is
 * parsed ({@link parseExpositionFamilies}) and re-rendered in the negotiated format, and exactly one
 * `# EOF` ends an OpenMetrics page.
 */
import { escapeHelp, labelsOf, num } from '../stats/exposition.js';
import type { ExpositionFormat } from '../stats/exposition.js';
import type { ParsedFamily, Sample } from '../stats/exposition-parser.js';

/** OpenMetrics content types start with this (any version). */
export const OPENMETRICS_MEDIA_TYPE = 'application/openmetrics-text';

/** The format of a response's Content-Type: OpenMetrics when it says so, else the text format. */
export function formatOfContentType(contentType: string | undefined): ExpositionFormat {
  return contentType !== undefined && contentType.trimStart().toLowerCase().startsWith(OPENMETRICS_MEDIA_TYPE) ? 'openmetrics' : 'text';
}

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
export function renderParsedFamilies(families: readonly ParsedFamily[], from: ExpositionFormat, to: ExpositionFormat): string {
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
      if (om && s.exemplar !== undefined && from === 'openmetrics') out += ` # ${s.exemplar}`;
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

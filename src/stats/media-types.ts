/**
 * The exposition formats meshtel speaks, their media types and the `Accept` negotiation: the one place
 * these are written (:15090, the merged :15020, the embedding's metricsResponse() and the app-page reader
 * of the merged scrape all call it, so what is served and what is recognised cannot drift apart).
 *
 * Media types are the ones Prometheus sends and client_golang serves (prometheus/common `expfmt`,
 * prometheus/prometheus `scrape/scrape.go` `scrapeAcceptHeader*`).
 */

/** The two text dialects: Prometheus text 0.0.4 and OpenMetrics 1.0.0. */
export type TextFormat = 'text' | 'openmetrics';

/** Every exposition format: the text dialects and the length-delimited `client_model` protobuf. */
export type ExpositionFormat = TextFormat | 'protobuf';

/** `Content-Type` of the text format 0.0.4. */
export const PROMETHEUS_TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Media type (no parameters) of OpenMetrics text, any version. */
export const OPENMETRICS_MEDIA_TYPE = 'application/openmetrics-text';
/** `Content-Type` of OpenMetrics 1.0.0. */
export const OPENMETRICS_CONTENT_TYPE = `${OPENMETRICS_MEDIA_TYPE}; version=1.0.0; charset=utf-8`;
/** Media type (no parameters) of the protobuf exposition. */
export const PROTOBUF_MEDIA_TYPE = 'application/vnd.google.protobuf';
/** The `proto` parameter of the protobuf exposition: the message type of each delimited record. */
export const PROTOBUF_PROTO = 'io.prometheus.client.MetricFamily';
/** `Content-Type` of the protobuf exposition: varint-length-delimited `MetricFamily` messages. */
export const PROTOBUF_CONTENT_TYPE = `${PROTOBUF_MEDIA_TYPE}; proto=${PROTOBUF_PROTO}; encoding=delimited`;

/** The `Content-Type` a format is served with. */
export function contentTypeOf(format: ExpositionFormat): string {
  if (format === 'openmetrics') return OPENMETRICS_CONTENT_TYPE;
  if (format === 'protobuf') return PROTOBUF_CONTENT_TYPE;
  return PROMETHEUS_TEXT_CONTENT_TYPE;
}

interface MediaRange {
  readonly type: string;
  readonly params: ReadonlyMap<string, string>;
  readonly q: number;
}

/** Parse one `Accept`/`Content-Type` entry: lower-cased type, parameters (values unquoted) and `q` (1 by default). */
function parseMediaRange(part: string): MediaRange | undefined {
  const [type = '', ...rest] = part.split(';').map((s) => s.trim());
  if (type === '') return undefined;
  const params = new Map<string, string>();
  let q = 1;
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    const key = p.slice(0, eq).trim().toLowerCase();
    const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    if (key === 'q') {
      // RFC 9110 qvalue: 0 to 1 with at most three decimals; anything else makes the entry unusable.
      q = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(value) ? Number(value) : -1;
    } else params.set(key, value);
  }
  return { type: type.toLowerCase(), params, q };
}

/**
 * The format an entry asks for, or undefined for a media type we do not serve. Protobuf only with
 * `proto=io.prometheus.client.MetricFamily` and `encoding=delimited` (the text and compact-text protobuf
 * encodings of old Prometheus are not served, as client_golang's `expfmt.Negotiate` does).
 */
function formatOfRange(r: MediaRange): ExpositionFormat | undefined {
  switch (r.type) {
    case PROTOBUF_MEDIA_TYPE:
      return r.params.get('proto') === PROTOBUF_PROTO && r.params.get('encoding') === 'delimited' ? 'protobuf' : undefined;
    case OPENMETRICS_MEDIA_TYPE: {
      const v = r.params.get('version');
      return v === undefined || v === '1.0.0' || v === '0.0.1' ? 'openmetrics' : undefined;
    }
    case 'text/plain': {
      const v = r.params.get('version');
      return v === undefined || v === '0.0.4' ? 'text' : undefined;
    }
    case 'text/*':
    case '*/*':
      return 'text';
    default:
      return undefined;
  }
}

/** At equal quality the richer format wins: protobuf, then OpenMetrics, then text. */
const PREFERENCE: Readonly<Record<ExpositionFormat, number>> = { protobuf: 3, openmetrics: 2, text: 1 };

/**
 * Choose the format from an `Accept` header: the served format with the highest quality, q-values
 * honoured as Prometheus sends them (with `--enable-feature=native-histograms` 2.42 asks for
 * `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,
 * application/openmetrics-text;version=1.0.0;q=0.8,…,text/plain;version=0.0.4;q=0.5,*\/*;q=0.1`). Entries
 * with `q=0` are refused. Ties go to the richer format. Text 0.0.4 for a missing, unparsable or
 * unsatisfiable header, as client_golang falls back.
 */
export function negotiateFormat(accept?: string | string[]): ExpositionFormat {
  const header = Array.isArray(accept) ? accept.join(',') : accept;
  if (header === undefined || header === '') return 'text';
  let best: ExpositionFormat = 'text';
  let bestQ = 0;
  for (const part of header.split(',')) {
    const r = parseMediaRange(part);
    if (r === undefined || r.q <= 0) continue;
    const f = formatOfRange(r);
    if (f === undefined) continue;
    if (r.q > bestQ || (r.q === bestQ && PREFERENCE[f] > PREFERENCE[best])) {
      best = f;
      bestQ = r.q;
    }
  }
  return best;
}

/**
 * The format of a response's `Content-Type` (an app page read by the merged scrape): OpenMetrics or
 * delimited protobuf when it says so, the text format otherwise (Prometheus's own fallback for an
 * unknown or missing type). A protobuf type that is not delimited `MetricFamily` is undefined: it cannot
 * be read as any exposition.
 */
export function formatOfContentType(contentType: string | undefined): ExpositionFormat | undefined {
  if (contentType === undefined) return 'text';
  const r = parseMediaRange(contentType);
  if (r === undefined) return 'text';
  if (r.type === OPENMETRICS_MEDIA_TYPE) return 'openmetrics';
  if (r.type === PROTOBUF_MEDIA_TYPE) return formatOfRange({ ...r, q: 1 });
  return 'text';
}

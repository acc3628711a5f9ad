/**
 * Prometheus exposition of meshtel's families (and, after them, every other metric of the given
 * prom-client registries): text format 0.0.4, OpenMetrics 1.0.0 or delimited protobuf (client_model,
 * with native histograms; exposition-protobuf.ts) chosen by `Accept` (media-types.ts), gzip when asked,
 * produced as an async stream of chunks with a `setImmediate` between chunks.
 *
 * Why not `registry.metrics()`: it builds the whole body as one string, so ~10k Istio label sets
 * (≈500 MB of text) hit V8's string limit, and 1k label sets block the event loop for ~160 ms
 * (perf-anchors §3a, prom-client #543). Here each series' label string was rendered once when the
 * series was created; a scrape only concatenates it with numbers, chunk by chunk.
 *
 * Format: envoy `source/server/admin/prometheus_stats.cc` (`# TYPE` per family, `_bucket{…,le="…"}`
 * cumulative then `+Inf`, `_sum`, `_count`; `le` printed with `%.32g`). Series come in creation order
 * (Envoy sorts them; Prometheus does not require an order). meshtel adds `# HELP` lines, which Envoy
 * does not print. Exemplars (trace ids) are written in OpenMetrics and protobuf, not in text 0.0.4.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Registry, RegistryContentType } from 'prom-client';
import { formatLe } from './definitions.js';
import type { HistogramSeries, ScalarSeries} from './series.js';
import { escapeLabelValue, type Exemplar, type Family, type Series } from './series.js';
import { MESHTEL_COLLECTOR } from './registry-bridge.js';
import type { IstioStats } from './istio-stats.js';
import { contentTypeOf, negotiateFormat, type ExpositionFormat } from './media-types.js';
import { encodeProtobufFamilies, parsedToProtobuf, renderProtobufFamilies } from './exposition-protobuf.js';
import { parseExpositionFamilies } from './exposition-parser.js';

export {
  PROMETHEUS_TEXT_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
  contentTypeOf,
  negotiateFormat,
} from './media-types.js';
export type { ExpositionFormat, TextFormat } from './media-types.js';

/** True when an `Accept-Encoding` header accepts gzip (q > 0). */
export function acceptsGzip(acceptEncoding?: string | string[]): boolean {
  const header = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  if (!header) return false;
  for (const part of header.split(',')) {
    const [enc = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (enc !== 'gzip' && enc !== 'x-gzip') continue;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

/**
 * What {@link renderMetrics} reads: meshtel's families and the registry whose other metrics follow them. A recorder
 * is one; the primary of `meshtel sidecar --concurrency N` passes the families merged over its workers.
 */
export type RenderSource = Pick<IstioStats, 'families' | 'registry'>;

/** Options of {@link renderMetrics}. */
export interface RenderOptions {
  /**
   * prom-client registries whose other (non-meshtel) metrics are appended after meshtel's families.
   * Default: the stats' own registry, so an app that passed its registry gets everything in one body.
   */
  readonly registries?: readonly Registry<RegistryContentType>[];
  /** Chunk size in bytes (default 65 536; a single longer line gets its own larger chunk). */
  readonly chunkSize?: number;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A sample value as both formats write it (`NaN`, `+Inf`, `-Inf`, else the shortest round-trip decimal). */
export function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function exemplarSuffix(e: Exemplar | undefined): string {
  if (e === undefined) return '';
  return ` # {trace_id="${escapeLabelValue(e.traceId)}"} ${num(e.value)} ${e.timestamp.toFixed(3)}`;
}

/** OpenMetrics family name: counters drop `_total`. */
function omFamilyName(name: string, type: string): string {
  return type === 'counter' && name.endsWith('_total') ? name.slice(0, -6) : name;
}

/** `# HELP` escaping both formats share: `\` and newline. */
export function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/**
 * Writes the exposition into fixed-size Buffers. Why bytes and not strings: a histogram repeats its
 * ~1 KB label string on 22 lines; encoding it once per scrape and copying the bytes (memcpy) is far
 * cheaper than building and UTF-8-encoding 22 concatenated strings (measured in bench/stats.bench.ts).
 */
class ChunkWriter {
  private buf: Buffer;
  private off = 0;
  private readonly chunks: Buffer[] = [];
  /** Remaining slab the next chunks are carved from. */
  private slab: Buffer = Buffer.alloc(0);
  constructor(private readonly size: number) {
    this.buf = this.next(size);
  }

  /**
   * Chunks are carved from 1 MiB slabs: every separate Buffer is external memory, and allocating
   * thousands of 64 KiB ones made V8 run a full mark-compact every few chunks (seen with --trace-gc,
   * pauses up to ~100 ms during a 10k-label-set scrape).
   */
  private next(n: number): Buffer {
    if (this.slab.length < n) this.slab = Buffer.allocUnsafe(Math.max(n, this.size * 16));
    const b = this.slab.subarray(0, n);
    this.slab = this.slab.subarray(n);
    return b;
  }

  /** Make room for `n` bytes, moving the filled part to the ready list when needed. */
  private room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    if (this.off > 0) this.chunks.push(this.buf.subarray(0, this.off));
    this.buf = this.next(Math.max(this.size, n));
    this.off = 0;
  }

  /** Append a string (UTF-8). */
  str(s: string): void {
    const n = Buffer.byteLength(s);
    this.room(n);
    this.off += this.buf.write(s, this.off, 'utf8');
  }

  /** Append an ASCII-only string (numbers, prefixes): no UTF-8 length pass. */
  ascii(s: string): void {
    this.room(s.length);
    this.off += this.buf.write(s, this.off, 'latin1');
  }

  /** Append bytes. */
  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.off);
    this.off += b.length;
  }

  /** Chunks completed so far (taken). */
  take(): Buffer[] {
    return this.chunks.splice(0, this.chunks.length);
  }

  /** Everything written, the current partial chunk included. */
  finish(): Buffer[] {
    if (this.off > 0) this.chunks.push(this.buf.subarray(0, this.off));
    this.off = 0;
    this.buf = Buffer.allocUnsafe(0);
    return this.take();
  }

  get pending(): number {
    return this.chunks.length;
  }
}

/** Per-family byte prefixes, encoded once per scrape. */
function familyBytes(f: Family, sampleName: string): { bucket: Buffer; les: Buffer[]; sum: Buffer; count: Buffer; name: Buffer } {
  const les = f.buckets.map((b) => Buffer.from(`le="${formatLe(b)}"} `));
  les.push(Buffer.from('le="+Inf"} '));
  return {
    // OpenMetrics counter samples end in _total even when the family name does not (custom metrics).
    name: Buffer.from(sampleName),
    bucket: Buffer.from(`${f.name}_bucket{`),
    les,
    sum: Buffer.from(`${f.name}_sum`),
    count: Buffer.from(`${f.name}_count`),
  };
}

const OPEN = Buffer.from('{');
const CLOSE_SP = Buffer.from('} ');
const SP = Buffer.from(' ');
const NL = Buffer.from('\n');

/** Render one family into the writer, yielding (with `take()`) as chunks fill. */
function* familyInto(w: ChunkWriter, f: Family, om: boolean): Generator<void> {
  const all: Series[] = [...f.series.values()];
  if (f.overflowSeries !== undefined) all.push(f.overflowSeries);
  if (all.length === 0) return;
  const fam = om ? omFamilyName(f.name, f.type) : f.name;
  w.str(`# HELP ${fam} ${escapeHelp(f.help)}\n# TYPE ${fam} ${f.type}\n`);
  const fb = familyBytes(f, om && f.type === 'counter' && !f.name.endsWith('_total') ? `${f.name}_total` : f.name);
  let scratch = Buffer.allocUnsafe(4096);
  for (const s of all) {
    if (w.pending > 0) yield;
    if (f.type === 'histogram') {
      const h = s as HistogramSeries;
      // Encode the label string once for this series; every line copies the bytes.
      const n = Buffer.byteLength(h.labels);
      if (n + 1 > scratch.length) scratch = Buffer.allocUnsafe(n * 2 + 1);
      let ln = scratch.write(h.labels, 0, 'utf8');
      if (ln > 0) ln += scratch.write(',', ln, 'latin1');
      const lab = scratch.subarray(0, ln);
      let cum = 0;
      for (let i = 0; i < fb.les.length; i++) {
        cum += h.counts[i] as number;
        w.bytes(fb.bucket);
        w.bytes(lab);
        w.bytes(fb.les[i] as Buffer);
        w.ascii(String(cum));
        if (om && h.exemplars?.[i] !== undefined) w.str(exemplarSuffix(h.exemplars[i]));
        w.bytes(NL);
      }
      const plain = ln > 0 ? lab.subarray(0, ln - 1) : f.emptyBraces ? lab : undefined;
      for (const [prefix, v] of [
        [fb.sum, num(h.sum)],
        [fb.count, String(h.count)],
      ] as const) {
        w.bytes(prefix);
        if (plain !== undefined) {
          w.bytes(OPEN);
          w.bytes(plain);
          w.bytes(CLOSE_SP);
        } else w.bytes(SP);
        w.ascii(v);
        w.bytes(NL);
      }
    } else {
      const c = s as ScalarSeries;
      w.bytes(fb.name);
      if (c.labels !== '' || f.emptyBraces) {
        w.bytes(OPEN);
        w.str(c.labels);
        w.bytes(CLOSE_SP);
      } else w.bytes(SP);
      w.ascii(num(c.value));
      if (om && f.type === 'counter' && c.exemplar !== undefined) w.str(exemplarSuffix(c.exemplar));
      w.bytes(NL);
    }
  }
}

/** `{k="v",…}` in the labels' own order (`''` for none), values escaped; undefined values are left out. */
export function labelsOf(labels: Readonly<Record<string, string | number | undefined>> | undefined): string {
  if (labels === undefined) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (v === undefined) continue;
    parts.push(`${k}="${escapeLabelValue(String(v))}"`);
  }
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

interface ForeignValue {
  value: number;
  labels?: Record<string, string | number | undefined>;
  metricName?: string;
  exemplar?: { labelSet?: Record<string, string | number>; value?: number; timestamp?: number } | null;
}

/** Render a prom-client metric (the app's own) through its public `get()`. */
async function foreignLines(metric: { get(): unknown }, om: boolean): Promise<string> {
  const m = (await metric.get()) as { name: string; help: string; type: string; values?: ForeignValue[] };
  const fam = om ? omFamilyName(m.name, m.type) : m.name;
  let out = `# HELP ${fam} ${escapeHelp(m.help)}\n# TYPE ${fam} ${m.type}\n`;
  for (const v of m.values ?? []) {
    let name = v.metricName ?? m.name;
    if (om && m.type === 'counter' && !name.endsWith('_total')) name = `${name}_total`;
    out += `${name}${labelsOf(v.labels)} ${num(v.value)}`;
    if (om && v.exemplar?.labelSet !== undefined) {
      out += ` # ${labelsOf(v.exemplar.labelSet) || '{}'} ${num(v.exemplar.value ?? 0)}${v.exemplar.timestamp !== undefined ? ` ${v.exemplar.timestamp}` : ''}`;
    }
    out += '\n';
  }
  return out;
}

/** The prom-client metrics rendered after meshtel's families: each name once, meshtel's own collectors left out. */
function* foreignMetrics(stats: RenderSource, options: RenderOptions): Generator<{ name: string; get(): unknown }> {
  const registries = options.registries ?? [stats.registry];
  const seen = new Set<string>();
  for (const r of registries) {
    for (const metric of r.getMetricsAsArray() as unknown as ({ name: string; get(): unknown } & Record<symbol, unknown>)[]) {
      if (metric[MESHTEL_COLLECTOR] === true || seen.has(metric.name)) continue;
      seen.add(metric.name);
      yield metric;
    }
  }
}

/**
 * The protobuf exposition: meshtel's families encoded directly, then each prom-client metric through its
 * text rendering, parsed and converted (prom-client writes no protobuf; its pages are small).
 */
async function* renderProtobuf(stats: RenderSource, options: RenderOptions): AsyncGenerator<Buffer> {
  yield* renderProtobufFamilies(stats.families());
  for (const metric of foreignMetrics(stats, options)) {
    const parsed = parseExpositionFamilies(await foreignLines(metric, false), 'text');
    // prom-client's text is always valid; a family it cannot express is left out rather than breaking the page.
    if (parsed.ok) yield encodeProtobufFamilies(parsedToProtobuf(parsed.families, 'text'));
  }
}

/**
 * Render the exposition as an async stream of UTF-8 byte chunks (about `chunkSize` bytes each).
 * Between chunks the event loop runs (`setImmediate`), so a large scrape never blocks the proxy for long.
 */
export async function* renderMetrics(stats: RenderSource, format: ExpositionFormat, options: RenderOptions = {}): AsyncGenerator<Buffer> {
  if (format === 'protobuf') {
    yield* renderProtobuf(stats, options);
    return;
  }
  const om = format === 'openmetrics';
  const w = new ChunkWriter(options.chunkSize ?? 65_536);
  for (const f of stats.families()) {
    const it = familyInto(w, f, om);
    while (it.next().done !== true) {
      for (const c of w.take()) {
        yield c;
        await yieldToLoop();
      }
    }
  }
  for (const metric of foreignMetrics(stats, options)) {
    w.str(await foreignLines(metric, om));
    for (const c of w.take()) {
      yield c;
      await yieldToLoop();
    }
  }
  if (om) w.ascii('# EOF\n');
  for (const c of w.finish()) yield c;
}

/** Render the whole exposition into one string (tests, small registries; text formats). */
export async function renderMetricsToString(stats: RenderSource, format: ExpositionFormat, options?: RenderOptions): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of renderMetrics(stats, format, options)) parts.push(c);
  return Buffer.concat(parts).toString('utf8');
}

/**
 * A response body from a stream of byte chunks, gzip-compressed when `gzip` is set. A failure of the source
 * destroys the compressed stream, so the response is aborted rather than silently truncated.
 */
export function streamBody(chunks: AsyncIterable<Buffer>, gzip: boolean): Readable {
  const source = Readable.from(chunks, { objectMode: false });
  if (!gzip) return source;
  const z: Transform = createGzip();
  source.on('error', (err) => z.destroy(err));
  return source.pipe(z);
}

/** A ready response: headers plus a byte stream (gzip-compressed when negotiated). */
export interface MetricsResponse {
  readonly statusCode: 200;
  readonly headers: Readonly<Record<string, string>>;
  readonly format: ExpositionFormat;
  readonly gzip: boolean;
  readonly body: Readable;
}

/** Build a response for the given request headers, e.g. for fastify: `reply.headers(r.headers).send(r.body)`. */
export function createMetricsResponse(
  stats: IstioStats,
  requestHeaders: { accept?: string | string[] | undefined; 'accept-encoding'?: string | string[] | undefined },
  options?: RenderOptions,
): MetricsResponse {
  const format = negotiateFormat(requestHeaders.accept);
  const gzip = acceptsGzip(requestHeaders['accept-encoding']);
  const body = streamBody(renderMetrics(stats, format, options), gzip);
  const headers: Record<string, string> = { 'content-type': contentTypeOf(format), vary: 'Accept, Accept-Encoding' };
  if (gzip) headers['content-encoding'] = 'gzip';
  return { statusCode: 200, headers, format, gzip, body };
}

/**
 * A `node:http` request handler serving the exposition (works from fastify with
 * `reply.hijack(); handler(request.raw, reply.raw)`). Resolves when the response is finished;
 * errors abort the response and are never thrown.
 */
export function createMetricsHandler(stats: IstioStats, options?: RenderOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const r = createMetricsResponse(stats, req.headers, options);
    res.writeHead(r.statusCode, r.headers);
    if (req.method === 'HEAD') {
      r.body.destroy();
      res.end();
      return;
    }
    try {
      await pipeline(r.body, res);
    } catch {
      res.destroy();
    }
  };
}

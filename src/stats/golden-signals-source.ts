/**
 * Where `meshtel stat` reads from: Prometheus-format endpoints (two scrapes) or a Prometheus server
 * (PromQL over the HTTP API). Both return {@link StatRow}s; failures are MESHTEL_ERR_SCRAPE naming the URL.
 */
import { request } from 'undici';
import { MeshtelError, quote } from '../core/errors.js';
import { parseExposition } from './exposition-parser.js';
import type { Sample } from './exposition-parser.js';
import { computeStat, defaultReporter, groupLabels, sortRows } from './golden-signals.js';
import type { ComputeStatOptions, StatRow } from './golden-signals.js';

/** How long one HTTP read may take before it counts as failed. */
const READ_TIMEOUT_MS = 5000;
/** A metrics body larger than this is refused rather than buffered (a stat run is not a TSDB). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

async function getText(url: string, signal?: AbortSignal): Promise<string> {
  let res;
  try {
    res = await request(url, {
      headers: { accept: 'text/plain;version=0.0.4' },
      headersTimeout: READ_TIMEOUT_MS,
      bodyTimeout: READ_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `cannot read ${url}: ${(err as Error).message}`, { url }, { cause: err });
  }
  const length = Number(res.headers['content-length'] ?? 0);
  if (length > MAX_BODY_BYTES) {
    await res.body.dump();
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${url} answered ${length} bytes, over the ${MAX_BODY_BYTES} limit`, { url });
  }
  // Read with a running total: a chunked body has no content-length to check up front.
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      res.body.destroy();
      throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${url} sent more than the ${MAX_BODY_BYTES}-byte limit`, { url });
    }
    chunks.push(chunk as Buffer);
  }
  const body = Buffer.concat(chunks).toString('utf8');
  if (res.statusCode !== 200) {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${url} answered HTTP ${res.statusCode}: ${quote(body.slice(0, 200))}`, {
      url,
      status: res.statusCode,
    });
  }
  return body;
}

/**
 * Scrape every endpoint once, in parallel. Each endpoint's series get an `__endpoint` label so two
 * replicas reporting the same label set stay two series (their deltas add up afterwards).
 */
export async function scrapeEndpoints(urls: readonly string[], signal?: AbortSignal): Promise<Sample[]> {
  const bodies = await Promise.all(urls.map((u) => getText(u, signal)));
  const out: Sample[] = [];
  bodies.forEach((body, i) => {
    let samples: Sample[];
    try {
      samples = parseExposition(body);
    } catch (err) {
      throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${urls[i]} is not Prometheus text: ${(err as Error).message}`, { url: urls[i] });
    }
    for (const s of samples) out.push({ name: s.name, labels: { ...s.labels, __endpoint: String(i) }, value: s.value });
  });
  return out;
}

/** Options for {@link statFromEndpoints}. */
export interface EndpointStatOptions extends ComputeStatOptions {
  readonly urls: readonly string[];
  readonly intervalMs: number;
  readonly signal?: AbortSignal;
}

/** Two scrapes `intervalMs` apart, then {@link computeStat}. */
export async function statFromEndpoints(options: EndpointStatOptions): Promise<StatRow[]> {
  const before = await scrapeEndpoints(options.urls, options.signal);
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.intervalMs);
    options.signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
  const after = await scrapeEndpoints(options.urls, options.signal);
  // The real elapsed time, not the nominal interval, so a slow scrape does not inflate the rate.
  const seconds = (performance.now() - t0) / 1000;
  return computeStat(before, after, seconds, options);
}

interface PromVectorResult {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(base: string, query: string, time: number, signal?: AbortSignal): Promise<PromVectorResult[]> {
  const url = `${base.replace(/\/+$/, '')}/api/v1/query?query=${encodeURIComponent(query)}&time=${time}`;
  const body = await getText(url, signal);
  let parsed: { status?: string; data?: { resultType?: string; result?: PromVectorResult[] }; error?: string };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${base} did not answer Prometheus API JSON for ${quote(query)}`, { url });
  }
  if (parsed.status !== 'success' || parsed.data?.resultType !== 'vector') {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${base} rejected ${quote(query)}: ${parsed.error ?? 'not a vector'}`, { url });
  }
  return parsed.data.result ?? [];
}

/** Options for {@link statFromPrometheus}. */
export interface PrometheusStatOptions extends ComputeStatOptions {
  /** Prometheus base URL, e.g. http://127.0.0.1:9090. */
  readonly url: string;
  /** PromQL range, e.g. `1m`. */
  readonly window: string;
  readonly signal?: AbortSignal;
}

/** Seconds in a PromQL duration such as `30s`, `1m`, `1h30m`. */
function windowSeconds(window: string): number {
  let total = 0;
  for (const m of window.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : m[2] === 'h' ? n * 3600 : n * 86400;
  }
  return total;
}

/**
 * The same figures through PromQL: `rate` for RPS, the non-5xx share for success, `histogram_quantile`
 * over `rate(..._bucket)` for latency, opened − closed TCP counters for connections.
 */
export async function statFromPrometheus(options: PrometheusStatOptions): Promise<StatRow[]> {
  const reporter = options.reporter ?? defaultReporter(options.resource);
  const fields = groupLabels(options.resource, reporter);
  const by = fields.join(',');
  const sel = `reporter="${reporter}"`;
  const w = options.window;
  // One evaluation time for every query, so the rates of one row cover the same window.
  const time = Date.now() / 1000;
  const q = (expr: string): Promise<PromVectorResult[]> => promQuery(options.url, expr, time, options.signal);
  const [rps, fail, p50, p95, p99, opened, closed] = await Promise.all([
    q(`sum by (${by}) (rate(istio_requests_total{${sel}}[${w}]))`),
    q(`sum by (${by}) (rate(istio_requests_total{${sel},response_code=~"5.*"}[${w}]))`),
    ...[0.5, 0.95, 0.99].map((quantile) =>
      q(`histogram_quantile(${quantile}, sum by (${by},le) (rate(istio_request_duration_milliseconds_bucket{${sel}}[${w}])))`),
    ),
    q(`sum by (${by}) (istio_tcp_connections_opened_total{${sel}})`),
    q(`sum by (${by}) (istio_tcp_connections_closed_total{${sel}})`),
  ]);
  const seconds = windowSeconds(w);
  const key = (m: Record<string, string>): string => fields.map((f) => m[f] ?? '').join('\u0000');
  const index = (rs: PromVectorResult[] | undefined): Map<string, number> =>
    new Map((rs ?? []).map((r) => [key(r.metric), Number(r.value[1])]));
  const [rpsM, failM, p50M, p95M, p99M, openM, closeM] = [rps, fail, p50, p95, p99, opened, closed].map(index) as Map<string, number>[];
  const keys = new Set<string>([...(rpsM?.keys() ?? []), ...(openM?.keys() ?? [])]);
  const num = (m: Map<string, number> | undefined, k: string): number | null => {
    const v = m?.get(k);
    return v === undefined || Number.isNaN(v) ? null : v;
  };
  const rows: StatRow[] = [];
  for (const k of keys) {
    const labels = k.split('\u0000');
    const r = num(rpsM, k) ?? 0;
    const f = num(failM, k) ?? 0;
    const opened = num(openM, k);
    const row: StatRow = {
      name: labels[0] ?? '',
      namespace: labels[1] ?? '',
      ...(options.resource === 'edge' ? { source: labels[2] ?? '', sourceNamespace: labels[3] ?? '' } : {}),
      reporter,
      requests: r * seconds,
      failures: f * seconds,
      successRate: r > 0 ? (r - f) / r : null,
      rps: r,
      p50: r > 0 ? num(p50M, k) : null,
      p95: r > 0 ? num(p95M, k) : null,
      p99: r > 0 ? num(p99M, k) : null,
      tcpConnections: opened === null ? null : opened - (num(closeM, k) ?? 0),
    };
    if (options.namespace === undefined || row.namespace === options.namespace) rows.push(row);
  }
  return sortRows(rows);
}

/**
 * Where the console reads the mesh from:
 * - {@link createEndpointSource}: scrapes sidecar/app metrics pages directly (`--endpoints`) every
 *   `intervalMs`, with the parser `meshtel stat` uses, and keeps a bounded history of graphs for the detail
 *   charts (rates are deltas between consecutive scrapes);
 * - {@link createPrometheusSource}: PromQL over a Prometheus HTTP API (`--prometheus`), `query` for the graph
 *   and `query_range` for the detail charts.
 */
import { request } from 'undici';
import { MeshtelError, quote } from '../core/errors.js';
import type { Sample } from '../stats/exposition-parser.js';
import { scrapeEndpoints } from '../stats/golden-signals-source.js';
import { histogramQuantile, requestRate, successRatio } from '../stats/promql.js';
import { addRate, assembleGraph, graphFromScrapes, legsOf, nodeId, parseNodeId, selfFromScrape } from './graph.js';
import type { EdgeFigures, MeshGraph, SelfFigures } from './graph.js';

/** One point of a detail chart. */
export interface DetailPoint {
  readonly t: number;
  readonly rps: number;
  readonly errorShare: number | null;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly bytesPerSecond: number;
  /** Requests/s per response code, and per Envoy response flag other than `-`. */
  readonly codes: Readonly<Record<string, number>>;
  readonly flags: Readonly<Record<string, number>>;
}

/** A point without traffic. */
const idlePoint = (t: number): DetailPoint => ({ t, rps: 0, errorShare: null, p50: null, p99: null, bytesPerSecond: 0, codes: {}, flags: {} });

/** Golden signals over time of a node (inbound and outbound) or an edge. */
export interface Detail {
  readonly id: string;
  readonly inbound: readonly DetailPoint[];
  readonly outbound: readonly DetailPoint[];
}

/** What the console server asks of a source. */
export interface ConsoleSource {
  readonly kind: 'endpoints' | 'prometheus';
  /** The latest graph, or null before two scrapes (endpoints) / on an empty Prometheus. */
  graph(): Promise<MeshGraph | null>;
  /** Detail of a node id (`ns/workload`) or an edge id (`src|dst|protocol`) over the last `rangeSeconds`. */
  detail(id: string, rangeSeconds: number): Promise<Detail>;
  self(): Promise<SelfFigures | null>;
  close(): void;
}

/** How many graphs the endpoint source keeps (at 5 s, 30 minutes). */
const HISTORY = 360;

/** Aggregate the edges of a graph touching `id` into one point per direction. */
function pointsFor(graph: MeshGraph, id: string): { inbound: DetailPoint | null; outbound: DetailPoint | null } {
  const isEdge = id.includes('|');
  const pick = (dir: 'in' | 'out'): DetailPoint | null => {
    const edges = graph.edges.filter((e) => (isEdge ? e.id === id : dir === 'in' ? e.target === id : e.source === id));
    if (edges.length === 0) return null;
    let rps = 0;
    let err = 0;
    let bytes = 0;
    let p50: number | null = null;
    let p99: number | null = null;
    const codes: Record<string, number> = {};
    const flags: Record<string, number> = {};
    for (const e of edges) {
      for (const [k, v] of Object.entries(e.codes)) addRate(codes, k, v);
      for (const [k, v] of Object.entries(e.flags)) addRate(flags, k, v);
      rps += e.rps;
      err += (e.errorShare ?? 0) * e.rps;
      bytes += e.bytesPerSecond;
      // Worst edge's quantiles: buckets are not kept per point, and the slowest caller is what one looks for.
      if (e.p50 !== null) p50 = Math.max(p50 ?? 0, e.p50);
      if (e.p99 !== null) p99 = Math.max(p99 ?? 0, e.p99);
    }
    return { t: graph.time, rps, errorShare: rps > 0 ? err / rps : null, p50, p99, bytesPerSecond: bytes, codes, flags };
  };
  return isEdge ? { inbound: pick('in'), outbound: null } : { inbound: pick('in'), outbound: pick('out') };
}

/** Options of {@link createEndpointSource}. */
export interface EndpointSourceOptions {
  readonly urls: readonly string[];
  /** Scrape interval; default 5000 ms. */
  readonly intervalMs?: number;
  /**
   * Rate window, as PromQL's `rate(...[window])`: each graph compares the latest scrape with the one taken a window
   * earlier (fewer while the console is younger than the window). Default 60 000 ms, at least one interval. A
   * window of one interval would show the noise of a few requests (an edge at 3 req/s and 2 s has 6).
   */
  readonly windowMs?: number;
}

/** One scrape kept for the rate window. */
interface KeptScrape {
  readonly samples: Sample[];
  /** performance.now() of the scrape. */
  readonly at: number;
}

/** Scrape `urls` every interval; graphs are deltas between the latest scrape and the one a window before it. */
export function createEndpointSource(options: EndpointSourceOptions): ConsoleSource {
  const intervalMs = options.intervalMs ?? 5000;
  const windowMs = Math.max(intervalMs, options.windowMs ?? 60_000);
  // The scrapes inside the window plus the one just before it; bounded by the window over the interval.
  const kept: KeptScrape[] = [];
  const maxKept = Math.ceil(windowMs / intervalMs) + 2;
  let lastSamples: Sample[] = [];
  const history: MeshGraph[] = [];
  let lastError: Error | undefined;
  let running: Promise<void> | undefined;
  const poll = async (): Promise<void> => {
    try {
      const samples = await scrapeEndpoints(options.urls);
      const at = performance.now();
      lastSamples = samples;
      kept.push({ samples, at });
      // Keep the newest scrape that is at least a window old as the base, drop everything older.
      while (kept.length > maxKept || (kept.length > 2 && (kept[1] as KeptScrape).at <= at - windowMs)) kept.shift();
      const base = kept[0] as KeptScrape;
      if (base.at < at) {
        history.push(graphFromScrapes(base.samples, samples, (at - base.at) / 1000));
        if (history.length > HISTORY) history.shift();
      }
      lastError = undefined;
    } catch (err) {
      lastError = err as Error;
    }
  };
  running = poll();
  const timer = setInterval(() => {
    running = poll();
  }, intervalMs);
  timer.unref();
  return {
    kind: 'endpoints',
    async graph() {
      await running;
      if (history.length === 0 && lastError) throw lastError;
      return history[history.length - 1] ?? null;
    },
    async detail(id, rangeSeconds) {
      await running;
      const since = Date.now() - rangeSeconds * 1000;
      const inbound: DetailPoint[] = [];
      const outbound: DetailPoint[] = [];
      for (const g of history) {
        if (g.time < since) continue;
        const p = pointsFor(g, id);
        inbound.push(p.inbound ?? idlePoint(g.time));
        if (!id.includes('|')) outbound.push(p.outbound ?? idlePoint(g.time));
      }
      return { id, inbound, outbound };
    },
    async self() {
      await running;
      return lastSamples.length > 0 ? selfFromScrape(lastSamples, options.urls) : null;
    },
    close() {
      clearInterval(timer);
    },
  };
}

interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

async function promApi(base: string, path: string, params: Record<string, string>): Promise<PromSeries[]> {
  const url = `${base.replace(/\/+$/, '')}${path}?${new URLSearchParams(params).toString()}`;
  let text: string;
  try {
    const res = await request(url, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    text = await res.body.text();
  } catch (err) {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `cannot read ${base}: ${(err as Error).message}`, { url: base }, { cause: err });
  }
  let parsed: { status?: string; data?: { result?: PromSeries[] }; error?: string };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${base} did not answer Prometheus API JSON`, { url: base });
  }
  if (parsed.status !== 'success') {
    throw new MeshtelError('MESHTEL_ERR_SCRAPE', `${base} rejected ${quote(params.query ?? '')}: ${parsed.error ?? 'error'}`, { url: base });
  }
  return parsed.data?.result ?? [];
}

const SOURCE_BY = 'source_workload, source_workload_namespace';
const SERVICE_BY = 'destination_service_name, destination_service_namespace';
const DESTINATION_BY = 'destination_workload, destination_workload_namespace';
/** Every label the graph's legs are made of (graph.ts legsOf): counts are summed per leg from these groups. */
const EDGE_BY = `${SOURCE_BY}, ${SERVICE_BY}, ${DESTINATION_BY}`;

/** Options of {@link createPrometheusSource}. */
export interface PrometheusSourceOptions {
  readonly url: string;
  /** PromQL rate window; default `1m`. */
  readonly window?: string;
}

/** The label matchers that pick a node's series, as its side of an edge (graph.ts legsOf). */
function matchers(id: string, side: 'source' | 'destination'): string {
  const q = (v: string): string => JSON.stringify(v);
  const n = parseNodeId(id);
  if (n.kind === 'service') return `destination_service_name=${q(n.name)}, destination_service_namespace=${q(n.namespace)}`;
  return `${side}_workload=${q(n.name)}, ${side}_workload_namespace=${q(n.namespace)}`;
}

/** The selector of an edge or node id, for detail queries. */
function selectors(id: string): { inbound: string; outbound: string | null } {
  if (id.includes('|')) {
    const [src = '', dst = '', protocol = 'http'] = id.split('|');
    const proto = protocol === 'tcp' ? '' : `, request_protocol=${JSON.stringify(protocol)}`;
    // An edge between two workloads is drawn only for series without a known service.
    const direct = parseNodeId(src).kind === 'workload' && parseNodeId(dst).kind === 'workload' ? ', destination_service_name=~"|unknown"' : '';
    return { inbound: `reporter="source", ${matchers(src, 'source')}, ${matchers(dst, 'destination')}${direct}${proto}`, outbound: null };
  }
  if (parseNodeId(id).kind === 'service') {
    // Callers' view of the service, and the view of the workloads behind it: they differ by what never reached a server.
    return { inbound: `reporter="source", ${matchers(id, 'destination')}`, outbound: `reporter="destination", ${matchers(id, 'destination')}` };
  }
  return { inbound: `reporter="destination", ${matchers(id, 'destination')}`, outbound: `reporter="source", ${matchers(id, 'source')}` };
}

/** Read the graph and charts from a Prometheus holding Istio-schema metrics. */
export function createPrometheusSource(options: PrometheusSourceOptions): ConsoleSource {
  const w = options.window ?? '1m';
  const q = (query: string, time?: number): Promise<PromSeries[]> =>
    promApi(options.url, '/api/v1/query', { query, ...(time !== undefined ? { time: String(time) } : {}) });
  const num = (s: PromSeries): number => Number(s.value?.[1] ?? NaN);
  return {
    kind: 'prometheus',
    async graph() {
      const time = Date.now() / 1000;
      const by = `${EDGE_BY}, request_protocol, reporter`;
      // Quantiles cannot be summed: one query per leg shape (caller → service, service → workload, and the
      // six-label groups whose service is unknown, which are caller → workload edges).
      const quantileBy = [`${SOURCE_BY}, ${SERVICE_BY}`, `${SERVICE_BY}, ${DESTINATION_BY}`, EDGE_BY].map((b) => `${b}, request_protocol, reporter`);
      const quantile = (x: number, b: string): Promise<PromSeries[]> => q(histogramQuantile(x, 'istio_request_duration_milliseconds', '', { by: b }, w), time);
      // The dashboards' builders (src/stats/promql.ts), with the console's window.
      const [byCode, byFlag, tcp, mtls, unknown, ...quantiles] = await Promise.all([
        q(requestRate('', `${by}, response_code`, w), time),
        q(requestRate('response_flags!="-"', `${by}, response_flags`, w), time),
        q(`sum by (${EDGE_BY}, reporter) (rate(istio_tcp_sent_bytes_total[${w}]) or rate(istio_tcp_received_bytes_total[${w}]))`, time),
        q(`sum by (${EDGE_BY}) (istio_requests_total{reporter="destination", connection_security_policy="mutual_tls"} or istio_tcp_connections_opened_total{reporter="destination", connection_security_policy="mutual_tls"})`, time),
        q(`sum by (namespace, pod, reason, reporter) (rate(meshtel_peer_unknown_total[${w}]))`, time),
        ...quantileBy.flatMap((b) => [quantile(0.5, b), quantile(0.99, b)]),
      ]);
      const figures = new Map<string, EdgeFigures>();
      const fig = (source: string, target: string, protocol: 'http' | 'grpc' | 'tcp', reporter: string | undefined): EdgeFigures => {
        const rep = reporter === 'destination' ? 'destination' : 'source';
        const k = `${source}|${target}|${protocol}|${rep}`;
        let f = figures.get(k);
        if (!f) {
          f = { source, target, protocol, reporter: rep, rps: 0, errorRps: 0, p50: null, p99: null, bytesPerSecond: 0 };
          figures.set(k, f);
        }
        return f;
      };
      const figs = (m: Record<string, string>, protocol: 'http' | 'grpc' | 'tcp'): EdgeFigures[] => legsOf(m).map(([a, b]) => fig(a, b, protocol, m.reporter));
      const proto = (m: Record<string, string>): 'http' | 'grpc' => (m.request_protocol === 'grpc' ? 'grpc' : 'http');
      for (const s of byCode) {
        const r = num(s) || 0;
        for (const f of figs(s.metric, proto(s.metric))) {
          f.rps += r;
          if ((s.metric.response_code ?? '').startsWith('5')) f.errorRps += r;
          addRate((f.codes ??= {}), s.metric.response_code ?? 'unknown', r);
        }
      }
      for (const s of byFlag) for (const f of figs(s.metric, proto(s.metric))) addRate((f.flags ??= {}), s.metric.response_flags ?? '', num(s) || 0);
      for (const s of tcp) for (const f of figs(s.metric, 'tcp')) f.bytesPerSecond += num(s) || 0;
      // Each quantile group answers for the leg of its shape only (the three `quantileBy` groupings in order).
      quantiles.forEach((result, i) => {
        const shape = Math.floor(i / 2);
        for (const s of result) {
          const v = num(s);
          if (!Number.isFinite(v)) continue;
          const legs = legsOf(s.metric);
          const serviceKnown = legs.length > 0 && parseNodeId((legs[0] as [string, string])[1]).kind === 'service';
          const leg = shape === 0 ? (serviceKnown ? legs[0] : undefined) : shape === 1 ? (serviceKnown ? legs[1] : undefined) : serviceKnown ? undefined : legs[0];
          if (leg === undefined) continue;
          const f = figures.get(`${leg[0]}|${leg[1]}|${proto(s.metric)}|${s.metric.reporter === 'destination' ? 'destination' : 'source'}`);
          if (f === undefined) continue;
          if (i % 2 === 0) f.p50 = v;
          else f.p99 = v;
        }
      });
      const pairs = new Set(mtls.filter((s) => num(s) > 0).flatMap((s) => legsOf(s.metric).map(([a, b]) => `${a}|${b}`)));
      const unknownBy = new Map<string, { reason: string; reporter: string; rate: number }[]>();
      for (const s of unknown) {
        if (!(num(s) > 0)) continue;
        // A pod name as a ReplicaSet makes it: <workload>-<hash>-<suffix>.
        const id = nodeId(s.metric.namespace, (s.metric.pod ?? '').replace(/-[a-z0-9]+-[a-z0-9]+$/, ''));
        unknownBy.set(id, [...(unknownBy.get(id) ?? []), { reason: s.metric.reason ?? '', reporter: s.metric.reporter ?? '', rate: num(s) }]);
      }
      if (figures.size === 0 && unknownBy.size === 0) return null;
      return assembleGraph([...figures.values()], pairs, unknownBy, windowSecondsOf(w), time * 1000);
    },
    async detail(id, rangeSeconds) {
      const end = Date.now() / 1000;
      const start = end - rangeSeconds;
      const step = String(Math.max(5, Math.round(rangeSeconds / 120)));
      const range = (query: string): Promise<PromSeries[]> => promApi(options.url, '/api/v1/query_range', { query, start: String(start), end: String(end), step });
      const side = async (sel: string): Promise<DetailPoint[]> => {
        // The dashboards' builders (src/stats/promql.ts), with the console's window.
        const [rps, success, p50, p99, bytes, byCode, byFlag] = await Promise.all([
          range(requestRate(sel, undefined, w)),
          range(successRatio(sel, undefined, false, w)),
          range(histogramQuantile(0.5, 'istio_request_duration_milliseconds', sel, undefined, w)),
          range(histogramQuantile(0.99, 'istio_request_duration_milliseconds', sel, undefined, w)),
          range(`sum(rate(istio_tcp_sent_bytes_total{${sel}}[${w}])) + sum(rate(istio_tcp_received_bytes_total{${sel}}[${w}]))`),
          range(requestRate(sel, 'response_code', w)),
          range(requestRate(`${sel}, response_flags!="-"`, 'response_flags', w)),
        ]);
        const series = (r: PromSeries[]): Map<number, number> => new Map((r[0]?.values ?? []).map(([t, v]) => [t, Number(v)]));
        const [a, b, c, d, e] = [rps, success, p50, p99, bytes].map(series) as Map<number, number>[];
        const perLabel = (r: PromSeries[], label: string): Map<number, Record<string, number>> => {
          const out = new Map<number, Record<string, number>>();
          for (const s of r) {
            for (const [t, v] of s.values ?? []) {
              let at = out.get(t);
              if (at === undefined) out.set(t, (at = {}));
              addRate(at, s.metric[label] ?? 'unknown', Number(v));
            }
          }
          return out;
        };
        const codes = perLabel(byCode, 'response_code');
        const flags = perLabel(byFlag, 'response_flags');
        const times = new Set<number>([...(a?.keys() ?? []), ...(e?.keys() ?? [])]);
        const fin = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);
        const errorShare = (v: number | undefined): number | null => (fin(v) === null ? null : 1 - (v as number));
        return [...times]
          .sort((x, y) => x - y)
          .map((t) => ({
            t: t * 1000,
            rps: a?.get(t) ?? 0,
            errorShare: errorShare(b?.get(t)),
            p50: fin(c?.get(t)),
            p99: fin(d?.get(t)),
            bytesPerSecond: e?.get(t) ?? 0,
            codes: codes.get(t) ?? {},
            flags: flags.get(t) ?? {},
          }));
      };
      const sel = selectors(id);
      const [inbound, outbound] = await Promise.all([side(sel.inbound), sel.outbound ? side(sel.outbound) : Promise.resolve([])]);
      return { id, inbound, outbound };
    },
    async self() {
      const one = async (query: string): Promise<number> => {
        const r = await q(query);
        return r.length > 0 ? num(r[0] as PromSeries) : 0;
      };
      const [seriesActive, seriesOverflowTotal, peerCacheEntries, hits, misses, spansDroppedTotal, tapDroppedTotal, samples] = await Promise.all([
        one('sum(meshtel_series_active)'),
        one('sum(meshtel_series_overflow_total)'),
        one('sum(meshtel_peer_cache_entries)'),
        one('sum(meshtel_peer_cache_hits_total)'),
        one('sum(meshtel_peer_cache_misses_total)'),
        one('sum(meshtel_spans_dropped_total)'),
        one('sum(meshtel_tap_dropped_total)'),
        q('scrape_samples_scraped'),
      ]);
      return {
        seriesActive,
        seriesOverflowTotal,
        peerCacheEntries,
        peerCacheHitShare: hits + misses > 0 ? hits / (hits + misses) : null,
        spansDroppedTotal,
        tapDroppedTotal,
        scrapeSamples: samples.map((s) => ({ endpoint: s.metric.pod ?? s.metric.instance ?? '', samples: num(s) })).sort((x, y) => y.samples - x.samples),
      };
    },
    close() {},
  };
}

function windowSecondsOf(w: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(w);
  if (!m) return 60;
  return Number(m[1]) * (m[2] === 's' ? 1 : m[2] === 'm' ? 60 : 3600);
}

/**
 * The console's model of the mesh: nodes (workloads and services, grouped by namespace) and edges (who calls
 * whom, with golden signals), computed from Istio's standard metrics. As Kiali's workload graph with service
 * nodes, a request from workload A to service S served by workload B is drawn as two legs, A → S and S → B; a
 * series whose `destination_service_name` is unknown (passthrough, a peer without metadata) is one edge A → B,
 * and one whose destination workload is unknown ends at the service. Two inputs give the same {@link MeshGraph}:
 * two scrapes of sidecar endpoints ({@link graphFromScrapes}: counter deltas, buckets through
 * `histogram_quantile`, both from src/stats/golden-signals.ts) or PromQL vectors (src/console/sources.ts).
 *
 * Edges are taken from the caller's side (`reporter="source"`, as Kiali and `meshtel stat edge` do); an edge
 * only the server reports (an unknown or proxyless caller without outbound telemetry) comes from
 * `reporter="destination"`. The mTLS lock is the server's `connection_security_policy="mutual_tls"`: only the
 * destination reporter knows it (the source reports `unknown`).
 */
import type { Sample } from '../stats/exposition-parser.js';
import { delta, histogramQuantile, seriesKey } from '../stats/golden-signals.js';
import type { Bucket } from '../stats/golden-signals.js';

/** A workload or a service of the graph. The workload `unknown` stands for callers that could not be identified. */
export interface GraphNode {
  /** `namespace/workload` ({@link nodeId}) or `svc:namespace/service` ({@link serviceNodeId}). */
  readonly id: string;
  readonly kind: 'workload' | 'service';
  /** The workload or service name. */
  readonly name: string;
  readonly namespace: string;
  /** Requests/s this node answered (destination reporter), and the share of them that were 5xx. */
  readonly inboundRps: number;
  readonly inboundErrorShare: number | null;
  /** Why peers this workload saw were unknown (`meshtel_peer_unknown_total`), per second over the window. */
  readonly unknownPeers: readonly { readonly reason: string; readonly reporter: string; readonly rate: number }[];
  readonly health: Health;
}

/** One caller → callee pair. */
export interface GraphEdge {
  /** `source|target|protocol`. */
  readonly id: string;
  readonly source: string;
  readonly target: string;
  readonly protocol: 'http' | 'grpc' | 'tcp';
  readonly reporter: 'source' | 'destination';
  readonly rps: number;
  /** 5xx share of requests, 0..1; null without requests (TCP, idle). */
  readonly errorShare: number | null;
  /** Latency quantiles in ms; null without requests. */
  readonly p50: number | null;
  readonly p99: number | null;
  /** TCP bytes per second, sent + received (TCP edges). */
  readonly bytesPerSecond: number;
  /** The server reported this pair as mutual TLS. */
  readonly mtls: boolean;
  /** Requests/s per `response_code` (`0`: no response sent). */
  readonly codes: Readonly<Record<string, number>>;
  /** Requests/s per Envoy `response_flags` value other than `-` (UF, URX, DC, …). */
  readonly flags: Readonly<Record<string, number>>;
  readonly health: Health;
}

/** Colour class: `bad` at ≥ 5% errors, `warn` above 0, `idle` without traffic in the window. */
export type Health = 'ok' | 'warn' | 'bad' | 'idle';

/** The whole picture at one time. */
export interface MeshGraph {
  /** ms since the epoch. */
  readonly time: number;
  /** The window the rates cover, seconds. */
  readonly windowSeconds: number;
  readonly nodes: readonly GraphNode[];
  readonly edges: readonly GraphEdge[];
}

/** Error share at or above which an edge or node is unhealthy (Kiali's default degraded/failure thresholds are 0.1%/20%; a mesh demo wants the fault visible). */
export const UNHEALTHY_ERROR_SHARE = 0.05;

/** Health of a figure set. */
export function healthOf(rps: number, errorShare: number | null, bytesPerSecond = 0): Health {
  if (rps <= 0 && bytesPerSecond <= 0) return 'idle';
  if (errorShare === null || errorShare === 0) return 'ok';
  return errorShare >= UNHEALTHY_ERROR_SHARE ? 'bad' : 'warn';
}

/** Accumulated figures of one edge over a window (from deltas or from PromQL). */
export interface EdgeFigures {
  source: string;
  target: string;
  protocol: 'http' | 'grpc' | 'tcp';
  reporter: 'source' | 'destination';
  rps: number;
  errorRps: number;
  p50: number | null;
  p99: number | null;
  bytesPerSecond: number;
  /** Requests/s per response code and per response flag (not `-`); absent means none. */
  codes?: Record<string, number>;
  flags?: Record<string, number>;
}

/** Add `rate` to `into[key]`. */
export function addRate(into: Record<string, number>, key: string, rate: number): void {
  if (rate > 0) into[key] = (into[key] ?? 0) + rate;
}

/** `namespace/workload`, `unknown` for an absent workload. */
export function nodeId(namespace: string | undefined, workload: string | undefined): string {
  return `${namespace || 'unknown'}/${workload || 'unknown'}`;
}

const SERVICE_PREFIX = 'svc:';

/** `svc:namespace/service`: a prefix no Kubernetes namespace can start with keeps it apart from a workload of the same name. */
export function serviceNodeId(namespace: string | undefined, service: string): string {
  return `${SERVICE_PREFIX}${namespace || 'unknown'}/${service}`;
}

/** What a node id stands for (the inverse of {@link nodeId} and {@link serviceNodeId}). */
export function parseNodeId(id: string): { kind: 'workload' | 'service'; namespace: string; name: string } {
  const service = id.startsWith(SERVICE_PREFIX);
  const rest = service ? id.slice(SERVICE_PREFIX.length) : id;
  const i = rest.indexOf('/');
  return { kind: service ? 'service' : 'workload', namespace: rest.slice(0, i), name: rest.slice(i + 1) };
}

const known = (v: string | undefined): v is string => v !== undefined && v !== '' && v !== 'unknown';

/**
 * The legs a series of Istio's labels is drawn as: `[source, target]` node id pairs. With a known destination
 * service: caller → service, and service → destination workload when that is known; without: caller → workload.
 */
export function legsOf(l: Readonly<Record<string, string>>): [string, string][] {
  const source = nodeId(l.source_workload_namespace, l.source_workload);
  if (!known(l.destination_service_name)) return [[source, nodeId(l.destination_workload_namespace, l.destination_workload)]];
  const service = serviceNodeId(l.destination_service_namespace, l.destination_service_name);
  return known(l.destination_workload) ? [[source, service], [service, nodeId(l.destination_workload_namespace, l.destination_workload)]] : [[source, service]];
}

/**
 * Assemble the graph from per-edge figures, the mTLS pairs (`source|target`), and unknown-peer rates per node.
 * Source-reported edges win over destination-reported ones for the same pair and protocol.
 */
export function assembleGraph(
  figures: readonly EdgeFigures[],
  mtlsPairs: ReadonlySet<string>,
  unknown: ReadonlyMap<string, { reason: string; reporter: string; rate: number }[]>,
  windowSeconds: number,
  time = Date.now(),
): MeshGraph {
  const bySource = new Map<string, EdgeFigures>();
  for (const f of figures) {
    const id = `${f.source}|${f.target}|${f.protocol}`;
    const have = bySource.get(id);
    if (have === undefined || (have.reporter === 'destination' && f.reporter === 'source')) bySource.set(id, f);
  }
  const edges: GraphEdge[] = [];
  const ids = new Set<string>(unknown.keys());
  const inbound = new Map<string, { rps: number; errors: number }>();
  for (const f of figures) {
    if (f.reporter !== 'destination' || f.protocol === 'tcp') continue;
    const a = inbound.get(f.target) ?? { rps: 0, errors: 0 };
    a.rps += f.rps;
    a.errors += f.errorRps;
    inbound.set(f.target, a);
  }
  for (const [id, f] of bySource) {
    ids.add(f.source);
    ids.add(f.target);
    const errorShare = f.protocol === 'tcp' || f.rps <= 0 ? null : f.errorRps / f.rps;
    edges.push({
      id,
      source: f.source,
      target: f.target,
      protocol: f.protocol,
      reporter: f.reporter,
      rps: f.rps,
      errorShare,
      p50: f.rps > 0 ? f.p50 : null,
      p99: f.rps > 0 ? f.p99 : null,
      bytesPerSecond: f.bytesPerSecond,
      mtls: mtlsPairs.has(`${f.source}|${f.target}`),
      codes: f.codes ?? {},
      flags: f.flags ?? {},
      health: healthOf(f.rps, errorShare, f.bytesPerSecond),
    });
  }
  const nodes: GraphNode[] = [...ids].map((id) => {
    const { kind, namespace, name } = parseNodeId(id);
    const inb = inbound.get(id);
    const inboundErrorShare = inb && inb.rps > 0 ? inb.errors / inb.rps : null;
    const unknownPeers = unknown.get(id) ?? [];
    return {
      id,
      kind,
      name,
      namespace,
      inboundRps: inb?.rps ?? 0,
      inboundErrorShare,
      unknownPeers,
      health: kind === 'workload' && name === 'unknown' ? 'idle' : inb ? healthOf(inb.rps, inboundErrorShare) : 'ok',
    };
  });
  nodes.sort((a, b) => a.id.localeCompare(b.id));
  edges.sort((a, b) => a.id.localeCompare(b.id));
  return { time, windowSeconds, nodes, edges };
}

interface Acc {
  requests: number;
  errors: number;
  codes: Record<string, number>;
  flags: Record<string, number>;
  buckets: Map<number, number>;
  bytes: number;
}

/**
 * The graph from two scrapes of the same endpoints (as returned by `scrapeEndpoints`, each series labelled with
 * its `__endpoint` index) taken `seconds` apart.
 */
export function graphFromScrapes(before: readonly Sample[], after: readonly Sample[], seconds: number, time = Date.now()): MeshGraph {
  const prev = new Map<string, number>();
  for (const s of before) prev.set(seriesKey(s), s.value);
  const groups = new Map<string, Acc & { f: Omit<EdgeFigures, 'rps' | 'errorRps' | 'p50' | 'p99' | 'bytesPerSecond'> }>();
  const mtls = new Set<string>();
  // Which workload each endpoint belongs to: the local side of its own istio_* series.
  const endpointNode = new Map<string, string>();
  const unknownRaw: { endpoint: string; reason: string; reporter: string; rate: number }[] = [];
  for (const s of after) {
    const l = s.labels;
    if (s.name === 'meshtel_peer_unknown_total') {
      const d = delta(prev.get(seriesKey(s)), s.value);
      if (d > 0) unknownRaw.push({ endpoint: l.__endpoint ?? '', reason: l.reason ?? '', reporter: l.reporter ?? '', rate: d / seconds });
      continue;
    }
    const isReq = s.name === 'istio_requests_total';
    const isBucket = s.name === 'istio_request_duration_milliseconds_bucket';
    const isTcp = s.name === 'istio_tcp_sent_bytes_total' || s.name === 'istio_tcp_received_bytes_total';
    if (!isReq && !isBucket && !isTcp) continue;
    const reporter = l.reporter === 'destination' ? 'destination' : 'source';
    if (l.__endpoint !== undefined && !endpointNode.has(l.__endpoint)) {
      endpointNode.set(l.__endpoint, reporter === 'destination' ? nodeId(l.destination_workload_namespace, l.destination_workload) : nodeId(l.source_workload_namespace, l.source_workload));
    }
    const protocol = isTcp ? 'tcp' : l.request_protocol === 'grpc' ? 'grpc' : 'http';
    const d = delta(prev.get(seriesKey(s)), s.value);
    for (const [source, target] of legsOf(l)) {
      if (!isBucket && reporter === 'destination' && l.connection_security_policy === 'mutual_tls' && s.value > 0) mtls.add(`${source}|${target}`);
      const key = `${source}|${target}|${protocol}|${reporter}`;
      let g = groups.get(key);
      if (g === undefined) {
        g = { requests: 0, errors: 0, codes: {}, flags: {}, buckets: new Map(), bytes: 0, f: { source, target, protocol, reporter } };
        groups.set(key, g);
      }
      if (isReq) {
        g.requests += d;
        if ((l.response_code ?? '').startsWith('5')) g.errors += d;
        addRate(g.codes, l.response_code ?? 'unknown', d);
        if (l.response_flags !== undefined && l.response_flags !== '-') addRate(g.flags, l.response_flags, d);
      } else if (isBucket) {
        const le = l.le === '+Inf' ? Infinity : Number(l.le);
        if (!Number.isNaN(le)) g.buckets.set(le, (g.buckets.get(le) ?? 0) + d);
      } else {
        g.bytes += d;
      }
    }
  }
  const figures: EdgeFigures[] = [...groups.values()].map((g) => {
    const buckets: Bucket[] = [...g.buckets].map(([le, count]) => ({ le, count }));
    const q = (x: number): number | null => {
      if (g.requests <= 0) return null;
      const v = histogramQuantile(x, buckets);
      return Number.isFinite(v) ? v : null;
    };
    const perSecond = (r: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v / seconds]));
    return { ...g.f, rps: g.requests / seconds, errorRps: g.errors / seconds, p50: q(0.5), p99: q(0.99), bytesPerSecond: g.bytes / seconds, codes: perSecond(g.codes), flags: perSecond(g.flags) };
  });
  const unknown = new Map<string, { reason: string; reporter: string; rate: number }[]>();
  for (const u of unknownRaw) {
    const id = endpointNode.get(u.endpoint);
    if (id === undefined) continue;
    unknown.set(id, [...(unknown.get(id) ?? []), { reason: u.reason, reporter: u.reporter, rate: u.rate }]);
  }
  return assembleGraph(figures, mtls, unknown, seconds, time);
}

/** meshtel's own figures (the "self" panels), summed over every endpoint. */
export interface SelfFigures {
  readonly seriesActive: number;
  readonly seriesOverflowTotal: number;
  readonly peerCacheEntries: number;
  readonly peerCacheHitShare: number | null;
  readonly spansDroppedTotal: number;
  readonly tapDroppedTotal: number;
  /** Samples per scraped endpoint, largest first. */
  readonly scrapeSamples: readonly { readonly endpoint: string; readonly samples: number }[];
}

/** Self figures from one scrape; `names` names each `__endpoint` index. */
export function selfFromScrape(samples: readonly Sample[], names: readonly string[]): SelfFigures {
  let seriesActive = 0;
  let overflow = 0;
  let entries = 0;
  let hits = 0;
  let misses = 0;
  let spans = 0;
  let tap = 0;
  const perEndpoint = new Map<string, number>();
  for (const s of samples) {
    const e = s.labels.__endpoint ?? '';
    perEndpoint.set(e, (perEndpoint.get(e) ?? 0) + 1);
    switch (s.name) {
      case 'meshtel_series_active':
        seriesActive += s.value;
        break;
      case 'meshtel_series_overflow_total':
        overflow += s.value;
        break;
      case 'meshtel_peer_cache_entries':
        entries += s.value;
        break;
      case 'meshtel_peer_cache_hits_total':
        hits += s.value;
        break;
      case 'meshtel_peer_cache_misses_total':
        misses += s.value;
        break;
      case 'meshtel_spans_dropped_total':
        spans += s.value;
        break;
      case 'meshtel_tap_dropped_total':
        tap += s.value;
        break;
      default:
        break;
    }
  }
  return {
    seriesActive,
    seriesOverflowTotal: overflow,
    peerCacheEntries: entries,
    peerCacheHitShare: hits + misses > 0 ? hits / (hits + misses) : null,
    spansDroppedTotal: spans,
    tapDroppedTotal: tap,
    scrapeSamples: [...perEndpoint]
      .map(([e, n]) => ({ endpoint: names[Number(e)] ?? e, samples: n }))
      .sort((a, b) => b.samples - a.samples),
  };
}

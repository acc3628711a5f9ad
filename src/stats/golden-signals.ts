/**
 * `meshtel stat`: golden signals per workload, service or edge (after `linkerd viz stat`), computed
 * from Istio's standard metrics. Two sources give the same {@link StatRow}s:
 * - two scrapes of Prometheus-format endpoints taken `interval` apart: counter deltas give rates,
 *   bucket deltas give quantiles through Prometheus's own `histogram_quantile` interpolation;
 * - a Prometheus server, through PromQL over `/api/v1/query` (src/stats/golden-signals-source.ts).
 *
 * Success means `response_code` not 5xx, as Istio's dashboards count it (consumers.md §1.2).
 */
import type { Sample } from './exposition-parser.js';

/** What to group by. */
export type StatResource = 'workload' | 'service' | 'edge';

/** One line of the table. Figures are null when there was no traffic in the window. */
export interface StatRow {
  /** Workload or service name; for edges the destination workload. */
  readonly name: string;
  readonly namespace: string;
  /** Edges only: the source workload and namespace. */
  readonly source?: string;
  readonly sourceNamespace?: string;
  /** Which reporter's series the row was computed from. */
  readonly reporter: 'source' | 'destination';
  /** Requests in the window (exact from counter deltas; rate × window from Prometheus). */
  readonly requests: number;
  /** Requests with a 5xx response code in the window. */
  readonly failures: number;
  /** Share of non-5xx requests, 0..1, or null without requests. */
  readonly successRate: number | null;
  /** Requests per second over the window. */
  readonly rps: number;
  /** Latency quantiles in milliseconds (histogram_quantile over the window), null without requests. */
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  /** Open TCP connections (opened − closed counters at the end of the window), null without TCP series. */
  readonly tcpConnections: number | null;
}

/** Options for {@link computeStat}. */
export interface ComputeStatOptions {
  readonly resource: StatResource;
  /** Reporter whose series are used; default `destination` for workloads/services, `source` for edges. */
  readonly reporter?: 'source' | 'destination';
  /** Only rows in this namespace (the destination side for edges). */
  readonly namespace?: string;
}

/** The default reporter per resource: inbound for workloads/services, the caller's view for edges. */
export function defaultReporter(resource: StatResource): 'source' | 'destination' {
  return resource === 'edge' ? 'source' : 'destination';
}

const REQUESTS = 'istio_requests_total';
const DURATION_BUCKET = 'istio_request_duration_milliseconds_bucket';
const TCP_OPENED = 'istio_tcp_connections_opened_total';
const TCP_CLOSED = 'istio_tcp_connections_closed_total';

/** Group key fields: [name, namespace, sourceName?, sourceNamespace?]. */
export function groupLabels(resource: StatResource, reporter: 'source' | 'destination'): readonly string[] {
  switch (resource) {
    case 'workload':
      return reporter === 'destination'
        ? ['destination_workload', 'destination_workload_namespace']
        : ['source_workload', 'source_workload_namespace'];
    case 'service':
      return ['destination_service_name', 'destination_service_namespace'];
    case 'edge':
      return ['destination_workload', 'destination_workload_namespace', 'source_workload', 'source_workload_namespace'];
  }
}

interface Acc {
  labels: string[];
  requests: number;
  failures: number;
  buckets: Map<number, number>;
  tcpOpened: number;
  tcpClosed: number;
  hasTcp: boolean;
}

/** Identity of one series: name plus sorted labels. */
export function seriesKey(s: Sample): string {
  const keys = Object.keys(s.labels).sort();
  let k = s.name;
  for (const key of keys) k += `\u0000${key}=${s.labels[key]}`;
  return k;
}

/**
 * Counter increase between two samples of one series, as Prometheus's `increase` sees a reset: a value
 * that went down started again from zero. A series absent from the first sample started inside the window.
 */
export function delta(before: number | undefined, after: number): number {
  if (before === undefined || after < before) return after;
  return after - before;
}

/**
 * Compute rows from two scrapes of the same endpoints (`before` and `after`, each the concatenation of
 * every endpoint's samples, keyed per endpoint by the caller when endpoints could repeat a series).
 */
export function computeStat(
  before: readonly Sample[],
  after: readonly Sample[],
  intervalSeconds: number,
  options: ComputeStatOptions,
): StatRow[] {
  const reporter = options.reporter ?? defaultReporter(options.resource);
  const fields = groupLabels(options.resource, reporter);
  const prev = new Map<string, number>();
  for (const s of before) prev.set(seriesKey(s), s.value);
  const groups = new Map<string, Acc>();
  const acc = (s: Sample): Acc => {
    const labels = fields.map((f) => s.labels[f] ?? '');
    const key = labels.join('\u0000');
    let a = groups.get(key);
    if (a === undefined) {
      a = { labels, requests: 0, failures: 0, buckets: new Map(), tcpOpened: 0, tcpClosed: 0, hasTcp: false };
      groups.set(key, a);
    }
    return a;
  };
  for (const s of after) {
    if (s.labels.reporter !== reporter) {
      // A workload that only calls out (a gateway, a load generator) still gets its row, empty, as
      // linkerd lists idle deployments.
      if (options.resource === 'workload' && s.name === REQUESTS && s.labels.reporter === 'source' && reporter === 'destination') {
        acc({ ...s, labels: { destination_workload: s.labels.source_workload ?? '', destination_workload_namespace: s.labels.source_workload_namespace ?? '' } });
      }
      continue;
    }
    switch (s.name) {
      case REQUESTS: {
        const a = acc(s);
        const d = delta(prev.get(seriesKey(s)), s.value);
        a.requests += d;
        if ((s.labels.response_code ?? '').startsWith('5')) a.failures += d;
        break;
      }
      case DURATION_BUCKET: {
        const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
        if (Number.isNaN(le)) break;
        const a = acc(s);
        a.buckets.set(le, (a.buckets.get(le) ?? 0) + delta(prev.get(seriesKey(s)), s.value));
        break;
      }
      case TCP_OPENED: {
        const a = acc(s);
        a.tcpOpened += s.value;
        a.hasTcp = true;
        break;
      }
      case TCP_CLOSED: {
        const a = acc(s);
        a.tcpClosed += s.value;
        a.hasTcp = true;
        break;
      }
      default:
        break;
    }
  }
  const rows: StatRow[] = [];
  for (const a of groups.values()) {
    const buckets = [...a.buckets.entries()].map(([le, count]) => ({ le, count })).sort((x, y) => x.le - y.le);
    const quant = (q: number): number | null => {
      if (a.requests === 0) return null;
      const v = histogramQuantile(q, buckets);
      return Number.isNaN(v) ? null : v;
    };
    const row: StatRow = {
      name: a.labels[0] ?? '',
      namespace: a.labels[1] ?? '',
      ...(options.resource === 'edge' ? { source: a.labels[2] ?? '', sourceNamespace: a.labels[3] ?? '' } : {}),
      reporter,
      requests: a.requests,
      failures: a.failures,
      successRate: a.requests > 0 ? (a.requests - a.failures) / a.requests : null,
      rps: intervalSeconds > 0 ? a.requests / intervalSeconds : 0,
      p50: quant(0.5),
      p95: quant(0.95),
      p99: quant(0.99),
      tcpConnections: a.hasTcp ? a.tcpOpened - a.tcpClosed : null,
    };
    if (options.namespace === undefined || row.namespace === options.namespace) rows.push(row);
  }
  return sortRows(rows);
}

/** Rows sorted by source (edges), then namespace and name: stable output for --watch and tests. */
export function sortRows(rows: StatRow[]): StatRow[] {
  return rows.sort(
    (x, y) =>
      (x.sourceNamespace ?? '').localeCompare(y.sourceNamespace ?? '') ||
      (x.source ?? '').localeCompare(y.source ?? '') ||
      x.namespace.localeCompare(y.namespace) ||
      x.name.localeCompare(y.name),
  );
}

/** A cumulative bucket: `count` observations were ≤ `le`. */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

/**
 * Prometheus's `histogram_quantile` for classic buckets (prometheus/prometheus `promql/quantile.go`
 * `bucketQuantile`): linear interpolation inside the bucket holding the rank, the lower bound of the first
 * bucket taken as 0 when its upper bound is positive, the +Inf bucket answered with the highest finite
 * bound, non-monotonic counts repaired upwards. Returns NaN without a +Inf bucket or observations.
 */
export function histogramQuantile(q: number, input: readonly Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const buckets = [...input].sort((a, b) => a.le - b.le).map((b) => ({ ...b }));
  if (buckets.length < 2) return NaN;
  const last = buckets[buckets.length - 1];
  if (last === undefined || last.le !== Infinity) return NaN;
  // ensureMonotonic: a later bucket never holds fewer observations than an earlier one.
  let max = -Infinity;
  for (const b of buckets) {
    if (b.count > max) max = b.count;
    else b.count = max;
  }
  const total = last.count;
  if (total === 0) return NaN;
  const rank = q * total;
  let i = buckets.findIndex((b) => b.count >= rank);
  if (i < 0) i = buckets.length - 1;
  const b = buckets[i];
  if (b === undefined) return NaN;
  if (i === buckets.length - 1) return buckets[buckets.length - 2]?.le ?? NaN;
  if (i === 0 && b.le <= 0) return b.le;
  const start = i === 0 ? 0 : (buckets[i - 1]?.le ?? 0);
  const below = i === 0 ? 0 : (buckets[i - 1]?.count ?? 0);
  const inBucket = b.count - below;
  return start + (b.le - start) * ((rank - below) / inBucket);
}

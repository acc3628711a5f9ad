/**
 * PromQL over Istio's standard metrics, in one place: the shipped Grafana dashboards (dashboards/src) and the
 * console's Prometheus source (src/console/sources.ts) build their queries here, so "success", "requests by code"
 * and "latency quantiles" mean the same in both (the shapes follow Istio's dashboards: istio/istio
 * `manifests/addons/dashboards/lib/queries.libsonnet`, `istio-service-dashboard.json`, `istio-workload-dashboard.json`).
 * Each caller keeps its own filters and rate window: Grafana's `$__rate_interval`, the console's `--window`.
 */

/** Grafana's rate window (at least four scrape intervals); the default range of every builder. */
export const GRAFANA_RATE_INTERVAL = '$__rate_interval';

/**
 * An open series selector for the series that name a service or workload: HTTP/gRPC requests and TCP traffic
 * (a TCP-only service has no requests). Callers append `, matchers}` or `}`.
 */
export const ANY_TRAFFIC = '{__name__=~"istio_requests_total|istio_tcp_sent_bytes_total"';

/** A `sum by` grouping and the Grafana legend that names one of its series. */
export interface Grouping {
  /** Label list for `sum by (...)`. */
  readonly by: string;
  /** Grafana legend template naming the group. */
  readonly legend: string;
}

/** One line per client workload. */
export const BY_SOURCE_WORKLOAD: Grouping = Object.freeze({
  by: 'source_workload, source_workload_namespace',
  legend: '{{source_workload}}.{{source_workload_namespace}}',
});

/** One line per server workload. */
export const BY_DESTINATION_WORKLOAD: Grouping = Object.freeze({
  by: 'destination_workload, destination_workload_namespace',
  legend: '{{destination_workload}}.{{destination_workload_namespace}}',
});

/** One line per destination service. */
export const BY_DESTINATION_SERVICE: Grouping = Object.freeze({
  by: 'destination_service',
  legend: '{{destination_service}}',
});

/** `sum(` or `sum by (<labels>) (`. */
function sumBy(by: string | undefined): string {
  return by === undefined ? 'sum(' : `sum by (${by}) (`;
}

/** `histogram_quantile` of an Istio histogram (`<metric>_bucket`), per group or over everything. */
export function histogramQuantile(q: number, metric: string, filter: string, group?: Pick<Grouping, 'by'>, range = GRAFANA_RATE_INTERVAL): string {
  const by = group === undefined ? 'le' : `le, ${group.by}`;
  return `histogram_quantile(${q}, sum by (${by}) (rate(${metric}_bucket{${filter}}[${range}])))`;
}

/** Requests per second of `istio_requests_total{filter}`, summed per `by` labels or over everything. */
export function requestRate(filter: string, by?: string, range = GRAFANA_RATE_INTERVAL): string {
  return `${sumBy(by)}rate(istio_requests_total{${filter}}[${range}]))`;
}

/**
 * Istio's success rate: the share of `istio_requests_total` that did not end in a 5xx response, per group or over
 * everything. `guardIdle` makes the denominator `or on () vector(1)`, as Istio's service and workload dashboards
 * do, so an idle selection is not divided by an empty vector.
 */
export function successRatio(filter: string, group?: Pick<Grouping, 'by'>, guardIdle = false, range = GRAFANA_RATE_INTERVAL): string {
  const total = requestRate(filter, group?.by, range);
  return `${requestRate(`${filter}, response_code!~"5.."`, group?.by, range)} / ${guardIdle ? `(${total} or on () vector(1))` : total}`;
}

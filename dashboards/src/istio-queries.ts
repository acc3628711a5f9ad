/**
 * PromQL and panels over Istio's standard metrics that the mesh, service and workload dashboards share, so the
 * three read "success", "latency quantiles" and "requests by code" the same way (Istio's dashboards do:
 * istio/istio `manifests/addons/dashboards/lib/queries.libsonnet`, `istio-service-dashboard.json`,
 * `istio-workload-dashboard.json`). Each dashboard keeps its own filters; only the query shapes live here.
 */
import type { PanelOptions, TargetOptions } from './builder.js';

/** Rate window of every query: Grafana's `$__rate_interval` (at least four scrape intervals). */
export const RATE = '[$__rate_interval]';

/**
 * An open series selector for the series that name a service or workload: HTTP/gRPC requests and TCP traffic
 * (a TCP-only service has no requests). Callers append `, matchers}` or `}`.
 */
export const ANY_TRAFFIC = '{__name__=~"istio_requests_total|istio_tcp_sent_bytes_total"';

/** A `sum by` grouping and the legend that names one of its series. */
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

/** `histogram_quantile` of an Istio histogram (`<metric>_bucket`), per group or over everything. */
export function histogramQuantile(q: number, metric: string, filter: string, group?: Grouping): string {
  const by = group === undefined ? 'le' : `le, ${group.by}`;
  return `histogram_quantile(${q}, sum by (${by}) (rate(${metric}_bucket{${filter}}${RATE})))`;
}

/** P50/P90/P99 targets of an Istio histogram, legends `P50` (or `P50 <group>`). */
export function quantileTargets(metric: string, filter: string, group?: Grouping): TargetOptions[] {
  return [0.5, 0.9, 0.99].map((q) => ({
    expr: histogramQuantile(q, metric, filter, group),
    legend: group === undefined ? `P${q * 100}` : `P${q * 100} ${group.legend}`,
  }));
}

/**
 * Istio's success rate: the share of `istio_requests_total` that did not end in a 5xx response, per group or over
 * everything. `guardIdle` makes the denominator `or on () vector(1)`, as Istio's service and workload dashboards
 * do, so an idle selection is not divided by an empty vector.
 */
export function successRatio(filter: string, group?: Grouping, guardIdle = false): string {
  const sum = group === undefined ? 'sum(' : `sum by (${group.by}) (`;
  const requests = (extra: string): string => `${sum}rate(istio_requests_total{${filter}${extra}}${RATE}))`;
  const total = requests('');
  return `${requests(', response_code!~"5.."')} / ${guardIdle ? `(${total} or on () vector(1))` : total}`;
}

/** Title and description of a panel built by the helpers below. */
export interface PanelText {
  readonly title: string;
  readonly description: string;
}

/** Requests per second per group and response code. */
export function requestsByCodePanel(text: PanelText, filter: string, group: Grouping): PanelOptions {
  return {
    ...text,
    type: 'timeseries',
    unit: 'reqps',
    targets: [
      {
        expr: `round(sum by (${group.by}, response_code) (rate(istio_requests_total{${filter}}${RATE})), 0.001)`,
        legend: `${group.legend} : {{response_code}}`,
      },
    ],
  };
}

/** Share of non-5xx responses per group, on a 0–1 axis. */
export function successRateByPanel(text: PanelText, filter: string, group: Grouping): PanelOptions {
  return {
    ...text,
    type: 'timeseries',
    unit: 'percentunit',
    min: 0,
    max: 1,
    targets: [{ expr: successRatio(filter, group), legend: group.legend }],
  };
}

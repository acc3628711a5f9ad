/**
 * Panels over Istio's standard metrics that the mesh, service and workload dashboards share, so the three read
 * "success", "latency quantiles" and "requests by code" the same way, and the same way as the console (the PromQL
 * is src/stats/promql.ts) (Istio's dashboards do:
 * istio/istio `manifests/addons/dashboards/lib/queries.libsonnet`, `istio-service-dashboard.json`,
 * `istio-workload-dashboard.json`). Each dashboard keeps its own filters; only the query shapes live here.
 */
import {
  ANY_TRAFFIC,
  BY_DESTINATION_SERVICE,
  BY_DESTINATION_WORKLOAD,
  BY_SOURCE_WORKLOAD,
  GRAFANA_RATE_INTERVAL,
  histogramQuantile,
  requestRate,
  successRatio,
} from '../../src/stats/promql.js';
import type { Grouping } from '../../src/stats/promql.js';
import type { PanelOptions, TargetOptions } from './builder.js';

/** Rate window of every query: Grafana's `$__rate_interval` (at least four scrape intervals). */
export const RATE = `[${GRAFANA_RATE_INTERVAL}]`;

/** The query builders themselves live in src/stats/promql.ts, shared with the console's Prometheus source. */
export { ANY_TRAFFIC, BY_DESTINATION_SERVICE, BY_DESTINATION_WORKLOAD, BY_SOURCE_WORKLOAD, histogramQuantile, successRatio };
export type { Grouping };

/** P50/P90/P99 targets of an Istio histogram, legends `P50` (or `P50 <group>`). */
export function quantileTargets(metric: string, filter: string, group?: Grouping): TargetOptions[] {
  return [0.5, 0.9, 0.99].map((q) => ({
    expr: histogramQuantile(q, metric, filter, group),
    legend: group === undefined ? `P${q * 100}` : `P${q * 100} ${group.legend}`,
  }));
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
        expr: `round(${requestRate(filter, `${group.by}, response_code`)}, 0.001)`,
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

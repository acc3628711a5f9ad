/**
 * Mesh overview: the global request volume and success rate, and one line per destination workload.
 * Queries follow Istio's Mesh dashboard (istio/istio `manifests/addons/dashboards/lib/queries.libsonnet`):
 * client-side view (`reporter=~"source|waypoint"`), success = non-5xx, and 4xx/5xx stats that read 0
 * (`or vector(0)`) rather than "No data" when no such response happened.
 */
import { createDashboard } from './builder.js';
import type { GrafanaDashboard } from './builder.js';
import { DASHBOARD_UIDS } from './uids.js';

/** Client-side view of every request, as Istio's mesh dashboard counts it. */
const CLIENT = 'reporter=~"source|waypoint"';
const RATE = '[$__rate_interval]';
const BY_WORKLOAD = 'destination_workload, destination_workload_namespace';

/** Build the mesh dashboard. */
export function createMeshDashboard(): GrafanaDashboard {
  const quantile = (q: number): string =>
    `histogram_quantile(${q}, sum by (le, ${BY_WORKLOAD}) (rate(istio_request_duration_milliseconds_bucket{${CLIENT}}${RATE})))`;
  return createDashboard({
    uid: DASHBOARD_UIDS.mesh,
    title: 'meshtel / Mesh',
    description: 'Every workload of the mesh as its clients see it (istio_* standard metrics).',
    tags: ['meshtel', 'istio'],
    links: [
      { title: 'Service', uid: DASHBOARD_UIDS.service },
      { title: 'Workload', uid: DASHBOARD_UIDS.workload },
      { title: 'meshtel sidecar', uid: DASHBOARD_UIDS.meshtel },
    ],
    variables: [{ kind: 'datasource' }],
    rows: [
      {
        title: 'Global',
        panels: [
          {
            title: 'Global Request Volume',
            description: 'Requests per second across the mesh, counted once by the client proxy.',
            type: 'stat',
            unit: 'reqps',
            width: 6,
            targets: [{ expr: `round(sum(rate(istio_requests_total{${CLIENT}}${RATE})), 0.01)` }],
          },
          {
            title: 'Global Success Rate (non-5xx responses)',
            description: 'Share of requests that did not end in a 5xx response.',
            type: 'stat',
            unit: 'percentunit',
            decimals: 2,
            width: 6,
            targets: [
              {
                expr:
                  `sum(rate(istio_requests_total{${CLIENT}, response_code!~"5.."}${RATE}))` +
                  ` / sum(rate(istio_requests_total{${CLIENT}}${RATE}))`,
              },
            ],
          },
          {
            title: '4xxs',
            description: 'Requests per second answered with a 4xx code.',
            type: 'stat',
            unit: 'reqps',
            width: 6,
            targets: [{ expr: `round(sum(rate(istio_requests_total{${CLIENT}, response_code=~"4.."}${RATE})), 0.01) or vector(0)` }],
          },
          {
            title: '5xxs',
            description: 'Requests per second answered with a 5xx code.',
            type: 'stat',
            unit: 'reqps',
            width: 6,
            targets: [{ expr: `round(sum(rate(istio_requests_total{${CLIENT}, response_code=~"5.."}${RATE})), 0.01) or vector(0)` }],
          },
        ],
      },
      {
        title: 'HTTP/gRPC workloads',
        panels: [
          {
            title: 'Requests by destination workload',
            description: 'Request rate, P99 latency and success rate per destination workload (last value).',
            type: 'table',
            width: 24,
            targets: [
              {
                expr: `sum by (${BY_WORKLOAD}, destination_service) (rate(istio_requests_total{${CLIENT}}${RATE}))`,
                instant: true,
                format: 'table',
              },
              { expr: quantile(0.99), instant: true, format: 'table' },
              {
                expr:
                  `sum by (${BY_WORKLOAD}) (rate(istio_requests_total{${CLIENT}, response_code!~"5.."}${RATE}))` +
                  ` / sum by (${BY_WORKLOAD}) (rate(istio_requests_total{${CLIENT}}${RATE}))`,
                instant: true,
                format: 'table',
              },
            ],
          },
          {
            title: 'Request rate by destination workload',
            description: 'Requests per second per destination workload.',
            type: 'timeseries',
            unit: 'reqps',
            targets: [
              {
                expr: `sum by (${BY_WORKLOAD}) (rate(istio_requests_total{${CLIENT}}${RATE}))`,
                legend: '{{destination_workload}}.{{destination_workload_namespace}}',
              },
            ],
          },
          {
            title: 'Requests by response code',
            description: 'Requests per second per HTTP response code (0 = no response, e.g. a reset).',
            type: 'timeseries',
            unit: 'reqps',
            targets: [
              { expr: `sum by (response_code) (rate(istio_requests_total{${CLIENT}}${RATE}))`, legend: '{{response_code}}' },
            ],
          },
          {
            title: 'P50 / P90 / P99 latency by destination workload',
            description: 'Request duration quantiles from the client-side istio_request_duration_milliseconds histogram.',
            type: 'timeseries',
            unit: 'ms',
            width: 24,
            targets: [0.5, 0.9, 0.99].map((q) => ({
              expr: quantile(q),
              legend: `P${q * 100} {{destination_workload}}.{{destination_workload_namespace}}`,
            })),
          },
        ],
      },
      {
        title: 'TCP workloads',
        panels: [
          {
            title: 'TCP bytes by destination workload',
            description:
              'Bytes per second; "received" is what the destination received from its clients, "sent" what it answered (Istio\'s naming, seen from the destination).',
            type: 'timeseries',
            unit: 'Bps',
            targets: [
              {
                expr: `sum by (${BY_WORKLOAD}) (rate(istio_tcp_received_bytes_total{${CLIENT}}${RATE}))`,
                legend: 'received {{destination_workload}}.{{destination_workload_namespace}}',
              },
              {
                expr: `sum by (${BY_WORKLOAD}) (rate(istio_tcp_sent_bytes_total{${CLIENT}}${RATE}))`,
                legend: 'sent {{destination_workload}}.{{destination_workload_namespace}}',
              },
            ],
          },
          {
            title: 'TCP connections by destination workload',
            description: 'Connections opened and closed per second.',
            type: 'timeseries',
            unit: 'cps',
            targets: [
              {
                expr: `sum by (${BY_WORKLOAD}) (rate(istio_tcp_connections_opened_total{${CLIENT}}${RATE}))`,
                legend: 'opened {{destination_workload}}.{{destination_workload_namespace}}',
              },
              {
                expr: `sum by (${BY_WORKLOAD}) (rate(istio_tcp_connections_closed_total{${CLIENT}}${RATE}))`,
                legend: 'closed {{destination_workload}}.{{destination_workload_namespace}}',
              },
            ],
          },
        ],
      },
      {
        title: 'Versions',
        panels: [
          {
            title: 'Proxy versions',
            description: 'Number of proxies per component and version (istio_build).',
            type: 'table',
            width: 24,
            height: 6,
            targets: [{ expr: 'sum by (component, tag) (istio_build)', instant: true, format: 'table' }],
          },
        ],
      },
    ],
  });
}

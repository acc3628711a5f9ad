/**
 * Mesh overview: the global request volume and success rate, and one line per destination workload.
 * Queries follow Istio's Mesh dashboard (istio/istio `manifests/addons/dashboards/lib/queries.libsonnet`):
 * client-side view (`reporter=~"source|waypoint"`), success = non-5xx, and 4xx/5xx stats that read 0
 * (`or vector(0)`) rather than "No data" when no such response happened.
 */
import { createDashboard } from './builder.js';
import type { GrafanaDashboard } from './builder.js';
import { BY_DESTINATION_WORKLOAD, RATE, histogramQuantile, quantileTargets, successRatio } from './istio-queries.js';
import { DASHBOARD_UIDS } from './uids.js';

/** Client-side view of every request, as Istio's mesh dashboard counts it. */
const CLIENT = 'reporter=~"source|waypoint"';
const DURATION = 'istio_request_duration_milliseconds';

/** Build the mesh dashboard. */
export function createMeshDashboard(): GrafanaDashboard {
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
            targets: [{ expr: successRatio(CLIENT) }],
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
                expr: `sum by (${BY_DESTINATION_WORKLOAD.by}, destination_service) (rate(istio_requests_total{${CLIENT}}${RATE}))`,
                instant: true,
                format: 'table',
              },
              { expr: histogramQuantile(0.99, DURATION, CLIENT, BY_DESTINATION_WORKLOAD), instant: true, format: 'table' },
              { expr: successRatio(CLIENT, BY_DESTINATION_WORKLOAD), instant: true, format: 'table' },
            ],
          },
          {
            title: 'Request rate by destination workload',
            description: 'Requests per second per destination workload.',
            type: 'timeseries',
            unit: 'reqps',
            targets: [
              {
                expr: `sum by (${BY_DESTINATION_WORKLOAD.by}) (rate(istio_requests_total{${CLIENT}}${RATE}))`,
                legend: BY_DESTINATION_WORKLOAD.legend,
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
            targets: quantileTargets(DURATION, CLIENT, BY_DESTINATION_WORKLOAD),
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
                expr: `sum by (${BY_DESTINATION_WORKLOAD.by}) (rate(istio_tcp_received_bytes_total{${CLIENT}}${RATE}))`,
                legend: `received ${BY_DESTINATION_WORKLOAD.legend}`,
              },
              {
                expr: `sum by (${BY_DESTINATION_WORKLOAD.by}) (rate(istio_tcp_sent_bytes_total{${CLIENT}}${RATE}))`,
                legend: `sent ${BY_DESTINATION_WORKLOAD.legend}`,
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
                expr: `sum by (${BY_DESTINATION_WORKLOAD.by}) (rate(istio_tcp_connections_opened_total{${CLIENT}}${RATE}))`,
                legend: `opened ${BY_DESTINATION_WORKLOAD.legend}`,
              },
              {
                expr: `sum by (${BY_DESTINATION_WORKLOAD.by}) (rate(istio_tcp_connections_closed_total{${CLIENT}}${RATE}))`,
                legend: `closed ${BY_DESTINATION_WORKLOAD.legend}`,
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

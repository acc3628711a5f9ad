/**
 * One service (`destination_service`), from its clients' and its servers' points of view. Variables and
 * panel shapes follow Istio's Service dashboard (istio/istio `manifests/addons/dashboards/istio-service-dashboard.json`):
 * `qrep` picks which reporter's copy of each request to read, success = non-5xx, and the success-rate denominator
 * is `or on () vector(1)` so an idle service shows no division by zero.
 */
import { createDashboard } from './builder.js';
import type { GrafanaDashboard, PanelOptions } from './builder.js';
import { DASHBOARD_UIDS } from './uids.js';

const RATE = '[$__rate_interval]';
/** Requests to the selected service as counted by the selected reporters. */
const SVC = 'reporter=~"$qrep", destination_service="$service"';
/** The same, narrowed to the selected clients. */
const FROM = `${SVC}, source_workload_namespace=~"$srcns", source_workload=~"$srcwl"`;
const BY_SOURCE = 'source_workload, source_workload_namespace';
/** Series that name a destination_service: HTTP/gRPC requests and TCP traffic (a TCP-only service has no requests). */
const ANY_TRAFFIC = '{__name__=~"istio_requests_total|istio_tcp_sent_bytes_total"';

/** P50/P90/P99 targets of a histogram, optionally per client workload. */
const quantiles = (metric: string, filter: string, by: string): PanelOptions['targets'] =>
  [0.5, 0.9, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le${by === '' ? '' : ', ' + by}) (rate(${metric}_bucket{${filter}}${RATE})))`,
    legend: by === '' ? `P${q * 100}` : `P${q * 100} {{source_workload}}.{{source_workload_namespace}}`,
  }));

/** Build the service dashboard. */
export function createServiceDashboard(): GrafanaDashboard {
  return createDashboard({
    uid: DASHBOARD_UIDS.service,
    title: 'meshtel / Service',
    description: 'One destination service: request volume, success rate, latency and sizes, by client workload.',
    tags: ['meshtel', 'istio'],
    links: [
      { title: 'Mesh', uid: DASHBOARD_UIDS.mesh },
      { title: 'Workload', uid: DASHBOARD_UIDS.workload },
    ],
    variables: [
      { kind: 'datasource' },
      {
        kind: 'query',
        name: 'service',
        label: 'Service',
        query: `label_values(${ANY_TRAFFIC}}, destination_service)`,
      },
      {
        kind: 'custom',
        name: 'qrep',
        label: 'Reporter',
        values: ['source', 'destination'],
        selected: ['destination'],
        multi: true,
      },
      {
        kind: 'query',
        name: 'srcns',
        label: 'Client namespace',
        query: `label_values(${ANY_TRAFFIC}, ${SVC}}, source_workload_namespace)`,
        multi: true,
        includeAll: true,
      },
      {
        kind: 'query',
        name: 'srcwl',
        label: 'Client workload',
        query: `label_values(${ANY_TRAFFIC}, ${SVC}, source_workload_namespace=~"$srcns"}, source_workload)`,
        multi: true,
        includeAll: true,
      },
    ],
    rows: [
      {
        title: 'General',
        panels: [
          {
            title: 'Request Volume',
            description: 'Requests per second to the service.',
            type: 'stat',
            unit: 'reqps',
            width: 6,
            targets: [{ expr: `round(sum(rate(istio_requests_total{${SVC}}${RATE})), 0.001)` }],
          },
          {
            title: 'Success Rate (non-5xx responses)',
            description: 'Share of requests to the service that did not end in a 5xx response.',
            type: 'stat',
            unit: 'percentunit',
            decimals: 2,
            width: 6,
            targets: [
              {
                expr:
                  `sum(rate(istio_requests_total{${SVC}, response_code!~"5.."}${RATE}))` +
                  ` / (sum(rate(istio_requests_total{${SVC}}${RATE})) or on () vector(1))`,
              },
            ],
          },
          {
            title: 'TCP Received Bytes',
            description: 'Bytes per second the service received over TCP.',
            type: 'stat',
            unit: 'Bps',
            width: 6,
            targets: [{ expr: `sum(rate(istio_tcp_received_bytes_total{${SVC}}${RATE})) or vector(0)` }],
          },
          {
            title: 'TCP Sent Bytes',
            description: 'Bytes per second the service sent over TCP.',
            type: 'stat',
            unit: 'Bps',
            width: 6,
            targets: [{ expr: `sum(rate(istio_tcp_sent_bytes_total{${SVC}}${RATE})) or vector(0)` }],
          },
          {
            title: 'Request Duration',
            description: 'P50, P90 and P99 of the request duration.',
            type: 'timeseries',
            unit: 'ms',
            width: 24,
            targets: quantiles('istio_request_duration_milliseconds', SVC, ''),
          },
        ],
      },
      {
        title: 'Clients',
        panels: [
          {
            title: 'Requests By Source And Response Code',
            description: 'Requests per second per client workload and response code.',
            type: 'timeseries',
            unit: 'reqps',
            targets: [
              {
                expr: `round(sum by (${BY_SOURCE}, response_code) (rate(istio_requests_total{${FROM}}${RATE})), 0.001)`,
                legend: '{{source_workload}}.{{source_workload_namespace}} : {{response_code}}',
              },
            ],
          },
          {
            title: 'Success Rate (non-5xx responses) By Source',
            description: 'Share of non-5xx responses per client workload.',
            type: 'timeseries',
            unit: 'percentunit',
            min: 0,
            max: 1,
            targets: [
              {
                expr:
                  `sum by (${BY_SOURCE}) (rate(istio_requests_total{${FROM}, response_code!~"5.."}${RATE}))` +
                  ` / sum by (${BY_SOURCE}) (rate(istio_requests_total{${FROM}}${RATE}))`,
                legend: '{{source_workload}}.{{source_workload_namespace}}',
              },
            ],
          },
          {
            title: 'Request Duration By Source',
            description: 'Request duration quantiles per client workload.',
            type: 'timeseries',
            unit: 'ms',
            targets: quantiles('istio_request_duration_milliseconds', FROM, BY_SOURCE),
          },
          {
            title: 'Requests By Connection Security Policy',
            description:
              'Requests per second by connection_security_policy (mutual_tls or none; always unknown when reported by the client).',
            type: 'timeseries',
            unit: 'reqps',
            targets: [
              {
                expr: `sum by (connection_security_policy) (rate(istio_requests_total{${FROM}}${RATE}))`,
                legend: '{{connection_security_policy}}',
              },
            ],
          },
          {
            title: 'Request Size By Source',
            description: 'Request size quantiles (wire bytes: headers and body) per client workload.',
            type: 'timeseries',
            unit: 'bytes',
            targets: quantiles('istio_request_bytes', FROM, BY_SOURCE),
          },
          {
            title: 'Response Size By Source',
            description: 'Response size quantiles (wire bytes: headers and body) per client workload.',
            type: 'timeseries',
            unit: 'bytes',
            targets: quantiles('istio_response_bytes', FROM, BY_SOURCE),
          },
        ],
      },
      {
        title: 'TCP clients',
        panels: [
          {
            title: 'Bytes Received from Incoming TCP Connections',
            description: 'Bytes per second the service received, per client workload.',
            type: 'timeseries',
            unit: 'Bps',
            targets: [
              {
                expr: `round(sum by (${BY_SOURCE}) (rate(istio_tcp_received_bytes_total{${FROM}}${RATE})), 0.001)`,
                legend: '{{source_workload}}.{{source_workload_namespace}}',
              },
            ],
          },
          {
            title: 'Bytes Sent to Incoming TCP Connections',
            description: 'Bytes per second the service sent, per client workload.',
            type: 'timeseries',
            unit: 'Bps',
            targets: [
              {
                expr: `round(sum by (${BY_SOURCE}) (rate(istio_tcp_sent_bytes_total{${FROM}}${RATE})), 0.001)`,
                legend: '{{source_workload}}.{{source_workload_namespace}}',
              },
            ],
          },
        ],
      },
    ],
  });
}

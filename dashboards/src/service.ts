/**
 * One service (`destination_service`), from its clients' and its servers' points of view. Variables and
 * panel shapes follow Istio's Service dashboard (istio/istio `manifests/addons/dashboards/istio-service-dashboard.json`):
 * `qrep` picks which reporter's copy of each request to read, success = non-5xx, and the success-rate denominator
 * is `or on () vector(1)` so an idle service shows no division by zero.
 */
import { createDashboard } from './builder.js';
import type { GrafanaDashboard } from './builder.js';
import {
  ANY_TRAFFIC,
  BY_SOURCE_WORKLOAD,
  RATE,
  quantileTargets,
  requestsByCodePanel,
  successRateByPanel,
  successRatio,
} from './istio-queries.js';
import { DASHBOARD_UIDS } from './uids.js';

/** Requests to the selected service as counted by the selected reporters. */
const SVC = 'reporter=~"$qrep", destination_service="$service"';
/** The same, narrowed to the selected clients. */
const FROM = `${SVC}, source_workload_namespace=~"$srcns", source_workload=~"$srcwl"`;

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
            targets: [{ expr: successRatio(SVC, undefined, true) }],
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
            targets: quantileTargets('istio_request_duration_milliseconds', SVC),
          },
        ],
      },
      {
        title: 'Clients',
        panels: [
          requestsByCodePanel(
            { title: 'Requests By Source And Response Code', description: 'Requests per second per client workload and response code.' },
            FROM,
            BY_SOURCE_WORKLOAD,
          ),
          successRateByPanel(
            { title: 'Success Rate (non-5xx responses) By Source', description: 'Share of non-5xx responses per client workload.' },
            FROM,
            BY_SOURCE_WORKLOAD,
          ),
          {
            title: 'Request Duration By Source',
            description: 'Request duration quantiles per client workload.',
            type: 'timeseries',
            unit: 'ms',
            targets: quantileTargets('istio_request_duration_milliseconds', FROM, BY_SOURCE_WORKLOAD),
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
            targets: quantileTargets('istio_request_bytes', FROM, BY_SOURCE_WORKLOAD),
          },
          {
            title: 'Response Size By Source',
            description: 'Response size quantiles (wire bytes: headers and body) per client workload.',
            type: 'timeseries',
            unit: 'bytes',
            targets: quantileTargets('istio_response_bytes', FROM, BY_SOURCE_WORKLOAD),
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
                expr: `round(sum by (${BY_SOURCE_WORKLOAD.by}) (rate(istio_tcp_received_bytes_total{${FROM}}${RATE})), 0.001)`,
                legend: BY_SOURCE_WORKLOAD.legend,
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
                expr: `round(sum by (${BY_SOURCE_WORKLOAD.by}) (rate(istio_tcp_sent_bytes_total{${FROM}}${RATE})), 0.001)`,
                legend: BY_SOURCE_WORKLOAD.legend,
              },
            ],
          },
        ],
      },
    ],
  });
}

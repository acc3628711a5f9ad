/**
 * One workload: its inbound traffic (as a destination) and its outbound traffic (as a source). Variables and
 * panel shapes follow Istio's Workload dashboard (istio/istio `manifests/addons/dashboards/istio-workload-dashboard.json`),
 * including its outbound view read from the client side (`reporter="source"`).
 */
import { createDashboard } from './builder.js';
import type { GrafanaDashboard } from './builder.js';
import {
  ANY_TRAFFIC,
  BY_DESTINATION_SERVICE,
  BY_SOURCE_WORKLOAD,
  RATE,
  quantileTargets,
  requestsByCodePanel,
  successRateByPanel,
  successRatio,
} from './istio-queries.js';
import { DASHBOARD_UIDS } from './uids.js';

/** Requests received by the selected workload, as counted by the selected reporters. */
const INBOUND = 'reporter=~"$qrep", destination_workload="$workload", destination_workload_namespace=~"$namespace"';
/** The same, narrowed to the selected clients. */
const FROM = `${INBOUND}, source_workload_namespace=~"$srcns", source_workload=~"$srcwl"`;
/** Requests sent by the selected workload, counted by its own (client) proxy. */
const OUTBOUND = 'reporter="source", source_workload="$workload", source_workload_namespace=~"$namespace", destination_service=~"$dstsvc"';
const DURATION = 'istio_request_duration_milliseconds';

/** Build the workload dashboard. */
export function createWorkloadDashboard(): GrafanaDashboard {
  return createDashboard({
    uid: DASHBOARD_UIDS.workload,
    title: 'meshtel / Workload',
    description:
      'One workload: inbound requests by client and outbound requests by destination service.',
    tags: ['meshtel', 'istio'],
    links: [
      { title: 'Mesh', uid: DASHBOARD_UIDS.mesh },
      { title: 'Service', uid: DASHBOARD_UIDS.service },
    ],
    variables: [
      { kind: 'datasource' },
      {
        kind: 'query',
        name: 'namespace',
        label: 'Namespace',
        // Namespaces of servers and of clients: a union of two label names needs query_result (as Istio's
        // workload dashboard does), label_values reads one label only.
        query:
          `query_result(sum by (destination_workload_namespace) (${ANY_TRAFFIC}}) or sum by (source_workload_namespace) (${ANY_TRAFFIC}}))`,
        regex: '/.*_namespace="([^"]*)".*/',
      },
      {
        kind: 'query',
        name: 'workload',
        label: 'Workload',
        // Servers and clients (a client-only workload such as a load generator has outbound panels only).
        query:
          `query_result(sum by (destination_workload) (${ANY_TRAFFIC}, destination_workload_namespace=~"$namespace"})` +
          ` or sum by (source_workload) (${ANY_TRAFFIC}, source_workload_namespace=~"$namespace"}))`,
        regex: '/.*_workload="([^"]*)".*/',
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
        label: 'Inbound namespace',
        query: `label_values(${ANY_TRAFFIC}, ${INBOUND}}, source_workload_namespace)`,
        multi: true,
        includeAll: true,
      },
      {
        kind: 'query',
        name: 'srcwl',
        label: 'Inbound workload',
        query: `label_values(${ANY_TRAFFIC}, ${INBOUND}, source_workload_namespace=~"$srcns"}, source_workload)`,
        multi: true,
        includeAll: true,
      },
      {
        kind: 'query',
        name: 'dstsvc',
        label: 'Destination service',
        query: `label_values(${ANY_TRAFFIC}, reporter="source", source_workload="$workload", source_workload_namespace=~"$namespace"}, destination_service)`,
        multi: true,
        includeAll: true,
      },
    ],
    rows: [
      {
        title: 'General',
        panels: [
          {
            title: 'Incoming Request Volume',
            description: 'Requests per second received by the workload.',
            type: 'stat',
            unit: 'reqps',
            width: 8,
            targets: [{ expr: `round(sum(rate(istio_requests_total{${INBOUND}}${RATE})), 0.001)` }],
          },
          {
            title: 'Incoming Success Rate (non-5xx responses)',
            description: 'Share of requests to the workload that did not end in a 5xx response.',
            type: 'stat',
            unit: 'percentunit',
            decimals: 2,
            width: 8,
            targets: [{ expr: successRatio(INBOUND, undefined, true) }],
          },
          {
            title: 'TCP Server Traffic',
            description: 'Bytes per second the workload received and sent over TCP as a server.',
            type: 'stat',
            unit: 'Bps',
            width: 8,
            targets: [
              {
                expr:
                  `(sum(rate(istio_tcp_received_bytes_total{${INBOUND}}${RATE})) or vector(0))` +
                  ` + (sum(rate(istio_tcp_sent_bytes_total{${INBOUND}}${RATE})) or vector(0))`,
              },
            ],
          },
          {
            title: 'Request Duration',
            description: 'P50, P90 and P99 of the duration of requests to the workload.',
            type: 'timeseries',
            unit: 'ms',
            width: 24,
            targets: quantileTargets(DURATION, INBOUND),
          },
        ],
      },
      {
        title: 'Inbound',
        panels: [
          requestsByCodePanel(
            {
              title: 'Incoming Requests By Source And Response Code',
              description: 'Requests per second per client workload and response code.',
            },
            FROM,
            BY_SOURCE_WORKLOAD,
          ),
          successRateByPanel(
            { title: 'Incoming Success Rate (non-5xx responses) By Source', description: 'Share of non-5xx responses per client workload.' },
            FROM,
            BY_SOURCE_WORKLOAD,
          ),
          {
            title: 'Incoming Request Duration By Source',
            description: 'Request duration quantiles per client workload.',
            type: 'timeseries',
            unit: 'ms',
            width: 24,
            targets: quantileTargets(DURATION, FROM, BY_SOURCE_WORKLOAD),
          },
        ],
      },
      {
        title: 'Outbound',
        panels: [
          requestsByCodePanel(
            {
              title: 'Outgoing Requests By Destination And Response Code',
              description: 'Requests per second the workload sent, per destination service and response code.',
            },
            OUTBOUND,
            BY_DESTINATION_SERVICE,
          ),
          successRateByPanel(
            {
              title: 'Outgoing Success Rate (non-5xx responses) By Destination',
              description: 'Share of non-5xx responses per destination service.',
            },
            OUTBOUND,
            BY_DESTINATION_SERVICE,
          ),
          {
            title: 'Outgoing Request Duration By Destination',
            description: 'Request duration quantiles per destination service, measured by the workload\'s proxy.',
            type: 'timeseries',
            unit: 'ms',
            targets: quantileTargets(DURATION, OUTBOUND, BY_DESTINATION_SERVICE),
          },
          {
            title: 'Outgoing TCP Traffic By Destination',
            description: 'Bytes per second the workload sent (received_bytes) and got back (sent_bytes) over TCP.',
            type: 'timeseries',
            unit: 'Bps',
            targets: [
              {
                expr: `sum by (destination_service) (rate(istio_tcp_received_bytes_total{${OUTBOUND}}${RATE}))`,
                legend: 'sent to {{destination_service}}',
              },
              {
                expr: `sum by (destination_service) (rate(istio_tcp_sent_bytes_total{${OUTBOUND}}${RATE}))`,
                legend: 'received from {{destination_service}}',
              },
            ],
          },
        ],
      },
    ],
  });
}

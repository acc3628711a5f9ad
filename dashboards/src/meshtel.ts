/**
 * meshtel itself: what the sidecar costs (CPU, memory, event-loop lag) and what it had to drop or could not
 * resolve (peer cache, unknown peers, overflowed or expired series, dropped spans, failed app scrapes).
 * Every meshtel_* counter here is bounded-and-counted by design (STYLE.md §7); a non-zero drop rate is the
 * signal to raise a limit.
 */
import { createDashboard } from './builder.js';
import type { GrafanaDashboard } from './builder.js';
import { DASHBOARD_UIDS } from './uids.js';

const RATE = '[$__rate_interval]';
const I = 'instance=~"$instance"';

/** Build the meshtel sidecar dashboard. */
export function createMeshtelDashboard(): GrafanaDashboard {
  return createDashboard({
    uid: DASHBOARD_UIDS.meshtel,
    title: 'meshtel / Sidecar',
    description:
      'Overhead and health of meshtel proxies: CPU, memory, event-loop lag, peer metadata cache, unknown peers, series limits and span export.',
    tags: ['meshtel'],
    links: [{ title: 'Mesh', uid: DASHBOARD_UIDS.mesh }],
    variables: [
      { kind: 'datasource' },
      {
        kind: 'query',
        name: 'instance',
        label: 'Proxy',
        // meshtel_series_active is exported by every sidecar and proxyless app from the start.
        query: 'label_values(meshtel_series_active, instance)',
        multi: true,
        includeAll: true,
      },
    ],
    rows: [
      {
        title: 'Proxy overhead',
        panels: [
          {
            title: 'CPU',
            description: 'CPU used by the sidecar process, in cores.',
            type: 'timeseries',
            unit: 'short',
            width: 8,
            targets: [{ expr: `rate(process_cpu_seconds_total{${I}}${RATE})`, legend: '{{instance}}' }],
          },
          {
            title: 'Resident memory',
            description: 'Resident set size of the sidecar process.',
            type: 'timeseries',
            unit: 'bytes',
            width: 8,
            targets: [{ expr: `process_resident_memory_bytes{${I}}`, legend: '{{instance}}' }],
          },
          {
            title: 'Event-loop lag',
            description: 'Node.js event-loop lag of the sidecar: time a ready callback waited. Adds directly to request latency.',
            type: 'timeseries',
            unit: 's',
            width: 8,
            targets: [{ expr: `nodejs_eventloop_lag_seconds{${I}}`, legend: '{{instance}}' }],
          },
          {
            title: 'CPU per 1000 requests/s',
            description:
              'Cores used per 1000 requests per second handled (each reporter counts once). Istio 1.24 publishes 0.20 vCPU per 1000 rps for an Envoy sidecar.',
            type: 'timeseries',
            unit: 'short',
            targets: [
              {
                expr:
                  `sum by (instance) (rate(process_cpu_seconds_total{${I}}${RATE}))` +
                  ` / (sum by (instance) (rate(istio_requests_total{${I}}${RATE})) / 1000)`,
                legend: '{{instance}}',
              },
            ],
          },
          {
            title: 'Requests in flight',
            description: 'Requests currently proxied by each sidecar.',
            type: 'timeseries',
            unit: 'short',
            targets: [{ expr: `meshtel_proxy_requests_active{${I}}`, legend: '{{instance}}' }],
          },
        ],
      },
      {
        title: 'Peer metadata',
        panels: [
          {
            title: 'Peer cache hit ratio',
            description: 'Share of metadata-exchange lookups answered from the decoded-peer cache.',
            type: 'timeseries',
            unit: 'percentunit',
            min: 0,
            max: 1,
            width: 8,
            targets: [
              {
                expr:
                  `sum by (instance) (rate(meshtel_peer_cache_hits_total{${I}}${RATE}))` +
                  ` / (sum by (instance) (rate(meshtel_peer_cache_hits_total{${I}}${RATE}))` +
                  ` + sum by (instance) (rate(meshtel_peer_cache_misses_total{${I}}${RATE})))`,
                legend: '{{instance}}',
              },
            ],
          },
          {
            title: 'Peer cache evictions',
            description: 'Peers evicted from the bounded cache per second; a steady rate means the cache is too small.',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [{ expr: `rate(meshtel_peer_cache_evictions_total{${I}}${RATE})`, legend: '{{instance}}' }],
          },
          {
            title: 'Unknown peers by reason',
            description:
              'Requests and connections whose peer could not be identified, by reason and reporter; their peer labels read "unknown".',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [
              {
                expr: `sum by (reason, reporter) (rate(meshtel_peer_unknown_total{${I}}${RATE}))`,
                legend: '{{reporter}}: {{reason}}',
              },
            ],
          },
        ],
      },
      {
        title: 'Series and scrapes',
        panels: [
          {
            title: 'Active series per metric',
            description: 'Live series each istio_* metric holds in the sidecar; each metric is capped, the excess goes to its overflow series.',
            type: 'timeseries',
            unit: 'short',
            width: 24,
            targets: [{ expr: `sum by (metric) (meshtel_series_active{${I}})`, legend: '{{metric}}' }],
          },
          {
            title: 'Overflowed series',
            description: 'Samples folded into the overflow series because a metric reached its series limit.',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [
              { expr: `sum by (metric) (rate(meshtel_series_overflow_total{${I}}${RATE}))`, legend: '{{metric}}' },
            ],
          },
          {
            title: 'Expired series',
            description: 'Idle series removed by stats eviction (Istio statsEvictionInterval).',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [
              { expr: `sum by (metric) (rate(meshtel_series_expired_total{${I}}${RATE}))`, legend: '{{metric}}' },
            ],
          },
          {
            title: 'Label values rejected',
            description: 'Label values replaced by "overflow" because an allow-list or length limit refused them, by label.',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [
              { expr: `sum by (label) (rate(meshtel_label_value_rejected_total{${I}}${RATE}))`, legend: '{{label}}' },
            ],
          },
          {
            title: 'Stats errors',
            description: 'Recordings that failed inside meshtel and were dropped (never thrown into the request).',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [{ expr: `rate(meshtel_stats_errors_total{${I}}${RATE})`, legend: '{{instance}}' }],
          },
          {
            title: 'Merged-metrics scrape failures',
            description:
              'Failed reads of the app metrics merged into :15020/stats/prometheus, by type (Istio agent metric istio_agent_scrape_failures_total).',
            type: 'timeseries',
            unit: 'ops',
            width: 8,
            targets: [
              { expr: `sum by (type) (rate(istio_agent_scrape_failures_total{${I}}${RATE}))`, legend: '{{type}}' },
            ],
          },
        ],
      },
      {
        title: 'Tracing',
        panels: [
          {
            title: 'Spans exported and dropped',
            description: 'Spans per second handed to the exporter, and spans dropped because the export queue was full.',
            type: 'timeseries',
            unit: 'ops',
            targets: [
              { expr: `sum(rate(meshtel_spans_exported_total{${I}}${RATE}))`, legend: 'exported' },
              { expr: `sum(rate(meshtel_spans_dropped_total{${I}}${RATE}))`, legend: 'dropped' },
            ],
          },
          {
            title: 'Span drop ratio',
            description: 'Share of finished spans that were dropped instead of exported.',
            type: 'stat',
            unit: 'percentunit',
            decimals: 2,
            height: 8,
            targets: [
              {
                expr:
                  `sum(rate(meshtel_spans_dropped_total{${I}}${RATE}))` +
                  ` / (sum(rate(meshtel_spans_dropped_total{${I}}${RATE})) + sum(rate(meshtel_spans_exported_total{${I}}${RATE})))`,
              },
            ],
          },
        ],
      },
    ],
  });
}

/**
 * Istio's standard metrics: names, types, label lists in Envoy's emission order and Envoy's default
 * histogram buckets. Everything here is data, decided once; the recorder (`istio-stats.ts`) and the
 * renderer (`exposition.ts`) read it.
 *
 * Source: istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc` (tag order as pushed
 * in `populatePeerInfo`/`log`), envoy `source/common/stats/histogram_impl.cc` (`defaultBuckets`).
 */
import { ConfigError, quote } from '../core/errors.js';

/** `istio_requests_total`: +1 per finished HTTP/gRPC stream. */
export const ISTIO_REQUESTS_TOTAL = 'istio_requests_total';
/** `istio_request_duration_milliseconds`: histogram of whole milliseconds. */
export const ISTIO_REQUEST_DURATION_MILLISECONDS = 'istio_request_duration_milliseconds';
/** `istio_request_bytes`: histogram of downstream wire bytes received. */
export const ISTIO_REQUEST_BYTES = 'istio_request_bytes';
/** `istio_response_bytes`: histogram of downstream wire bytes sent. */
export const ISTIO_RESPONSE_BYTES = 'istio_response_bytes';
/** `istio_request_messages_total`: gRPC request messages (deltas). */
export const ISTIO_REQUEST_MESSAGES_TOTAL = 'istio_request_messages_total';
/** `istio_response_messages_total`: gRPC response messages (deltas). */
export const ISTIO_RESPONSE_MESSAGES_TOTAL = 'istio_response_messages_total';
/** `istio_tcp_connections_opened_total`. */
export const ISTIO_TCP_CONNECTIONS_OPENED_TOTAL = 'istio_tcp_connections_opened_total';
/** `istio_tcp_connections_closed_total`. */
export const ISTIO_TCP_CONNECTIONS_CLOSED_TOTAL = 'istio_tcp_connections_closed_total';
/** `istio_tcp_sent_bytes_total`. */
export const ISTIO_TCP_SENT_BYTES_TOTAL = 'istio_tcp_sent_bytes_total';
/** `istio_tcp_received_bytes_total`. */
export const ISTIO_TCP_RECEIVED_BYTES_TOTAL = 'istio_tcp_received_bytes_total';
/** `istio_build{component,tag}` gauge = 1. */
export const ISTIO_BUILD = 'istio_build';

/** meshtel self metric: why a peer was unknown (`reason`, `reporter`). */
export const MESHTEL_PEER_UNKNOWN_TOTAL = 'meshtel_peer_unknown_total';
/** meshtel self metric: observations routed to a metric's overflow series (`metric`). */
export const MESHTEL_SERIES_OVERFLOW_TOTAL = 'meshtel_series_overflow_total';
/** meshtel self metric: label values replaced by `overflow` because an allow-list refused them (`label`). */
export const MESHTEL_LABEL_VALUE_REJECTED_TOTAL = 'meshtel_label_value_rejected_total';
/** meshtel self metric: series removed by the TTL sweep (`metric`). */
export const MESHTEL_SERIES_EXPIRED_TOTAL = 'meshtel_series_expired_total';
/** meshtel self metric: recordings that failed inside meshtel and were dropped (never thrown to the caller). */
export const MESHTEL_STATS_ERRORS_TOTAL = 'meshtel_stats_errors_total';
/** meshtel self metric: Telemetry tag expressions that failed to compile (`metric`, `tag`); counted once per configuration. */
export const MESHTEL_TELEMETRY_EXPRESSION_ERRORS_TOTAL = 'meshtel_telemetry_expression_errors_total';
/** meshtel self metric: label values cut to `maxLabelValueLength` (`label`), counted once per peer context or label set for peer and local labels, per request for Telemetry tag-override and custom-metric values (evaluated per request). */
export const MESHTEL_LABEL_VALUE_TRUNCATED_TOTAL = 'meshtel_label_value_truncated_total';
/** meshtel self metric: new label sets sent to the overflow series because a byte/series budget was spent (`budget`). */
export const MESHTEL_SERIES_BUDGET_REFUSED_TOTAL = 'meshtel_series_budget_refused_total';
/** meshtel self metric: bytes the live series take at their longest rendered form (`budget`). */
export const MESHTEL_SERIES_BUDGET_USED_BYTES = 'meshtel_series_budget_used_bytes';
/** meshtel self metric: the configured byte budgets (`budget`). */
export const MESHTEL_SERIES_BUDGET_LIMIT_BYTES = 'meshtel_series_budget_limit_bytes';
/** meshtel self metric: live series per metric (`metric`). */
export const MESHTEL_SERIES_ACTIVE = 'meshtel_series_active';

/** Prometheus metric types we emit. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** The ten standard istio metrics, by their Prometheus names. */
export type StandardMetricName =
  | typeof ISTIO_REQUESTS_TOTAL
  | typeof ISTIO_REQUEST_DURATION_MILLISECONDS
  | typeof ISTIO_REQUEST_BYTES
  | typeof ISTIO_RESPONSE_BYTES
  | typeof ISTIO_REQUEST_MESSAGES_TOTAL
  | typeof ISTIO_RESPONSE_MESSAGES_TOTAL
  | typeof ISTIO_TCP_CONNECTIONS_OPENED_TOTAL
  | typeof ISTIO_TCP_CONNECTIONS_CLOSED_TOTAL
  | typeof ISTIO_TCP_SENT_BYTES_TOTAL
  | typeof ISTIO_TCP_RECEIVED_BYTES_TOTAL;

/**
 * The 25 HTTP tags in the order Envoy pushes them (`populatePeerInfo` then `log`). Envoy does not sort
 * tags, so exposition keeps this order (real 1.17.8 output, shared/compat/mx-vectors.json #12).
 */
export const HTTP_LABELS = Object.freeze([
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const);

/** One of the 25 standard tag names. */
export type StandardLabelName = (typeof HTTP_LABELS)[number];

/** TCP: the same tags without response_code and grpc_response_status (23 tags). */
export const TCP_LABELS = Object.freeze(
  HTTP_LABELS.filter((l) => l !== 'response_code' && l !== 'grpc_response_status'),
);

/** Index of each standard tag in {@link HTTP_LABELS}; the recorder fills a 25-slot vector by these. */
export const LABEL_INDEX: Readonly<Record<StandardLabelName, number>> = Object.freeze(
  Object.fromEntries(HTTP_LABELS.map((l, i) => [l, i])) as Record<StandardLabelName, number>,
);

/**
 * Envoy's default histogram bounds, used by Istio for durations (ms) and sizes (bytes) alike
 * (envoy `source/common/stats/histogram_impl.cc` `defaultBuckets`).
 */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
]);

/** Static description of one standard metric. */
export interface MetricDefinition {
  readonly name: StandardMetricName;
  readonly type: 'counter' | 'histogram';
  /** `http` metrics carry the 25 HTTP tags, `tcp` metrics the 23 TCP tags. */
  readonly kind: 'http' | 'tcp';
  /** Telemetry API enum (istio/api `telemetry/v1alpha1/telemetry.proto` MetricSelector.IstioMetric). */
  readonly telemetryName: TelemetryMetricName;
  readonly help: string;
}

/** Telemetry API metric enum names. */
export type TelemetryMetricName =
  | 'REQUEST_COUNT'
  | 'REQUEST_DURATION'
  | 'REQUEST_SIZE'
  | 'RESPONSE_SIZE'
  | 'GRPC_REQUEST_MESSAGES'
  | 'GRPC_RESPONSE_MESSAGES'
  | 'TCP_OPENED_CONNECTIONS'
  | 'TCP_CLOSED_CONNECTIONS'
  | 'TCP_SENT_BYTES'
  | 'TCP_RECEIVED_BYTES';

/**
 * The ten standard metrics in a fixed order; the recorder indexes per-metric arrays by position here
 * (`METRIC.REQUESTS` etc.).
 */
export const METRICS: readonly MetricDefinition[] = Object.freeze([
  { name: ISTIO_REQUESTS_TOTAL, type: 'counter', kind: 'http', telemetryName: 'REQUEST_COUNT', help: 'Requests (HTTP/gRPC streams) handled, counted at stream end.' },
  { name: ISTIO_REQUEST_DURATION_MILLISECONDS, type: 'histogram', kind: 'http', telemetryName: 'REQUEST_DURATION', help: 'Request duration in whole milliseconds.' },
  { name: ISTIO_REQUEST_BYTES, type: 'histogram', kind: 'http', telemetryName: 'REQUEST_SIZE', help: 'Downstream wire bytes received per request (headers and body).' },
  { name: ISTIO_RESPONSE_BYTES, type: 'histogram', kind: 'http', telemetryName: 'RESPONSE_SIZE', help: 'Downstream wire bytes sent per request (headers and body).' },
  { name: ISTIO_REQUEST_MESSAGES_TOTAL, type: 'counter', kind: 'http', telemetryName: 'GRPC_REQUEST_MESSAGES', help: 'gRPC request messages.' },
  { name: ISTIO_RESPONSE_MESSAGES_TOTAL, type: 'counter', kind: 'http', telemetryName: 'GRPC_RESPONSE_MESSAGES', help: 'gRPC response messages.' },
  { name: ISTIO_TCP_CONNECTIONS_OPENED_TOTAL, type: 'counter', kind: 'tcp', telemetryName: 'TCP_OPENED_CONNECTIONS', help: 'TCP connections opened.' },
  { name: ISTIO_TCP_CONNECTIONS_CLOSED_TOTAL, type: 'counter', kind: 'tcp', telemetryName: 'TCP_CLOSED_CONNECTIONS', help: 'TCP connections closed.' },
  { name: ISTIO_TCP_SENT_BYTES_TOTAL, type: 'counter', kind: 'tcp', telemetryName: 'TCP_SENT_BYTES', help: 'Bytes sent on TCP connections.' },
  { name: ISTIO_TCP_RECEIVED_BYTES_TOTAL, type: 'counter', kind: 'tcp', telemetryName: 'TCP_RECEIVED_BYTES', help: 'Bytes received on TCP connections.' },
] as const satisfies readonly MetricDefinition[]);

/** Positions in {@link METRICS}. */
export const METRIC = Object.freeze({
  REQUESTS: 0,
  DURATION: 1,
  REQUEST_BYTES: 2,
  RESPONSE_BYTES: 3,
  REQUEST_MESSAGES: 4,
  RESPONSE_MESSAGES: 5,
  TCP_OPENED: 6,
  TCP_CLOSED: 7,
  TCP_SENT: 8,
  TCP_RECEIVED: 9,
});

/** Per-metric histogram bucket overrides, keyed by Prometheus name (like `sidecar.istio.io/statsHistogramBuckets`). */
export type BucketOverrides = Partial<
  Record<typeof ISTIO_REQUEST_DURATION_MILLISECONDS | typeof ISTIO_REQUEST_BYTES | typeof ISTIO_RESPONSE_BYTES, readonly number[]>
>;

/**
 * Validate histogram bounds: a non-empty, strictly increasing list of finite numbers.
 * Throws `MESHTEL_ERR_INVALID_BUCKETS` naming the metric and the bad value.
 */
export function validateBuckets(metric: string, buckets: unknown): readonly number[] {
  if (!Array.isArray(buckets) || buckets.length === 0) {
    throw new ConfigError('MESHTEL_ERR_INVALID_BUCKETS', `buckets for ${metric} must be a non-empty array, got ${quote(buckets)}`, {
      field: `buckets.${metric}`,
      value: buckets,
    });
  }
  let prev = -Infinity;
  for (let i = 0; i < buckets.length; i++) {
    const b: unknown = buckets[i];
    if (typeof b !== 'number' || !Number.isFinite(b) || b <= prev) {
      throw new ConfigError(
        'MESHTEL_ERR_INVALID_BUCKETS',
        `buckets for ${metric} must be increasing finite numbers; element ${i} is ${quote(b)}`,
        { field: `buckets.${metric}[${i}]`, value: b },
      );
    }
    prev = b;
  }
  return Object.freeze([...(buckets as number[])]);
}

/**
 * Format a bucket bound as Envoy does (`%.32g`, envoy `prometheus_stats.cc`): integers without a
 * decimal point, fractions with their exact binary expansion up to 32 significant digits
 * (`0.5` → `0.5`, `0.1` → `0.10000000000000000555111512312578`).
 */
export function formatLe(bound: number): string {
  if (bound === Infinity) return '+Inf';
  if (bound === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(bound)));
  if (exp < -4 || exp >= 32) {
    // %g switches to exponent form here; JS gives the same digits.
    const [m = '', e = '0'] = bound.toExponential(31).split('e');
    const mant = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
    const en = Number(e);
    return `${mant}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  }
  // toFixed() turns exponential from 1e21 on; such bounds are integers, BigInt prints them whole.
  if (Math.abs(bound) >= 1e21) return BigInt(bound).toString();
  const fixed = bound.toFixed(Math.max(0, 31 - exp));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

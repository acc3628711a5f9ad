/**
 * The stats stage (`meshtel/stats`, re-exported by the package root): the istio_* metric names and label sets, the
 * recorder, the Telemetry API and the Prometheus exposition. Listed by name (STYLE.md §2); docs/api.md says why each
 * name is public, and test/package/surface.test.ts keeps this list deliberate.
 */
export { ResponseFlag } from './types.js';
export type {
  Reporter,
  ServiceInfo,
  ResponseFlagName,
  SpecialCluster,
  ConnectionAttributes,
  HttpStreamAttributes,
} from './types.js';
export { createIstioStats } from './istio-stats.js';
export type { IstioStats, IstioStatsOptions, TcpConnectionStats } from './istio-stats.js';
export type { CustomMetricDefinition } from './custom-metrics.js';
export { parseTelemetry } from './telemetry-api.js';
export type { TelemetryConfig, MetricOverride, TagOverride, TelemetryMode } from './telemetry-api.js';
export {
  renderMetrics,
  renderMetricsToString,
  createMetricsResponse,
  createMetricsHandler,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE,
} from './exposition.js';
export type { ExpositionFormat, RenderOptions, MetricsResponse } from './exposition.js';
export { PROTOBUF_CONTENT_TYPE } from './media-types.js';
export type { NativeHistogramOptions } from './native-histogram.js';
export {
  DEFAULT_BUCKETS,
  HTTP_LABELS,
  TCP_LABELS,
  ISTIO_REQUESTS_TOTAL,
  ISTIO_REQUEST_DURATION_MILLISECONDS,
  ISTIO_REQUEST_BYTES,
  ISTIO_RESPONSE_BYTES,
  ISTIO_REQUEST_MESSAGES_TOTAL,
  ISTIO_RESPONSE_MESSAGES_TOTAL,
  ISTIO_TCP_CONNECTIONS_OPENED_TOTAL,
  ISTIO_TCP_CONNECTIONS_CLOSED_TOTAL,
  ISTIO_TCP_SENT_BYTES_TOTAL,
  ISTIO_TCP_RECEIVED_BYTES_TOTAL,
  ISTIO_BUILD,
  MESHTEL_PEER_UNKNOWN_TOTAL,
  MESHTEL_SERIES_OVERFLOW_TOTAL,
} from './definitions.js';
export type { BucketOverrides } from './definitions.js';
export { formatResponseFlags } from './response-flags.js';

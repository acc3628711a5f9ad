/**
 * meshtel's public surface for an app that embeds it: the codecs, the exchange, the stats recorder and the
 * proxyless embedding. Everything exported is listed by name (STYLE.md §2: no `export *`); what is not exported is
 * internal and free to change. The root loads neither the sidecar nor the OpenTelemetry SDK nor the CLI/demo:
 * `meshtel/sidecar` and `meshtel/tracing` (`createTracing`) are subpaths of their own, and `meshtel/embed`,
 * `meshtel/embed/fastify` (no undici), `meshtel/metadata` and `meshtel/stats` load only their stage
 * (package.json "exports"; test/package/module-load.test.ts checks what each one loads).
 */

// --- core ---
export { ERROR_CODES, MeshtelError, ConfigError, DecodeError, isMeshtelError } from './core/errors.js';
export type { MeshtelErrorCode } from './core/errors.js';
export { createLogger, silentLogger } from './core/logger.js';
export type { Logger, LoggerOptions, LogLevel } from './core/logger.js';
export { ISTIO_PORTS } from './core/config.js';

// --- metadata (also meshtel/metadata) ---
export type {
  PeerMetadata,
  WorkloadMetadata,
  WorkloadType,
  ProxyType,
  PeerResult,
  UnknownPeerReason,
  PayloadProfile,
} from './metadata/types.js';
export { PAYLOAD_PROFILES, DEFAULT_PAYLOAD_PROFILE } from './metadata/types.js';
export {
  loadWorkloadMetadata,
  createWorkloadMetadata,
  parseDownwardApi,
  readDownwardApiFile,
  DEFAULT_LABELS_PATH,
  DEFAULT_ANNOTATIONS_PATH,
} from './metadata/workload.js';
export type { WorkloadMetadataInput, WorkloadMetadataOptions } from './metadata/workload.js';
export { formatNodeId, parseNodeId, tryParseNodeId } from './metadata/node-id.js';
export type { ParsedNodeId } from './metadata/node-id.js';
export {
  HEADER_PEER_METADATA,
  HEADER_PEER_METADATA_ID,
  DEFAULT_MAX_MX_BYTES,
  encodeMxHeader,
  decodeMxHeader,
  decodeMxBytes,
  mxStruct,
  peerFromStruct,
} from './metadata/mx-header.js';
export type { DecodeMxOptions, MxEncodeOptions } from './metadata/mx-header.js';
export { HEADER_BAGGAGE, encodeBaggage, decodeBaggage } from './metadata/baggage.js';
export type { DecodeBaggageOptions } from './metadata/baggage.js';
export { MX_MAGIC, ALPN_PEER_EXCHANGE, encodeTcpFrame, createTcpFrameParser } from './metadata/tcp-frame.js';
export type { TcpFrameParser, TcpParseStep, TcpFrameParserOptions } from './metadata/tcp-frame.js';
export { parseOwner } from './metadata/owner.js';
export { parseEndpointMetadata, formatEndpointMetadata, serializePeerAsString } from './metadata/endpoint-metadata.js';

// --- exchange ---
export type {
  ExchangeExtract,
  PropagationMethod,
  MetadataExchangeMode,
  HeaderGetter,
  HeaderSetter,
  HeaderRemover,
} from './exchange/types.js';
export { createPeerCache, DEFAULT_PEER_CACHE_ENTRIES } from './exchange/peer-cache.js';
export type { PeerCache, PeerCacheOptions, FoundPeer } from './exchange/peer-cache.js';
export { createExchangeCounters, UNKNOWN_PEER_REASONS } from './exchange/counters.js';
export type { ExchangeCounters } from './exchange/counters.js';
export {
  createHttpMetadataExchange,
  nodeHeaderGetter,
  nodeHeaderSetter,
  nodeHeaderRemover,
} from './exchange/http-exchange.js';
export type { HttpMetadataExchange, HttpMetadataExchangeOptions, NodeHeaders } from './exchange/http-exchange.js';
export { createTcpMetadataExchange } from './exchange/tcp-exchange.js';
export type { TcpMetadataExchange, TcpMetadataExchangeOptions } from './exchange/tcp-exchange.js';

// --- stats (also meshtel/stats) ---
export { ResponseFlag } from './stats/types.js';
export type {
  Reporter,
  MetricMode,
  ServiceInfo,
  ResponseFlagName,
  SpecialCluster,
  ConnectionAttributes,
  HttpStreamAttributes,
} from './stats/types.js';
export { createIstioStats } from './stats/istio-stats.js';
export type { IstioStats, IstioStatsOptions, TcpConnectionStats } from './stats/istio-stats.js';
export type { CustomMetricDefinition } from './stats/custom-metrics.js';
export { parseTelemetry } from './stats/telemetry-api.js';
export type { TelemetryConfig, MetricOverride, TagOverride, TelemetryMode } from './stats/telemetry-api.js';
export { compileExpression } from './stats/expression.js';
export type { CompiledExpression, ExpressionScope, CelValue } from './stats/expression.js';
export {
  negotiateFormat,
  acceptsGzip,
  renderMetrics,
  renderMetricsToString,
  createMetricsResponse,
  createMetricsHandler,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE,
} from './stats/exposition.js';
export type { ExpositionFormat, RenderOptions, MetricsResponse } from './stats/exposition.js';
export { PROTOBUF_CONTENT_TYPE, contentTypeOf, formatOfContentType } from './stats/media-types.js';
export type { TextFormat } from './stats/media-types.js';
export { readNativeHistogram, DEFAULT_NATIVE_SCHEMA, DEFAULT_NATIVE_ZERO_THRESHOLD, DEFAULT_NATIVE_MAX_BUCKETS } from './stats/native-histogram.js';
export type { NativeHistogramOptions, NativeHistogramSnapshot, NativeBuckets, NativeSpan } from './stats/native-histogram.js';
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
} from './stats/definitions.js';
export type { BucketOverrides } from './stats/definitions.js';
export { formatResponseFlags } from './stats/response-flags.js';

// --- tracing (createTracing, which loads the OpenTelemetry SDK, is in meshtel/tracing) ---
export type { HopTracer, HopSpan, SpanStartInfo, SpanEndInfo, HeaderBag } from './tracing/types.js';
export { createNoopTracing } from './tracing/noop.js';
export type { TracingOptions, TracingExporterName, PropagationFormat } from './tracing/config.js';
export { METRIC_SPANS_EXPORTED, METRIC_SPANS_DROPPED } from './tracing/span-metrics.js';
export type { SpanDropReason } from './tracing/span-metrics.js';

// --- embed (also meshtel/embed) ---
export { createMeshtelEmbedding, kubernetesServiceResolver, meshtelFastify, createMeshtelInterceptor, PROPAGATED_HEADERS } from './embed/index.js';
export type { MeshtelEmbedding, MeshtelEmbeddingOptions, MeshtelFastifyOptions, MeshtelInterceptorOptions } from './embed/index.js';

// --- live request tap (the demo itself is CLI-internal: `meshtel demo`) ---
export { TAP_CHANNEL_NAME, createTapHandler, tapChannel } from './core/tap.js';
export type { TapHandlerOptions, TapRecord } from './core/tap.js';

/**
 * meshtel's public surface for an app that embeds it: the codecs, the exchange, the stats recorder and the
 * proxyless embedding. Everything exported is listed by name (STYLE.md §2: no `export *`); what is not exported is
 * internal and free to change. The metadata, stats and embedding names are re-exported from their stage's barrel
 * (src/metadata/index.ts, src/stats/index.ts, src/embed/index.ts), so the file each name lives in is written once,
 * there. The root loads neither the sidecar nor the OpenTelemetry SDK nor the CLI/demo: `meshtel/sidecar` and
 * `meshtel/tracing` (`createTracing`) are subpaths of their own, and `meshtel/embed`, `meshtel/embed/fastify` (no
 * undici), `meshtel/metadata` and `meshtel/stats` load only their stage (package.json "exports";
 * test/package/module-load.test.ts checks what each one loads). docs/api.md says why each name is public;
 * test/package/surface.test.ts fails on any name added or removed without updating both.
 */

// --- core: the error registry (docs/errors.md) and the logger shape every `logger` option takes ---
export { ERROR_CODES, MeshtelError, ConfigError, DecodeError, isMeshtelError } from './core/errors.js';
export type { MeshtelErrorCode } from './core/errors.js';
export type { Logger } from './core/logger.js';

// --- metadata (also meshtel/metadata) ---
export type {
  PeerMetadata,
  WorkloadMetadata,
  WorkloadType,
  ProxyType,
  PeerResult,
  UnknownPeerReason,
  PayloadProfile,
  WorkloadMetadataInput,
  WorkloadMetadataOptions,
  ParsedNodeId,
  DecodeMxOptions,
  MxEncodeOptions,
  DecodeBaggageOptions,
  TcpFrameParser,
  TcpParseStep,
  TcpFrameParserOptions,
} from './metadata/index.js';
export {
  PAYLOAD_PROFILES,
  DEFAULT_PAYLOAD_PROFILE,
  loadWorkloadMetadata,
  createWorkloadMetadata,
  formatNodeId,
  parseNodeId,
  tryParseNodeId,
  HEADER_PEER_METADATA,
  HEADER_PEER_METADATA_ID,
  DEFAULT_MAX_MX_BYTES,
  encodeMxHeader,
  decodeMxHeader,
  HEADER_BAGGAGE,
  encodeBaggage,
  decodeBaggage,
  MX_MAGIC,
  ALPN_PEER_EXCHANGE,
  encodeTcpFrame,
  createTcpFrameParser,
  parseEndpointMetadata,
  formatEndpointMetadata,
} from './metadata/index.js';

// --- exchange: the HTTP and TCP metadata-exchange filters (no subpath of their own) ---
export type {
  ExchangeExtract,
  PropagationMethod,
  MetadataExchangeMode,
  HeaderGetter,
  HeaderSetter,
  HeaderRemover,
} from './exchange/types.js';
export { createPeerCache } from './exchange/peer-cache.js';
export type { PeerCache, PeerCacheOptions, FoundPeer } from './exchange/peer-cache.js';
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
export type {
  Reporter,
  ServiceInfo,
  ResponseFlagName,
  SpecialCluster,
  ConnectionAttributes,
  HttpStreamAttributes,
  IstioStats,
  IstioStatsOptions,
  TcpConnectionStats,
  CustomMetricDefinition,
  TelemetryConfig,
  MetricOverride,
  TagOverride,
  TelemetryMode,
  ExpositionFormat,
  RenderOptions,
  MetricsResponse,
  NativeHistogramOptions,
  BucketOverrides,
} from './stats/index.js';
export {
  ResponseFlag,
  createIstioStats,
  parseTelemetry,
  renderMetrics,
  renderMetricsToString,
  createMetricsResponse,
  createMetricsHandler,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
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
  formatResponseFlags,
} from './stats/index.js';

// --- tracing: the types of the embedding's `tracing` and `tracer` options. createTracing (which loads the
// OpenTelemetry SDK), createEnvoySampler and the span metrics are in meshtel/tracing; these come from their files,
// not that barrel, so the root never loads the SDK ---
export type { HopTracer, HopSpan, SpanStartInfo, SpanEndInfo, HeaderBag } from './tracing/types.js';
export type { ApiTracingOptions } from './tracing/hop-tracer.js';
export type { HopTracingOptions, PropagationFormat } from './tracing/config.js';

// --- embed (also meshtel/embed) ---
export { createMeshtelEmbedding, kubernetesServiceResolver, meshtelFastify, createMeshtelInterceptor, PROPAGATED_HEADERS } from './embed/index.js';
export type { MeshtelEmbedding, MeshtelEmbeddingOptions, MeshtelFastifyOptions, MeshtelInterceptorOptions } from './embed/index.js';

// --- live request tap: what the embedding mounts for `meshtel console` (the console and demo are CLI-internal) ---
export { TAP_CHANNEL_NAME, createTapHandler } from './record/tap.js';
export type { TapHandlerOptions, TapRecord } from './record/tap.js';

/**
 * meshtel's public surface. Everything exported here is listed by name (STYLE.md §2: no `export *`);
 * what is not exported is internal and free to change.
 */

// --- core ---
export { ERROR_CODES, MeshtelError, ConfigError, DecodeError, isMeshtelError } from './core/errors.js';
export type { MeshtelErrorCode } from './core/errors.js';
export { createLogger, silentLogger } from './core/logger.js';
export type { Logger, LoggerOptions, LogLevel } from './core/logger.js';
export { ISTIO_PORTS } from './core/config.js';

// --- metadata ---
export type {
  PeerMetadata,
  WorkloadMetadata,
  WorkloadType,
  ProxyType,
  PeerResult,
  UnknownPeerReason,
  PayloadProfile,
} from './metadata/types.js';

// --- exchange ---
export type { ExchangeExtract, PropagationMethod, MetadataExchangeMode } from './exchange/types.js';

// --- stats ---
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

// --- tracing ---
export type { HopTracer, HopSpan, SpanStartInfo, SpanEndInfo, HeaderBag } from './tracing/types.js';
export { createTracing, createNoopTracing } from './tracing/tracer.js';
export type { TracingOptions, TracingExporterName, PropagationFormat } from './tracing/config.js';
export { METRIC_SPANS_EXPORTED, METRIC_SPANS_DROPPED } from './tracing/span-metrics.js';
export type { SpanDropReason } from './tracing/span-metrics.js';

// --- sidecar ---

// --- embed ---

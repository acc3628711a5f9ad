/**
 * Tracing configuration: explicit options, then the standard `OTEL_*` environment variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/), then Istio's
 * defaults (1 % random sampling, istio-telemetry-v2 spec §5). Validated once, then frozen; every bad
 * value is a `ConfigError` with code `MESHTEL_ERR_INVALID_TRACING` that quotes the value and names
 * where it came from.
 *
 * We read the variables ourselves, from `options.env` (default `process.env`), and hand the exporters
 * and the BatchSpanProcessor explicit values, so a test or an embedding can configure tracing without
 * touching the process environment.
 */
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Registry } from 'prom-client';
import { ConfigError, quote } from '../core/errors.js';
import type { Env } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import type { WorkloadMetadata } from '../metadata/types.js';

/** Exporters meshtel can build by name. */
export type TracingExporterName = 'otlp' | 'jaeger' | 'console' | 'none';

/** Propagation formats: W3C `traceparent`/`tracestate`, B3 single header `b3`, B3 multi `x-b3-*`. */
export type PropagationFormat = 'tracecontext' | 'b3' | 'b3multi';

/** Options for {@link createTracing} (src/tracing/tracer.ts). */
export interface TracingOptions {
  /** This proxy's identity: canonical service, namespace, mesh id, cluster, zone. */
  local: WorkloadMetadata;
  /** Envoy node id (`sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local`), the `node_id` tag. */
  nodeId: string;
  /**
   * Random sampling percentage, 0–100 in 0.01 steps (Envoy `random_sampling` has 10000 buckets).
   * Default: `OTEL_TRACES_SAMPLER(_ARG)` when set, else Istio's 1.0.
   */
  samplingPercent?: number;
  /**
   * Where sampled spans go. Default `OTEL_TRACES_EXPORTER`, else `otlp` (HTTP/protobuf to Jaeger's OTLP
   * port 4318). A `SpanExporter` instance is used as is (tests, embeddings with their own backend).
   */
  exporter?: TracingExporterName | SpanExporter;
  /**
   * Backend URL. For `otlp` the traces URL (`http://jaeger:4318/v1/traces`; a bare origin gets `/v1/traces`);
   * for `jaeger` the collector's Thrift-over-HTTP URL (`http://jaeger:14268/api/traces`), else spans go
   * over UDP to the agent (`OTEL_EXPORTER_JAEGER_AGENT_HOST`/`_PORT`, default localhost:6832).
   */
  endpoint?: string;
  /** Formats extracted (first valid wins, in this order) and injected (all). Default `OTEL_PROPAGATORS`, else tracecontext + b3multi. */
  propagation?: readonly PropagationFormat[];
  /** Add Istio's `istio.*` tags (proxyConfig.tracing.enableIstioTags, default true). */
  istioTags?: boolean;
  /** Resource `service.name`; default `OTEL_SERVICE_NAME`, else `<canonical service>.<namespace>` as Istio names it. */
  serviceName?: string;
  /** BatchSpanProcessor queue bound (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048); spans beyond it are dropped and counted. */
  maxQueueSize?: number;
  /** Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512, at most maxQueueSize). */
  maxExportBatchSize?: number;
  /** Delay between exports in ms (`OTEL_BSP_SCHEDULE_DELAY`, default 5000). */
  scheduledDelayMillis?: number;
  /** Give up on one export after this many ms (`OTEL_BSP_EXPORT_TIMEOUT`, default 30000). */
  exportTimeoutMillis?: number;
  /**
   * Bound on the drain at shutdown in ms (default 2000): spans still queued or in flight when it runs out are
   * counted as dropped (`reason="shutdown_timeout"`) and the proxy exits anyway. Without it a down backend held
   * shutdown for the OTLP timeout plus retries (9-11 s).
   */
  shutdownTimeoutMillis?: number;
  /** Registry for `meshtel_spans_exported_total` / `meshtel_spans_dropped_total`; none: counted but not exposed. */
  registry?: Registry;
  /** Environment to read `OTEL_*` from; default `process.env`. */
  env?: Env;
  /** Where lifecycle events and "log once" export warnings go; default silent. */
  logger?: Logger;
}

/** The validated, frozen configuration. */
export interface TracingConfig {
  /** Random sampling percentage for new traces (0–100). */
  readonly samplingPercent: number;
  /** `round(percent * 100)` out of 10000, as Envoy's PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT. */
  readonly samplingNumerator: number;
  /** The exporter by name, or the caller's instance. */
  readonly exporter: TracingExporterName | SpanExporter;
  /** OTLP traces URL, or the Jaeger collector URL ('' for the UDP agent). */
  readonly endpoint: string;
  /** Extra OTLP request headers (`OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`). */
  readonly otlpHeaders: Readonly<Record<string, string>>;
  /** Per-export OTLP timeout including retries (`OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`, default 10 s). */
  readonly otlpTimeoutMillis: number;
  /** Jaeger agent for UDP export when no collector endpoint is set. */
  readonly jaegerAgentHost: string;
  readonly jaegerAgentPort: number;
  /** Formats extracted in order and injected. */
  readonly propagation: readonly PropagationFormat[];
  /** Whether `istio.*` tags are written. */
  readonly istioTags: boolean;
  /** Resource `service.name`. */
  readonly serviceName: string;
  /** BatchSpanProcessor bounds and timings. */
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly scheduledDelayMillis: number;
  readonly exportTimeoutMillis: number;
  /** Bound on the shutdown drain. */
  readonly shutdownTimeoutMillis: number;
}

const EXPORTERS: readonly TracingExporterName[] = ['otlp', 'jaeger', 'console', 'none'];
const FORMATS: readonly PropagationFormat[] = ['tracecontext', 'b3', 'b3multi'];
/** Istio's default `PILOT_TRACE_SAMPLING` / `values.pilot.traceSampling` (istio/istio pilot/pkg/features/telemetry.go). */
export const DEFAULT_SAMPLING_PERCENT = 1.0;
/** Default bound on the shutdown drain: long enough for a healthy backend (~0.15 s), short for a pod's grace period. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 2000;
const DEFAULT_OTLP_URL = 'http://localhost:4318/v1/traces';
const OTLP_TRACES_PATH = '/v1/traces';

function invalid(field: string, value: unknown, why: string): ConfigError {
  return new ConfigError('MESHTEL_ERR_INVALID_TRACING', `${field} ${why}, got ${quote(value)}`, { field, value });
}

function nonEmpty(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const t = raw.trim();
  return t === '' ? undefined : t;
}

function parseNumber(raw: string | number | undefined, field: string, min: number, max: number, integer: boolean): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = typeof raw === 'number' ? raw : Number(raw.trim());
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw invalid(field, raw, `must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}`);
  }
  return n;
}

function parseUrl(raw: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(field, raw, 'must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(field, raw, 'must be an absolute http(s) URL');
  return url;
}

/** `OTEL_EXPORTER_OTLP_HEADERS` format: `k1=v1,k2=v2`, values percent-encoded (OTel spec, W3C baggage style). */
function parseHeaderList(raw: string | undefined, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined || raw.trim() === '') return out;
  for (const part of raw.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : '';
    if (key === '') throw invalid(field, raw, 'must be a list of key=value pairs');
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw invalid(field, raw, 'has a value that is not percent-encoded');
    }
  }
  return out;
}

/**
 * Map `OTEL_TRACES_SAMPLER(_ARG)` to a percentage. Envoy always honours an upstream sampled flag
 * (source/extensions/tracers/opentelemetry/tracer.cc `startSpan(previous_span_context)`), so the
 * `parentbased_*` and plain variants both map to the same root-span percentage.
 */
function samplerPercent(env: Env): number | undefined {
  const sampler = nonEmpty(env.OTEL_TRACES_SAMPLER)?.toLowerCase();
  if (sampler === undefined) return undefined;
  switch (sampler) {
    case 'always_on':
    case 'parentbased_always_on':
      return 100;
    case 'always_off':
    case 'parentbased_always_off':
      return 0;
    case 'traceidratio':
    case 'parentbased_traceidratio': {
      const ratio = parseNumber(nonEmpty(env.OTEL_TRACES_SAMPLER_ARG), 'OTEL_TRACES_SAMPLER_ARG', 0, 1, false) ?? 1;
      return ratio * 100;
    }
    default:
      throw invalid(
        'OTEL_TRACES_SAMPLER',
        sampler,
        'must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio',
      );
  }
}

function parsePropagators(raw: string, field: string, logger: Logger | undefined): PropagationFormat[] {
  const out: PropagationFormat[] = [];
  for (const item of raw.split(',')) {
    const name = item.trim().toLowerCase();
    if (name === '' || name === 'none') continue;
    // W3C baggage carries the peer metadata in ambient mode; that is the exchange stage's job, not a trace format.
    if (name === 'baggage') {
      logger?.warnOnce('tracing-baggage-propagator', 'OTEL_PROPAGATORS lists "baggage"; meshtel tracing ignores it (baggage is handled by metadata exchange)');
      continue;
    }
    if (!(FORMATS as readonly string[]).includes(name)) throw invalid(field, raw, `must list only ${FORMATS.join(', ')} (or baggage, none)`);
    if (!out.includes(name as PropagationFormat)) out.push(name as PropagationFormat);
  }
  return out;
}

function isSpanExporter(value: unknown): value is SpanExporter {
  return typeof value === 'object' && value !== null && typeof (value as SpanExporter).export === 'function';
}

/** Default resource `service.name` as Istio derives it: `<canonical service>.<namespace>`. */
export function defaultServiceName(local: Pick<WorkloadMetadata, 'canonicalService' | 'namespace'>): string {
  return `${local.canonicalService || 'unknown'}.${local.namespace || 'default'}`;
}

/** Resolve options + environment into a frozen {@link TracingConfig}. Throws `MESHTEL_ERR_INVALID_TRACING`. */
export function resolveTracingConfig(options: TracingOptions): TracingConfig {
  const env: Env = options.env ?? process.env;
  if (options.local === null || typeof options.local !== 'object') throw invalid('local', options.local, 'must be the workload metadata');
  if (typeof options.nodeId !== 'string' || options.nodeId.trim() === '') throw invalid('nodeId', options.nodeId, 'must be a non-empty node id');

  // Sampling: explicit option > OTEL_TRACES_SAMPLER > Istio default.
  const samplingPercent =
    parseNumber(options.samplingPercent, 'samplingPercent', 0, 100, false) ?? samplerPercent(env) ?? DEFAULT_SAMPLING_PERCENT;

  // Exporter.
  let exporter: TracingExporterName | SpanExporter;
  if (options.exporter !== undefined) {
    if (isSpanExporter(options.exporter)) exporter = options.exporter;
    else if ((EXPORTERS as readonly unknown[]).includes(options.exporter)) exporter = options.exporter;
    else throw invalid('exporter', options.exporter, `must be one of ${EXPORTERS.join(', ')} or a SpanExporter`);
  } else {
    const raw = nonEmpty(env.OTEL_TRACES_EXPORTER)?.toLowerCase();
    if (raw === undefined) exporter = 'otlp';
    else if (raw.includes(',')) throw invalid('OTEL_TRACES_EXPORTER', raw, 'must name one exporter (meshtel runs one export pipeline)');
    else if ((EXPORTERS as readonly string[]).includes(raw)) exporter = raw as TracingExporterName;
    else throw invalid('OTEL_TRACES_EXPORTER', raw, `must be one of ${EXPORTERS.join(', ')}`);
  }

  // Endpoint, per exporter.
  let endpoint = '';
  if (exporter === 'otlp') {
    const protocol = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_PROTOCOL);
    if (protocol !== undefined && protocol !== 'http/protobuf') {
      const field = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
      throw invalid(field, protocol, 'must be http/protobuf (the only OTLP transport meshtel ships)');
    }
    if (options.endpoint !== undefined) {
      const url = parseUrl(options.endpoint, 'endpoint');
      endpoint = url.pathname === '/' || url.pathname === '' ? `${url.origin}${OTLP_TRACES_PATH}` : url.href;
    } else if (nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) !== undefined) {
      // The signal-specific variable is used as is (OTel spec).
      endpoint = parseUrl(nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) as string, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT').href;
    } else if (nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) !== undefined) {
      // The generic one gets the signal path appended (OTel spec).
      const url = parseUrl(nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) as string, 'OTEL_EXPORTER_OTLP_ENDPOINT');
      endpoint = `${url.href.replace(/\/+$/, '')}${OTLP_TRACES_PATH}`;
    } else {
      endpoint = DEFAULT_OTLP_URL;
    }
  } else if (exporter === 'jaeger') {
    const raw = options.endpoint ?? nonEmpty(env.OTEL_EXPORTER_JAEGER_ENDPOINT);
    if (raw !== undefined) endpoint = parseUrl(raw, options.endpoint !== undefined ? 'endpoint' : 'OTEL_EXPORTER_JAEGER_ENDPOINT').href;
  } else if (options.endpoint !== undefined) {
    throw invalid('endpoint', options.endpoint, `is only meaningful with the otlp or jaeger exporter (exporter is ${typeof exporter === 'string' ? exporter : 'a SpanExporter'})`);
  }

  const otlpHeaders = {
    ...parseHeaderList(env.OTEL_EXPORTER_OTLP_HEADERS, 'OTEL_EXPORTER_OTLP_HEADERS'),
    ...parseHeaderList(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
  };
  const otlpTimeoutMillis =
    parseNumber(nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT), 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 1, 600_000, true) ??
    parseNumber(nonEmpty(env.OTEL_EXPORTER_OTLP_TIMEOUT), 'OTEL_EXPORTER_OTLP_TIMEOUT', 1, 600_000, true) ??
    10_000;
  const jaegerAgentHost = nonEmpty(env.OTEL_EXPORTER_JAEGER_AGENT_HOST) ?? 'localhost';
  const jaegerAgentPort = parseNumber(nonEmpty(env.OTEL_EXPORTER_JAEGER_AGENT_PORT), 'OTEL_EXPORTER_JAEGER_AGENT_PORT', 1, 65535, true) ?? 6832;

  // Propagation.
  let propagation: PropagationFormat[];
  if (options.propagation !== undefined) {
    if (!Array.isArray(options.propagation)) throw invalid('propagation', options.propagation, `must be a list of ${FORMATS.join(', ')}`);
    propagation = [];
    for (const f of options.propagation) {
      if (!FORMATS.includes(f)) throw invalid('propagation', options.propagation, `must list only ${FORMATS.join(', ')}`);
      if (!propagation.includes(f)) propagation.push(f);
    }
  } else if (env.OTEL_PROPAGATORS !== undefined && env.OTEL_PROPAGATORS.trim() !== '') {
    propagation = parsePropagators(env.OTEL_PROPAGATORS, 'OTEL_PROPAGATORS', options.logger);
  } else {
    // Istio's FAQ asks apps to forward both W3C and B3 headers; inject both so either kind of app library continues the trace.
    propagation = ['tracecontext', 'b3multi'];
  }

  if (options.istioTags !== undefined && typeof options.istioTags !== 'boolean') throw invalid('istioTags', options.istioTags, 'must be true or false');
  if (options.serviceName !== undefined && (typeof options.serviceName !== 'string' || options.serviceName.trim() === '')) {
    throw invalid('serviceName', options.serviceName, 'must be a non-empty string');
  }
  const serviceName = options.serviceName ?? nonEmpty(env.OTEL_SERVICE_NAME) ?? defaultServiceName(options.local);

  const maxQueueSize =
    parseNumber(options.maxQueueSize, 'maxQueueSize', 1, 1_000_000, true) ??
    parseNumber(nonEmpty(env.OTEL_BSP_MAX_QUEUE_SIZE), 'OTEL_BSP_MAX_QUEUE_SIZE', 1, 1_000_000, true) ??
    2048;
  const batchFromOptions = parseNumber(options.maxExportBatchSize, 'maxExportBatchSize', 1, 1_000_000, true);
  const batchFromEnv = parseNumber(nonEmpty(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE), 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 1, 1_000_000, true);
  const maxExportBatchSize = batchFromOptions ?? batchFromEnv ?? Math.min(512, maxQueueSize);
  if (maxExportBatchSize > maxQueueSize) {
    throw invalid(batchFromOptions !== undefined ? 'maxExportBatchSize' : 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', maxExportBatchSize, `must not exceed maxQueueSize (${maxQueueSize})`);
  }
  const scheduledDelayMillis =
    parseNumber(options.scheduledDelayMillis, 'scheduledDelayMillis', 0, 3_600_000, true) ??
    parseNumber(nonEmpty(env.OTEL_BSP_SCHEDULE_DELAY), 'OTEL_BSP_SCHEDULE_DELAY', 0, 3_600_000, true) ??
    5000;
  const exportTimeoutMillis =
    parseNumber(options.exportTimeoutMillis, 'exportTimeoutMillis', 1, 3_600_000, true) ??
    parseNumber(nonEmpty(env.OTEL_BSP_EXPORT_TIMEOUT), 'OTEL_BSP_EXPORT_TIMEOUT', 1, 3_600_000, true) ??
    30_000;

  const shutdownTimeoutMillis = parseNumber(options.shutdownTimeoutMillis, 'shutdownTimeoutMillis', 0, 600_000, true) ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;

  // Not deepFreeze: a SpanExporter instance must stay mutable for its owner.
  return Object.freeze({
    samplingPercent,
    samplingNumerator: Math.round(samplingPercent * 100),
    exporter,
    endpoint,
    otlpHeaders: Object.freeze(otlpHeaders),
    otlpTimeoutMillis,
    jaegerAgentHost,
    jaegerAgentPort,
    propagation: Object.freeze(propagation),
    istioTags: options.istioTags ?? true,
    serviceName,
    maxQueueSize,
    maxExportBatchSize,
    scheduledDelayMillis,
    exportTimeoutMillis,
    shutdownTimeoutMillis,
  });
}

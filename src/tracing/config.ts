/**
 * Tracing configuration. Validated once, then frozen; every bad option is a `ConfigError` with code
 * `MESHTEL_ERR_INVALID_TRACING` that quotes the value and names the field.
 *
 * The standard `OTEL_*` variables are read by the OpenTelemetry SDK itself, not here: the OTLP and Jaeger
 * exporters read their endpoint, headers, timeout, compression and certificates (`OTEL_EXPORTER_OTLP_*`,
 * `OTEL_EXPORTER_JAEGER_*`), the BatchSpanProcessor reads `OTEL_BSP_*`, and the resource's env detector reads
 * `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`. An explicit option is handed to the SDK and wins.
 *
 * meshtel reads only what the SDK cannot apply for it, with the SDK's own env helpers (@opentelemetry/core):
 * - `OTEL_TRACES_SAMPLER(_ARG)`: Envoy samples by marking character 14 of `x-request-id` (request-id.ts), a
 *   decision every hop of the mesh derives from the same id; an OTel sampler cannot make it, so the standard
 *   sampler names are translated into Envoy's random-sampling percentage.
 * - `OTEL_PROPAGATORS`: the hop extracts the first valid format in order, as Envoy's tracers read one format
 *   (OTel's CompositePropagator lets a later format override an earlier one), so the list is ours to apply.
 * - `OTEL_TRACES_EXPORTER`: meshtel builds the one exporter itself, behind its own counted, deadline-bounded
 *   processor (the SDK's env-built pipeline would bypass `meshtel_spans_*`), so it needs the name.
 * - `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`: only http/protobuf ships; a request for grpc is refused rather than
 *   sent as protobuf-over-HTTP to a gRPC port.
 */
import { getStringFromEnv, getStringListFromEnv } from '@opentelemetry/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { Registry } from 'prom-client';
import { ConfigError, quote } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { WorkloadMetadata } from '../metadata/types.js';

/** Exporters meshtel can build by name. */
export type TracingExporterName = 'otlp' | 'jaeger' | 'console' | 'none';

/** Propagation formats: W3C `traceparent`/`tracestate`, B3 single header `b3`, B3 multi `x-b3-*`. */
export type PropagationFormat = 'tracecontext' | 'b3' | 'b3multi';

/** What every hop tracer needs, whoever owns the tracer provider (src/tracing/hop-tracer.ts). */
export interface HopTracingOptions {
  /** This proxy's identity: canonical service, namespace, mesh id, cluster, zone. */
  local: WorkloadMetadata;
  /** Envoy node id (`sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local`), the `node_id` tag. */
  nodeId: string;
  /**
   * Random sampling percentage, 0–100 in 0.01 steps (Envoy `random_sampling` has 10000 buckets).
   * Default: `OTEL_TRACES_SAMPLER(_ARG)` when set, else Istio's 1.0.
   */
  samplingPercent?: number;
  /** Formats extracted (first valid wins, in this order) and injected (all). Default `OTEL_PROPAGATORS`, else tracecontext + b3multi. */
  propagation?: readonly PropagationFormat[];
  /** Add Istio's `istio.*` tags (proxyConfig.tracing.enableIstioTags, default true). */
  istioTags?: boolean;
  /** Where lifecycle events and "log once" warnings go; default silent. */
  logger?: Logger;
}

/** Options for {@link createTracing} (src/tracing/tracer.ts) and the sidecar's NodeSDK (src/tracing/node-sdk.ts). */
export interface TracingOptions extends HopTracingOptions {
  /**
   * Where sampled spans go. Default `OTEL_TRACES_EXPORTER`, else `otlp` (HTTP/protobuf to Jaeger's OTLP
   * port 4318). A `SpanExporter` instance is used as is (tests, embeddings with their own backend).
   */
  exporter?: TracingExporterName | SpanExporter;
  /**
   * Backend URL, over the exporter's own `OTEL_EXPORTER_*` variables. For `otlp` the traces URL
   * (`http://jaeger:4318/v1/traces`; a bare origin gets `/v1/traces`); for `jaeger` the collector's
   * Thrift-over-HTTP URL (`http://jaeger:14268/api/traces`). Unset: the exporter reads
   * `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` (default localhost:4318), or `OTEL_EXPORTER_JAEGER_ENDPOINT` /
   * `_AGENT_HOST` / `_AGENT_PORT` (default UDP to localhost:6832).
   */
  endpoint?: string;
  /** Resource `service.name`; default `OTEL_SERVICE_NAME`, else `<canonical service>.<namespace>` as Istio names it. */
  serviceName?: string;
  /** BatchSpanProcessor queue bound (default `OTEL_BSP_MAX_QUEUE_SIZE`, else 2048); spans beyond it are dropped and counted. */
  maxQueueSize?: number;
  /** Spans per export request (default `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, else 512, at most maxQueueSize). */
  maxExportBatchSize?: number;
  /** Delay between exports in ms (default `OTEL_BSP_SCHEDULE_DELAY`, else 5000). */
  scheduledDelayMillis?: number;
  /** Give up on one export after this many ms (default `OTEL_BSP_EXPORT_TIMEOUT`, else 30000). */
  exportTimeoutMillis?: number;
  /**
   * Bound on the drain at shutdown in ms (default 2000): spans still queued or in flight when it runs out are
   * counted as dropped (`reason="shutdown_timeout"`) and the proxy exits anyway. Without it a down backend held
   * shutdown for the OTLP timeout plus retries (9-11 s).
   */
  shutdownTimeoutMillis?: number;
  /** Registry for `meshtel_spans_exported_total` / `meshtel_spans_dropped_total`; none: counted but not exposed. */
  registry?: Registry;
}

/** The validated per-hop configuration. */
export interface HopTracingConfig {
  /** Random sampling percentage for new traces (0–100). */
  readonly samplingPercent: number;
  /** `round(percent * 100)` out of 10000, as Envoy's PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT. */
  readonly samplingNumerator: number;
  /** Formats extracted in order and injected. */
  readonly propagation: readonly PropagationFormat[];
  /** Whether `istio.*` tags are written. */
  readonly istioTags: boolean;
}

/** The validated, frozen configuration of a meshtel-owned span pipeline. */
export interface TracingConfig extends HopTracingConfig {
  /** The exporter by name, or the caller's instance. */
  readonly exporter: TracingExporterName | SpanExporter;
  /** Explicit backend URL, `''` when the exporter reads its own variables. */
  readonly endpoint: string;
  /** Explicit resource `service.name`, `undefined` for the env detector / Istio default. */
  readonly serviceName: string | undefined;
  /** Explicit BatchSpanProcessor settings; `undefined` ones come from `OTEL_BSP_*` (read by the processor). */
  readonly maxQueueSize: number | undefined;
  readonly maxExportBatchSize: number | undefined;
  readonly scheduledDelayMillis: number | undefined;
  readonly exportTimeoutMillis: number | undefined;
  /** Bound on the shutdown drain. */
  readonly shutdownTimeoutMillis: number;
}

const EXPORTERS: readonly TracingExporterName[] = ['otlp', 'jaeger', 'console', 'none'];
const FORMATS: readonly PropagationFormat[] = ['tracecontext', 'b3', 'b3multi'];
/** Istio's default `PILOT_TRACE_SAMPLING` / `values.pilot.traceSampling` (istio/istio pilot/pkg/features/telemetry.go). */
export const DEFAULT_SAMPLING_PERCENT = 1.0;
/** Default bound on the shutdown drain: long enough for a healthy backend (~0.15 s), short for a pod's grace period. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 2000;
const OTLP_TRACES_PATH = '/v1/traces';

function invalid(field: string, value: unknown, why: string): ConfigError {
  return new ConfigError('MESHTEL_ERR_INVALID_TRACING', `${field} ${why}, got ${quote(value)}`, { field, value });
}

function checkNumber(raw: number | string | undefined, field: string, min: number, max: number, integer: boolean): number | undefined {
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

/**
 * `OTEL_TRACES_SAMPLER(_ARG)` as Envoy's random-sampling percentage. Envoy always honours an upstream sampled
 * flag (source/extensions/tracers/opentelemetry/tracer.cc `startSpan(previous_span_context)`), so the
 * `parentbased_*` and plain variants both map to the same root-span percentage.
 */
function samplerPercent(): number | undefined {
  const sampler = getStringFromEnv('OTEL_TRACES_SAMPLER')?.toLowerCase();
  if (sampler === undefined) return undefined;
  switch (sampler) {
    case 'always_on':
    case 'parentbased_always_on':
      return 100;
    case 'always_off':
    case 'parentbased_always_off':
      return 0;
    case 'traceidratio':
    case 'parentbased_traceidratio':
      return (checkNumber(getStringFromEnv('OTEL_TRACES_SAMPLER_ARG'), 'OTEL_TRACES_SAMPLER_ARG', 0, 1, false) ?? 1) * 100;
    default:
      throw invalid(
        'OTEL_TRACES_SAMPLER',
        sampler,
        'must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio',
      );
  }
}

function propagatorsFromEnv(logger: Logger | undefined): PropagationFormat[] | undefined {
  const list = getStringListFromEnv('OTEL_PROPAGATORS');
  if (list === undefined || list.length === 0) return undefined;
  const out: PropagationFormat[] = [];
  for (const item of list) {
    const name = item.toLowerCase();
    if (name === 'none') continue;
    // W3C baggage carries the peer metadata in ambient mode; that is the exchange stage's job, not a trace format.
    if (name === 'baggage') {
      logger?.warnOnce('tracing-baggage-propagator', 'OTEL_PROPAGATORS lists "baggage"; meshtel tracing ignores it (baggage is handled by metadata exchange)');
      continue;
    }
    if (!(FORMATS as readonly string[]).includes(name)) throw invalid('OTEL_PROPAGATORS', list.join(','), `must list only ${FORMATS.join(', ')} (or baggage, none)`);
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

/** Resolve the per-hop options (sampling, propagation, tags). Throws `MESHTEL_ERR_INVALID_TRACING`. */
export function resolveHopTracingConfig(options: HopTracingOptions): HopTracingConfig {
  if (options.local === null || typeof options.local !== 'object') throw invalid('local', options.local, 'must be the workload metadata');
  if (typeof options.nodeId !== 'string' || options.nodeId.trim() === '') throw invalid('nodeId', options.nodeId, 'must be a non-empty node id');
  const samplingPercent = checkNumber(options.samplingPercent, 'samplingPercent', 0, 100, false) ?? samplerPercent() ?? DEFAULT_SAMPLING_PERCENT;

  let propagation: PropagationFormat[];
  if (options.propagation !== undefined) {
    if (!Array.isArray(options.propagation)) throw invalid('propagation', options.propagation, `must be a list of ${FORMATS.join(', ')}`);
    propagation = [];
    for (const f of options.propagation) {
      if (!FORMATS.includes(f)) throw invalid('propagation', options.propagation, `must list only ${FORMATS.join(', ')}`);
      if (!propagation.includes(f)) propagation.push(f);
    }
  } else {
    // Istio's FAQ asks apps to forward both W3C and B3 headers; inject both so either kind of app library continues the trace.
    propagation = propagatorsFromEnv(options.logger) ?? ['tracecontext', 'b3multi'];
  }
  if (options.istioTags !== undefined && typeof options.istioTags !== 'boolean') throw invalid('istioTags', options.istioTags, 'must be true or false');
  return Object.freeze({
    samplingPercent,
    samplingNumerator: Math.round(samplingPercent * 100),
    propagation: Object.freeze(propagation),
    istioTags: options.istioTags ?? true,
  });
}

/** Resolve the options of a meshtel-owned pipeline into a frozen {@link TracingConfig}. Throws `MESHTEL_ERR_INVALID_TRACING`. */
export function resolveTracingConfig(options: TracingOptions): TracingConfig {
  const hop = resolveHopTracingConfig(options);

  let exporter: TracingExporterName | SpanExporter;
  if (options.exporter !== undefined) {
    if (isSpanExporter(options.exporter)) exporter = options.exporter;
    else if ((EXPORTERS as readonly unknown[]).includes(options.exporter)) exporter = options.exporter;
    else throw invalid('exporter', options.exporter, `must be one of ${EXPORTERS.join(', ')} or a SpanExporter`);
  } else {
    const list = getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? [];
    const raw = list.join(',').toLowerCase();
    if (list.length === 0) exporter = 'otlp';
    else if (list.length > 1) throw invalid('OTEL_TRACES_EXPORTER', raw, 'must name one exporter (meshtel runs one export pipeline)');
    else if ((EXPORTERS as readonly string[]).includes(raw)) exporter = raw as TracingExporterName;
    else throw invalid('OTEL_TRACES_EXPORTER', raw, `must be one of ${EXPORTERS.join(', ')}`);
  }

  let endpoint = '';
  if (exporter === 'otlp') {
    const specific = getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL');
    const protocol = specific ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL');
    if (protocol !== undefined && protocol !== 'http/protobuf') {
      throw invalid(specific !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL', protocol, 'must be http/protobuf (the only OTLP transport meshtel ships)');
    }
    if (options.endpoint !== undefined) {
      const url = parseUrl(options.endpoint, 'endpoint');
      endpoint = url.pathname === '/' || url.pathname === '' ? `${url.origin}${OTLP_TRACES_PATH}` : url.href;
    }
  } else if (exporter === 'jaeger') {
    if (options.endpoint !== undefined) endpoint = parseUrl(options.endpoint, 'endpoint').href;
  } else if (options.endpoint !== undefined) {
    throw invalid('endpoint', options.endpoint, `is only meaningful with the otlp or jaeger exporter (exporter is ${typeof exporter === 'string' ? exporter : 'a SpanExporter'})`);
  }

  if (options.serviceName !== undefined && (typeof options.serviceName !== 'string' || options.serviceName.trim() === '')) {
    throw invalid('serviceName', options.serviceName, 'must be a non-empty string');
  }
  const maxQueueSize = checkNumber(options.maxQueueSize, 'maxQueueSize', 1, 1_000_000, true);
  const maxExportBatchSize = checkNumber(options.maxExportBatchSize, 'maxExportBatchSize', 1, 1_000_000, true);
  if (maxExportBatchSize !== undefined && maxExportBatchSize > (maxQueueSize ?? 2048)) {
    throw invalid('maxExportBatchSize', maxExportBatchSize, `must not exceed maxQueueSize (${maxQueueSize ?? 2048})`);
  }

  // Not deepFreeze: a SpanExporter instance must stay mutable for its owner.
  return Object.freeze({
    ...hop,
    exporter,
    endpoint,
    serviceName: options.serviceName,
    maxQueueSize,
    // A queue smaller than the SDK's default batch would make the processor warn and clamp; clamp quietly instead.
    maxExportBatchSize: maxExportBatchSize ?? (maxQueueSize !== undefined && maxQueueSize < 512 ? maxQueueSize : undefined),
    scheduledDelayMillis: checkNumber(options.scheduledDelayMillis, 'scheduledDelayMillis', 0, 3_600_000, true),
    exportTimeoutMillis: checkNumber(options.exportTimeoutMillis, 'exportTimeoutMillis', 1, 3_600_000, true),
    shutdownTimeoutMillis: checkNumber(options.shutdownTimeoutMillis, 'shutdownTimeoutMillis', 0, 600_000, true) ?? DEFAULT_SHUTDOWN_TIMEOUT_MS,
  });
}

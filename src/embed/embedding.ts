/**
 * The proxyless embedding: the same metadata exchange, istio_* series and spans a sidecar produces,
 * recorded inside a Node service. One {@link MeshtelEmbedding} holds the local identity, the HTTP
 * exchange (local MX value encoded once), the stats recorder and the tracer; the fastify plugin
 * (inbound, reporter=destination) and the undici interceptor (outbound, reporter=source) share it, so
 * both directions use one peer cache and one registry, as the two listeners of a sidecar do.
 */
import { Registry } from 'prom-client';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { createHttpMetadataExchange } from '../exchange/http-exchange.js';
import { parseAdditionalLabels } from '../metadata/mx-header.js';
import type { HttpMetadataExchange } from '../exchange/http-exchange.js';
import type { PropagationMethod } from '../exchange/types.js';
import { loadWorkloadMetadataWithSources } from '../metadata/workload.js';
import { formatNodeId } from '../metadata/node-id.js';
import type { PayloadProfile, WorkloadMetadata } from '../metadata/types.js';
import { createMetricsResponse } from '../stats/exposition.js';
import type { MetricsResponse } from '../stats/exposition.js';
import { createIstioStats } from '../stats/istio-stats.js';
import type { IstioStats, IstioStatsOptions } from '../stats/istio-stats.js';
import { parseTelemetry } from '../stats/telemetry-api.js';
import type { TelemetryConfig } from '../stats/telemetry-api.js';
import type { ServiceInfo } from '../stats/types.js';
import type { OtlpMetricsPush, OtlpMetricsPushOptions } from '../stats/otlp-push.js';
import { defaultServiceName } from '../tracing/config.js';
import { createApiTracing } from '../tracing/hop-tracer.js';
import type { ApiTracingOptions } from '../tracing/hop-tracer.js';
import { createNoopTracing } from '../tracing/noop.js';
import type { HopTracer } from '../tracing/types.js';
import { ConfigError } from '../core/errors.js';
import { resolveServiceName } from '../core/service-names.js';

/** Options of {@link createMeshtelEmbedding}. */
export interface MeshtelEmbeddingOptions {
  /** This service's identity; default `loadWorkloadMetadata()` (the same env and downward-API files a sidecar reads). */
  readonly metadata?: WorkloadMetadata;
  /** Our `x-envoy-peer-metadata-id`; default `formatNodeId(metadata)`. */
  readonly nodeId?: string;
  /** MX payload profile sent; default the exchange's (`reduced-1.29`, byte-identical to an Istio 1.29 sidecar). */
  readonly profile?: PayloadProfile;
  /** `istio_headers` (default) or `baggage`. */
  readonly propagation?: PropagationMethod;
  /** Pod labels sent in the MX payload besides the standard ones; default `PILOT_MX_ADDITIONAL_LABELS` (comma-separated). */
  readonly additionalLabels?: readonly string[];
  /** Registry the istio_* series are registered in; default a new one. Pass the app's to serve one /metrics. */
  readonly registry?: Registry;
  /** Telemetry API resources (YAML text or parsed by `parseTelemetry`). */
  readonly telemetry?: string | TelemetryConfig;
  /** Further stats options (buckets, series caps, TTL). */
  readonly stats?: Omit<IstioStatsOptions, 'local' | 'registry' | 'telemetry' | 'logger'>;
  /**
   * Spans through the application's own OpenTelemetry tracer provider (`@opentelemetry/api`): `true`, or the
   * sampling / propagation / provider settings. An app that runs NodeSDK (or @fastify/otel) then finds meshtel's
   * server and client spans inside its own traces; meshtel creates no provider. Default off (no spans; the
   * request id is still generated).
   */
  readonly tracing?: boolean | Omit<ApiTracingOptions, 'local' | 'nodeId'>;
  /**
   * Push the `istio_*` and `meshtel_*` series over OTLP/HTTP protobuf too (src/stats/otlp-push.ts): `true` (all
   * from `OTEL_EXPORTER_OTLP_METRICS_*` / `OTEL_METRIC_EXPORT_INTERVAL`), or the endpoint, interval and bounds.
   * The OTel metrics SDK is loaded only when this is set; a bad setting is logged and the push stays off.
   */
  readonly otlpMetrics?: boolean | Omit<OtlpMetricsPushOptions, 'families' | 'registry' | 'serviceName' | 'logger'> & { readonly serviceName?: string };
  /** A prebuilt tracer (for example `createTracing` with a private exporter); wins over `tracing`. */
  readonly tracer?: HopTracer;
  /**
   * The service behind an outbound authority (`reviews:9080`), as a sidecar finds it in its registry.
   * Default {@link kubernetesServiceResolver}; return null for external hosts (host-header fallback).
   */
  readonly resolveService?: (authority: string) => ServiceInfo | null;
  /** The service this workload serves inbound (a sidecar's inbound cluster `istio.services[0]`); default none. */
  readonly inboundService?: ServiceInfo | null;
  readonly logger?: Logger;
}

/** The shared state of the fastify plugin and the undici interceptor. */
export interface MeshtelEmbedding {
  readonly metadata: WorkloadMetadata;
  readonly nodeId: string;
  readonly exchange: HttpMetadataExchange;
  readonly stats: IstioStats;
  readonly tracer: HopTracer;
  readonly registry: Registry;
  readonly inboundService: ServiceInfo | null;
  readonly logger: Logger;
  /** Service of an outbound authority (cached per authority, bounded). */
  resolveService(authority: string): ServiceInfo | null;
  /** Prometheus text of the registry (istio_* plus meshtel_*) as one string; small registries and tests. */
  metrics(): Promise<string>;
  /**
   * The exposition for a scrape request: text 0.0.4 or OpenMetrics (with trace exemplars) by `Accept`, gzip by
   * `Accept-Encoding`, streamed in chunks so 10k+ label sets never build one giant string. For fastify:
   * `const r = mesh.metricsResponse(req.headers); reply.headers(r.headers); return reply.send(r.body)`.
   */
  metricsResponse(requestHeaders: { accept?: string | string[] | undefined; 'accept-encoding'?: string | string[] | undefined }): MetricsResponse;
  /** Stop the stats timers and flush the tracer. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Resolve Kubernetes service names the way cluster DNS does: `reviews`, `reviews.bookinfo`,
 * `reviews.bookinfo.svc` and `reviews.bookinfo.svc.cluster.local` (any port) are the `reviews` service;
 * IPs and other hosts are not services (null).
 */
export function kubernetesServiceResolver(localNamespace: string): (authority: string) => ServiceInfo | null {
  // The one resolver the sidecar's registry uses too (src/core/service-names.ts).
  return (authority) => resolveServiceName(authority, localNamespace) ?? null;
}

/** Services remembered per authority; a mesh has few, a crawler many: past this the cache restarts. */
const MAX_RESOLVED = 1024;

/** Create the embedding. Throws ConfigError for bad metadata, profile or Telemetry resources (never later). */
export function createMeshtelEmbedding(options: MeshtelEmbeddingOptions = {}): MeshtelEmbedding {
  const logger = options.logger ?? silentLogger;
  const metadata = options.metadata ?? loadIdentity(logger);
  const nodeId = options.nodeId ?? formatNodeId(metadata);
  const registry = options.registry ?? new Registry();
  const telemetry = typeof options.telemetry === 'string' ? parseTelemetry(options.telemetry) : options.telemetry;
  const exchange = createHttpMetadataExchange({
    local: metadata,
    nodeId,
    ...(options.profile !== undefined ? { profile: options.profile } : {}),
    ...(options.propagation !== undefined ? { propagation: options.propagation } : {}),
    additionalLabels: options.additionalLabels ?? parseAdditionalLabels(process.env.PILOT_MX_ADDITIONAL_LABELS),
  });
  const stats = createIstioStats({
    ...options.stats,
    local: metadata,
    registry,
    logger,
    ...(telemetry !== undefined ? { telemetry } : {}),
  });
  const tracer =
    options.tracer ??
    (options.tracing
      ? createApiTracing({ ...(options.tracing === true ? {} : options.tracing), local: metadata, nodeId, logger })
      : createNoopTracing());
  const otlp = options.otlpMetrics;
  const push: Promise<OtlpMetricsPush | undefined> | undefined = otlp
    ? import('../stats/otlp-push.js')
        .then((m) =>
          m.startOtlpMetricsPush({
            ...(otlp === true ? {} : otlp),
            serviceName: (otlp !== true && otlp.serviceName) || defaultServiceName(metadata),
            families: () => stats.families(),
            registry,
            logger,
          }),
        )
        .catch((err: unknown) => {
          logger.warn('OTLP metrics push not started', { err });
          return undefined;
        })
    : undefined;
  const resolver = options.resolveService ?? kubernetesServiceResolver(metadata.namespace);
  // Resolved once per authority: the request path does a Map lookup, not string parsing (STYLE §6).
  const resolved = new Map<string, ServiceInfo | null>();
  let closed = false;
  return {
    metadata,
    nodeId,
    exchange,
    stats,
    tracer,
    registry,
    inboundService: options.inboundService ?? null,
    logger,
    resolveService(authority) {
      let s = resolved.get(authority);
      if (s === undefined) {
        try {
          s = resolver(authority);
        } catch (err) {
          logger.warnOnce('resolve-service', 'resolveService threw; treating the host as external', { err });
          s = null;
        }
        if (resolved.size >= MAX_RESOLVED) resolved.clear();
        resolved.set(authority, s);
      }
      return s;
    },
    metrics: () => registry.metrics(),
    metricsResponse: (requestHeaders) => createMetricsResponse(stats, requestHeaders, { registries: [registry] }),
    async close() {
      if (closed) return;
      closed = true;
      // The last push first, while the recorder still holds the series.
      await (await push)?.shutdown();
      stats.close();
      await tracer.shutdown();
    },
  };
}

/** Throws MESHTEL_ERR_INVALID_CONFIG unless `embedding` came from {@link createMeshtelEmbedding}. */
export function assertEmbedding(embedding: unknown, where: string): asserts embedding is MeshtelEmbedding {
  const e = embedding as Partial<MeshtelEmbedding> | undefined;
  if (!e || typeof e.resolveService !== 'function' || e.exchange === undefined || e.stats === undefined) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${where} needs { embedding: createMeshtelEmbedding(...) }`, { field: 'embedding' });
  }
}

/**
 * Load the identity from the environment and say once where it came from. Every series carries it, so a service
 * started without its pod environment must not report `namespace="default"` silently: the resolved identity is
 * logged at info, and when the namespace fell back to its default a process warning (`MESHTEL_IDENTITY_DEFAULTED`,
 * once per process, shown by Node even with the default silent logger) names the variables to set.
 */
let warnedDefaultIdentity = false;
function loadIdentity(logger: Logger): WorkloadMetadata {
  const { metadata, sources } = loadWorkloadMetadataWithSources();
  logger.info('meshtel workload identity', {
    workload: metadata.workload,
    namespace: metadata.namespace,
    serviceAccount: metadata.serviceAccount,
    cluster: metadata.cluster,
    from: sources,
  });
  if (sources.namespace === 'default' && !warnedDefaultIdentity) {
    warnedDefaultIdentity = true;
    process.emitWarning(
      `meshtel: no namespace in the environment, series report workload "${metadata.workload}" in namespace "${metadata.namespace}"; ` +
        'set POD_NAME, POD_NAMESPACE and SERVICE_ACCOUNT (the downward API, as the Istio injector does) or pass `metadata`',
      { code: 'MESHTEL_IDENTITY_DEFAULTED' },
    );
  }
  return metadata;
}

/**
 * Sidecar configuration: defaults, then the environment Istio's injector provides (ISTIO_META_*,
 * POD_NAME, the downward-API files via the metadata stage, ISTIO_PROMETHEUS_ANNOTATIONS), then
 * meshtel's own MESHTEL_* variables, then explicit options; validated once and frozen (STYLE.md §10).
 */
import type { Registry } from 'prom-client';
import { ISTIO_PORTS, deepFreeze, parseBool, parseDurationMs, parseIntInRange, parsePort } from '../core/config.js';
import type { Env } from '../core/config.js';
import { ConfigError, quote } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { MetadataExchangeMode, PropagationMethod } from '../exchange/types.js';
import type { PayloadProfile, WorkloadMetadata } from '../metadata/types.js';
import type { TelemetryConfig } from '../stats/telemetry-api.js';
import { NativeHistogramConfig, type NativeHistogramOptions } from '../stats/native-histogram.js';
import { resolveRecorderBounds } from '../stats/recorder-bounds.js';
import type { RecorderBounds, RecorderBoundsOptions, RecorderBoundsText } from '../stats/recorder-bounds.js';
import type { HopTracer } from '../tracing/types.js';
import { DEFAULT_LISTENER_LIMITS, MAX_HEADERS_COUNT } from './listener-limits.js';
import type { ListenerLimits } from './listener-limits.js';
import { DEFAULT_MAX_APP_SCRAPE_BYTES } from './agent-endpoints.js';
import type { MeshFileInput, PortProtocol } from './registry.js';
import type { TlsFiles } from './tls.js';
import type { MtlsMode } from './permissive.js';
import { parseAdditionalLabels } from '../metadata/mx-header.js';

const MTLS_MODES = ['STRICT', 'PERMISSIVE'] as const satisfies readonly MtlsMode[];

/** Listener ports; 0 asks the OS for a free port (tests). */
export interface SidecarPorts {
  /** Inbound capture listener, Istio 15006. */
  readonly inbound: number;
  /** Outbound HTTP-proxy listener, Istio 15001. */
  readonly outbound: number;
  /** Envoy prometheus listener, 15090. */
  readonly prometheus: number;
  /** pilot-agent status server, 15020. */
  readonly status: number;
  /** Readiness listener, 15021. */
  readonly health: number;
  /** Admin, 15000 (127.0.0.1 only). */
  readonly admin: number;
}

/** An extra inbound listener for another app port (Istio's per-port inbound filter chains). */
export interface InboundPortOptions {
  /** Port to listen on (0 = any). */
  readonly port: number;
  /** The app's port. */
  readonly appPort: number;
  readonly protocol: PortProtocol;
}

/** A per-service outbound listener: the app connects to `listenPort` to reach `host:port`. */
export interface ServiceListenerOptions {
  /** Service host as in the registry (short name or FQDN). */
  readonly host: string;
  /** Service port. */
  readonly port: number;
  /** Local port to listen on (0 = any). */
  readonly listenPort: number;
}

/** Everything `startSidecar` accepts; every field overrides the environment. */
export interface SidecarOptions {
  /** Environment to read (default process.env). */
  readonly env?: Env;
  /** This workload's identity; loaded from env/downward API by the metadata stage when absent. */
  readonly metadata?: WorkloadMetadata;
  /**
   * Address the inbound and agent listeners (15090, 15020, 15021) bind (MESHTEL_BIND_ADDRESS), default
   * `0.0.0.0`. The outbound listeners use {@link outboundBindAddress}; admin is always 127.0.0.1.
   */
  readonly bindAddress?: string;
  /**
   * Address the outbound listener and the per-service listeners bind (MESHTEL_OUTBOUND_BIND_ADDRESS),
   * default `127.0.0.1`: they serve the local app only (Istio reaches 15001 through iptables from the
   * pod itself); bound wider they are a proxy for anyone who can reach the pod.
   */
  readonly outboundBindAddress?: string;
  /**
   * Pass requests for loopback destinations through (MESHTEL_LOOPBACK_PASSTHROUGH), default false as
   * Istio never captures them; for single-host setups. The sidecar's own ports stay refused.
   */
  readonly loopbackPassthrough?: boolean;
  /**
   * Limits of every traffic listener (MESHTEL_REQUEST_HEADERS_TIMEOUT, MESHTEL_IDLE_TIMEOUT,
   * MESHTEL_MAX_CONNECTIONS, MESHTEL_MAX_REQUEST_HEADERS_KB, MESHTEL_MAX_REQUEST_HEADERS_COUNT, MESHTEL_UPSTREAM_IDLE_TIMEOUT,
   * MESHTEL_UPSTREAM_KEEPALIVE_TIMEOUT, MESHTEL_TCP_IDLE_TIMEOUT); defaults in DEFAULT_LISTENER_LIMITS.
   */
  readonly limits?: Partial<ListenerLimits>;
  readonly ports?: Partial<SidecarPorts>;
  /** The local app (MESHTEL_APP_HOST, MESHTEL_APP_PORT, MESHTEL_APP_PROTOCOL). */
  readonly app?: { readonly host?: string; readonly port?: number; readonly protocol?: PortProtocol };
  /** More inbound listeners, one per further app port. */
  readonly inboundPorts?: readonly InboundPortOptions[];
  /** The mesh (services, ports, endpoints), or a YAML file (MESHTEL_MESH_FILE). */
  readonly mesh?: MeshFileInput;
  readonly meshFile?: string;
  /** Per-service outbound listeners (h2c/gRPC and TCP services are reached this way). */
  readonly serviceListeners?: readonly ServiceListenerOptions[];
  /** Istio `outboundTrafficPolicy.mode` (MESHTEL_OUTBOUND_TRAFFIC_POLICY), default ALLOW_ANY. */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** `metadataExchangeHeaders.mode` (MESHTEL_MX_MODE), default ALWAYS. */
  readonly mxMode?: MetadataExchangeMode;
  /** Run MX and stats (MESHTEL_TELEMETRY, default true). Off = a bare proxy (benchmark baseline). */
  readonly telemetry?: boolean;
  /** Parsed Telemetry API configuration handed to the stats stage. */
  readonly telemetryResources?: TelemetryConfig;
  /** MX payload profile (default: the exchange stage's). */
  readonly profile?: PayloadProfile;
  /** Pod labels the MX payload carries besides the standard ones (PILOT_MX_ADDITIONAL_LABELS, comma-separated). */
  readonly additionalLabels?: readonly string[];
  /**
   * Leave `istio-peer-exchange` out of the mutual TLS ALPN, offered and accepted (PILOT_DISABLE_MX_ALPN, istiod's
   * flag, default false): TCP connections then carry no exchange frame and the peer is known by its certificate
   * (the client: by the endpoint's metadata). Set it mesh-wide, as istiod does.
   */
  readonly disableMxAlpn?: boolean;
  readonly propagation?: PropagationMethod;
  /** Mutual TLS certificates (MESHTEL_TLS_CERT, MESHTEL_TLS_KEY, MESHTEL_TLS_CA). */
  readonly tls?: TlsFiles;
  /**
   * Istio PeerAuthentication `mtls.mode` of the inbound ports when `tls` is set (MESHTEL_MTLS_MODE): `STRICT`
   * (default: secure by default; Istio's own default is PERMISSIVE) refuses plain text, `PERMISSIVE` accepts plain
   * text beside mutual TLS on the same port. Without certificates every port is plain text (Istio's `DISABLE`).
   */
  readonly mtlsMode?: MtlsMode;
  /** TCP and gRPC periodic report interval (MESHTEL_REPORTING_INTERVAL, default 5s). */
  readonly reportingIntervalMs?: number;
  /**
   * The stats recorder's bounds (series cap, byte budgets, label length cap, series TTL, allow-lists,
   * buckets, custom metrics); each field also comes from its variable in {@link STATS_ENV}. Defaults
   * and reasons in docs/security.md ("What a peer can cost the scrape").
   */
  readonly stats?: RecorderBoundsOptions;
  /** Retries on connection failure (MESHTEL_RETRIES, Istio default 2). */
  readonly retries?: number;
  /** Route timeout (MESHTEL_ROUTE_TIMEOUT, default none as in Istio). */
  readonly timeoutMs?: number;
  /** `ISTIO_PROMETHEUS_ANNOTATIONS` JSON. */
  readonly prometheusAnnotations?: string;
  /** Largest app metrics page merged on :15020 (MESHTEL_APP_SCRAPE_MAX_BYTES, default 10 MiB as in pilot-agent). */
  readonly appScrapeMaxBytes?: number;
  /**
   * Native histograms on the three istio histograms, served in protobuf beside the classic buckets
   * (MESHTEL_NATIVE_HISTOGRAMS, MESHTEL_NATIVE_HISTOGRAM_SCHEMA, MESHTEL_NATIVE_HISTOGRAM_MAX_BUCKETS); off by
   * default because Prometheus 2.42–2.44 then drops the classic `_bucket` series (docs/architecture.md).
   */
  readonly nativeHistograms?: boolean | NativeHistogramOptions;
  readonly tracer?: HopTracer;
  /** Serve the agent ports (default true); false in a `--concurrency` worker, whose primary serves them (workers.ts). */
  readonly agentEndpoints?: boolean;
  /**
   * Awaited by `close()` once the listeners and pools are closed and before the recorder closes: the final
   * OTLP metrics push (`--otlp-metrics`) sends the last counts there, after the last request was recorded.
   * A rejection is ignored (the push counts its own failures).
   */
  readonly beforeTelemetryClose?: () => Promise<void>;
  readonly logger?: Logger;
  /** Registry for the proxy metrics (default: a fresh one). */
  readonly registry?: Registry;
}

/** The validated configuration. */
export interface ResolvedSidecarOptions {
  readonly bindAddress: string;
  readonly outboundBindAddress: string;
  readonly loopbackPassthrough: boolean;
  readonly limits: ListenerLimits;
  readonly ports: SidecarPorts;
  readonly app: { readonly host: string; readonly port: number | undefined; readonly protocol: PortProtocol };
  readonly inboundPorts: readonly InboundPortOptions[];
  readonly meshFile: string | undefined;
  readonly serviceListeners: readonly ServiceListenerOptions[];
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  readonly mxMode: MetadataExchangeMode;
  readonly telemetry: boolean;
  readonly tls: TlsFiles | undefined;
  readonly mtlsMode: MtlsMode;
  readonly additionalLabels: readonly string[];
  readonly disableMxAlpn: boolean;
  readonly reportingIntervalMs: number;
  /** Validated recorder bounds, defaults applied. */
  readonly stats: RecorderBounds;
  readonly retries: number;
  readonly timeoutMs: number;
  readonly prometheusAnnotations: string | undefined;
  readonly appScrapeMaxBytes: number;
  /** Native-histogram settings, undefined when off. */
  readonly nativeHistograms: NativeHistogramOptions | undefined;
}

const PROTOCOLS: readonly PortProtocol[] = ['http', 'http2', 'grpc', 'tcp'];

/**
 * The environment variable of each recorder bound: integers, a duration (`MESHTEL_SERIES_TTL=10m`) or
 * JSON (`MESHTEL_LABEL_ALLOW_LIST={"destination_workload":["reviews-v1"]}`,
 * `MESHTEL_HISTOGRAM_BUCKETS={"istio_request_duration_milliseconds":[1,5,10]}`,
 * `MESHTEL_STATS_DEFINITIONS=[{"name":"get_calls","value":"request.method == 'GET' ? 1 : 0"}]`).
 */
export const STATS_ENV: Readonly<Record<keyof RecorderBoundsOptions, string>> = Object.freeze({
  maxSeriesPerMetric: 'MESHTEL_MAX_SERIES_PER_METRIC',
  maxLabelValueLength: 'MESHTEL_MAX_LABEL_VALUE_LENGTH',
  maxExpositionBytes: 'MESHTEL_MAX_EXPOSITION_BYTES',
  maxPlainTextExpositionBytes: 'MESHTEL_MAX_PLAINTEXT_EXPOSITION_BYTES',
  maxPlainTextSeriesPerMetric: 'MESHTEL_MAX_PLAINTEXT_SERIES_PER_METRIC',
  seriesTtlMs: 'MESHTEL_SERIES_TTL',
  labelAllowList: 'MESHTEL_LABEL_ALLOW_LIST',
  buckets: 'MESHTEL_HISTOGRAM_BUCKETS',
  definitions: 'MESHTEL_STATS_DEFINITIONS',
});

/** Recorder bounds: each field from the option, else its variable; errors name the one that was used. */
function resolveStatsBounds(o: RecorderBoundsOptions, env: Env): RecorderBounds {
  const merged: Record<string, unknown> = {};
  const origins: Record<string, string> = {};
  for (const [field, envName] of Object.entries(STATS_ENV) as [keyof RecorderBoundsOptions, string][]) {
    const given = o[field];
    merged[field] = given ?? env[envName];
    origins[field] = given !== undefined ? `stats.${field}` : envName;
  }
  return resolveRecorderBounds(merged as RecorderBoundsOptions | RecorderBoundsText, (field) => origins[field] ?? field);
}

function oneOf<T extends string>(raw: string | undefined, allowed: readonly T[], origin: string): T | undefined {
  if (raw === undefined || raw === '') return undefined;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} must be one of ${allowed.join(', ')}, got ${quote(raw)}`, { field: origin, value: raw });
}

/** Resolve options against the environment. Throws ConfigError (MESHTEL_ERR_INVALID_CONFIG) on bad values. */
export function resolveSidecarOptions(options: SidecarOptions = {}): ResolvedSidecarOptions {
  const env = options.env ?? process.env;
  const p = options.ports ?? {};
  const port = (v: number | undefined, envName: string, def: number): number => parsePort(v ?? env[envName], v !== undefined ? `ports` : envName) ?? def;
  const ports: SidecarPorts = {
    inbound: port(p.inbound, 'MESHTEL_INBOUND_PORT', ISTIO_PORTS.INBOUND),
    outbound: port(p.outbound, 'MESHTEL_OUTBOUND_PORT', ISTIO_PORTS.OUTBOUND),
    prometheus: port(p.prometheus, 'MESHTEL_PROMETHEUS_PORT', ISTIO_PORTS.PROMETHEUS),
    status: port(p.status, 'MESHTEL_STATUS_PORT', ISTIO_PORTS.STATUS),
    health: port(p.health, 'MESHTEL_HEALTH_PORT', ISTIO_PORTS.HEALTH),
    admin: port(p.admin, 'MESHTEL_ADMIN_PORT', ISTIO_PORTS.ADMIN),
  };
  const appPort = parseIntInRange(options.app?.port ?? env.MESHTEL_APP_PORT, 'MESHTEL_APP_PORT', 1, 65535);
  const appProtocol = options.app?.protocol ?? oneOf(env.MESHTEL_APP_PROTOCOL, PROTOCOLS, 'MESHTEL_APP_PROTOCOL') ?? 'http';
  if (!PROTOCOLS.includes(appProtocol)) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `app.protocol must be one of ${PROTOCOLS.join(', ')}, got ${quote(appProtocol)}`, { field: 'app.protocol', value: appProtocol });
  }
  const tlsCert = options.tls?.certFile ?? env.MESHTEL_TLS_CERT;
  const tlsKey = options.tls?.keyFile ?? env.MESHTEL_TLS_KEY;
  const tlsCa = options.tls?.caFile ?? env.MESHTEL_TLS_CA;
  let tls: TlsFiles | undefined;
  if (tlsCert || tlsKey || tlsCa) {
    if (!tlsCert || !tlsKey || !tlsCa) {
      throw new ConfigError('MESHTEL_ERR_TLS', 'mutual TLS needs all three of the certificate chain, key and root certificate files', { certFile: tlsCert, keyFile: tlsKey, caFile: tlsCa });
    }
    tls = { certFile: tlsCert, keyFile: tlsKey, caFile: tlsCa };
  }
  const resolved: ResolvedSidecarOptions = {
    bindAddress: options.bindAddress ?? env.MESHTEL_BIND_ADDRESS ?? '0.0.0.0',
    outboundBindAddress: options.outboundBindAddress ?? env.MESHTEL_OUTBOUND_BIND_ADDRESS ?? '127.0.0.1',
    loopbackPassthrough: options.loopbackPassthrough ?? parseBool(env.MESHTEL_LOOPBACK_PASSTHROUGH, 'MESHTEL_LOOPBACK_PASSTHROUGH') ?? false,
    limits: resolveListenerLimits(options.limits ?? {}, env),
    ports,
    app: { host: options.app?.host ?? env.MESHTEL_APP_HOST ?? '127.0.0.1', port: appPort, protocol: appProtocol },
    inboundPorts: (options.inboundPorts ?? []).map((ip, i) => ({
      ...ip,
      port: parsePort(ip.port, `inboundPorts[${i}].port`) ?? missing(`inboundPorts[${i}].port`),
      appPort: parseIntInRange(ip.appPort, `inboundPorts[${i}].appPort`, 1, 65535) ?? missing(`inboundPorts[${i}].appPort`),
    })),
    meshFile: options.meshFile ?? (options.mesh === undefined ? env.MESHTEL_MESH_FILE : undefined),
    serviceListeners: (options.serviceListeners ?? []).map((sl, i) => ({
      ...sl,
      port: parseIntInRange(sl.port, `serviceListeners[${i}].port`, 1, 65535) ?? missing(`serviceListeners[${i}].port`),
      listenPort: parsePort(sl.listenPort, `serviceListeners[${i}].listenPort`) ?? missing(`serviceListeners[${i}].listenPort`),
    })),
    outboundTrafficPolicy:
      options.outboundTrafficPolicy ?? oneOf(env.MESHTEL_OUTBOUND_TRAFFIC_POLICY, ['ALLOW_ANY', 'REGISTRY_ONLY'] as const, 'MESHTEL_OUTBOUND_TRAFFIC_POLICY') ?? 'ALLOW_ANY',
    mxMode: options.mxMode ?? oneOf(env.MESHTEL_MX_MODE, ['ALWAYS', 'IN_MESH'] as const, 'MESHTEL_MX_MODE') ?? 'ALWAYS',
    telemetry: options.telemetry ?? parseBool(env.MESHTEL_TELEMETRY, 'MESHTEL_TELEMETRY') ?? true,
    tls,
    additionalLabels: options.additionalLabels ? parseAdditionalLabels(options.additionalLabels.join(','), 'additionalLabels') : parseAdditionalLabels(env.PILOT_MX_ADDITIONAL_LABELS),
    disableMxAlpn: options.disableMxAlpn ?? parseBool(env.PILOT_DISABLE_MX_ALPN, 'PILOT_DISABLE_MX_ALPN') ?? false,
    mtlsMode: oneOf(options.mtlsMode ?? env.MESHTEL_MTLS_MODE, MTLS_MODES, options.mtlsMode !== undefined ? 'mtlsMode' : 'MESHTEL_MTLS_MODE') ?? 'STRICT',
    // 0 disables periodic TCP/gRPC reports (the final report still happens).
    reportingIntervalMs: boundedMs(options.reportingIntervalMs, env, 'reportingIntervalMs', 'MESHTEL_REPORTING_INTERVAL', 0) ?? 5000,
    stats: resolveStatsBounds(options.stats ?? {}, env),
    retries: parseIntInRange(options.retries ?? env.MESHTEL_RETRIES, 'retries', 0, 10) ?? 2,
    // 0 is Envoy's "no route timeout".
    timeoutMs: boundedMs(options.timeoutMs, env, 'timeoutMs', 'MESHTEL_ROUTE_TIMEOUT', 0) ?? 0,
    prometheusAnnotations: options.prometheusAnnotations ?? env.ISTIO_PROMETHEUS_ANNOTATIONS,
    appScrapeMaxBytes:
      parseIntInRange(options.appScrapeMaxBytes ?? env.MESHTEL_APP_SCRAPE_MAX_BYTES, options.appScrapeMaxBytes !== undefined ? 'appScrapeMaxBytes' : 'MESHTEL_APP_SCRAPE_MAX_BYTES', 1, 2 ** 31 - 1) ??
      DEFAULT_MAX_APP_SCRAPE_BYTES,
    nativeHistograms: resolveNativeHistograms(options.nativeHistograms, env),
  };
  return deepFreeze(resolved);
}

/**
 * A duration from an option (number of ms) or else its environment variable, between `min` ms and 24 h. Options are
 * checked like the environment: a negative, NaN or infinite number is a configuration error naming the field.
 */
function boundedMs(option: number | undefined, env: Env, field: string, envName: string, min: number): number | undefined {
  const origin = option !== undefined ? field : envName;
  const raw = option ?? env[envName];
  const ms = parseDurationMs(raw, origin);
  if (ms !== undefined && !(ms >= min && ms <= 24 * 3_600_000)) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} must be a duration between ${min}ms and 24h, got ${quote(raw)}`, { field: origin, value: raw });
  }
  return ms;
}

/**
 * Native histograms: the option, else MESHTEL_NATIVE_HISTOGRAMS (a schema or bucket variable alone does not turn
 * them on). Validated here, so a bad value stops the sidecar at start with the field named.
 */
function resolveNativeHistograms(option: boolean | NativeHistogramOptions | undefined, env: Env): NativeHistogramOptions | undefined {
  const on = option !== undefined ? option !== false : (parseBool(env.MESHTEL_NATIVE_HISTOGRAMS, 'MESHTEL_NATIVE_HISTOGRAMS') ?? false);
  if (!on) return undefined;
  if (typeof option === 'object') {
    return new NativeHistogramConfig(option, 'nativeHistograms').options();
  }
  const schema = parseIntInRange(env.MESHTEL_NATIVE_HISTOGRAM_SCHEMA, 'MESHTEL_NATIVE_HISTOGRAM_SCHEMA', -4, 8);
  const maxBuckets = parseIntInRange(env.MESHTEL_NATIVE_HISTOGRAM_MAX_BUCKETS, 'MESHTEL_NATIVE_HISTOGRAM_MAX_BUCKETS', 0, 100_000);
  return new NativeHistogramConfig({ ...(schema !== undefined ? { schema } : {}), ...(maxBuckets !== undefined ? { maxBuckets } : {}) }).options();
}

function missing(field: string): never {
  throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${field} is required`, { field });
}

/** Largest header limit accepted: Envoy's own maximum for `max_request_headers_kb` (8192 KiB). */
const MAX_HEADERS_KB = 8192;

/** Listener limits: defaults, then env, then options; every value positive and bounded. */
function resolveListenerLimits(l: Partial<ListenerLimits>, env: Env): ListenerLimits {
  const positiveMs = (v: number | undefined, envName: string, field: string, def: number): number => {
    const ms = parseDurationMs(v ?? env[envName], v !== undefined ? `limits.${field}` : envName) ?? def;
    // 0 would mean "never" to node: refused, a limit that can be switched off is no limit.
    if (!(ms >= 1 && ms <= 24 * 3_600_000)) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${v !== undefined ? `limits.${field}` : envName} must be a duration between 1ms and 24h, got ${quote(v ?? env[envName])}`, { field, value: v ?? env[envName] });
    }
    return ms;
  };
  const kb = parseIntInRange(env.MESHTEL_MAX_REQUEST_HEADERS_KB, 'MESHTEL_MAX_REQUEST_HEADERS_KB', 1, MAX_HEADERS_KB);
  return {
    headersTimeoutMs: positiveMs(l.headersTimeoutMs, 'MESHTEL_REQUEST_HEADERS_TIMEOUT', 'headersTimeoutMs', DEFAULT_LISTENER_LIMITS.headersTimeoutMs),
    idleTimeoutMs: positiveMs(l.idleTimeoutMs, 'MESHTEL_IDLE_TIMEOUT', 'idleTimeoutMs', DEFAULT_LISTENER_LIMITS.idleTimeoutMs),
    maxConnections:
      parseIntInRange(l.maxConnections ?? env.MESHTEL_MAX_CONNECTIONS, l.maxConnections !== undefined ? 'limits.maxConnections' : 'MESHTEL_MAX_CONNECTIONS', 1, 1_000_000) ??
      DEFAULT_LISTENER_LIMITS.maxConnections,
    maxRequestHeadersBytes:
      parseIntInRange(l.maxRequestHeadersBytes, 'limits.maxRequestHeadersBytes', 1024, MAX_HEADERS_KB * 1024) ??
      (kb !== undefined ? kb * 1024 : DEFAULT_LISTENER_LIMITS.maxRequestHeadersBytes),
    maxRequestHeadersCount:
      parseIntInRange(
        l.maxRequestHeadersCount ?? env.MESHTEL_MAX_REQUEST_HEADERS_COUNT,
        l.maxRequestHeadersCount !== undefined ? 'limits.maxRequestHeadersCount' : 'MESHTEL_MAX_REQUEST_HEADERS_COUNT',
        1,
        MAX_HEADERS_COUNT,
      ) ?? DEFAULT_LISTENER_LIMITS.maxRequestHeadersCount,
    upstreamIdleTimeoutMs: positiveMs(l.upstreamIdleTimeoutMs, 'MESHTEL_UPSTREAM_IDLE_TIMEOUT', 'upstreamIdleTimeoutMs', DEFAULT_LISTENER_LIMITS.upstreamIdleTimeoutMs),
    upstreamKeepAliveTimeoutMs: positiveMs(l.upstreamKeepAliveTimeoutMs, 'MESHTEL_UPSTREAM_KEEPALIVE_TIMEOUT', 'upstreamKeepAliveTimeoutMs', DEFAULT_LISTENER_LIMITS.upstreamKeepAliveTimeoutMs),
    tcpIdleTimeoutMs: positiveMs(l.tcpIdleTimeoutMs, 'MESHTEL_TCP_IDLE_TIMEOUT', 'tcpIdleTimeoutMs', DEFAULT_LISTENER_LIMITS.tcpIdleTimeoutMs),
  };
}

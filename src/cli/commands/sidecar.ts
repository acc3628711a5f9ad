/**
 * `meshtel sidecar`: run the Node sidecar beside an app (src/sidecar). Every setting the injector
 * provides through the environment (ISTIO_META_*, POD_NAME, downward-API files,
 * ISTIO_PROMETHEUS_ANNOTATIONS, MESHTEL_*) can be overridden by a flag.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseDurationMs, parseIntInRange, parsePort } from '../../core/config.js';
import { ConfigError, quote } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import type { LogLevel } from '../../core/logger.js';
import type { MetadataExchangeMode, PropagationMethod } from '../../exchange/types.js';
import { formatNodeId } from '../../metadata/node-id.js';
import { PAYLOAD_PROFILES } from '../../metadata/types.js';
import type { PayloadProfile } from '../../metadata/types.js';
import { loadWorkloadMetadata } from '../../metadata/workload.js';
import { MAX_HEADERS_COUNT } from '../../sidecar/listener-limits.js';
import type { InboundPortOptions, ServiceListenerOptions, SidecarOptions } from '../../sidecar/options.js';
import type { PortProtocol } from '../../sidecar/registry.js';
import type { NativeHistogramOptions } from '../../stats/native-histogram.js';
import { parseTelemetry } from '../../stats/telemetry-api.js';
import { resolveRecorderBounds } from '../../stats/recorder-bounds.js';
import type { RecorderBoundsOptions } from '../../stats/recorder-bounds.js';
import type { TracingExporterName } from '../../tracing/config.js';

interface SidecarFlags {
  concurrency?: string;
  appPort?: string;
  appHost?: string;
  appProtocol?: string;
  bind?: string;
  outboundBind?: string;
  loopbackPassthrough?: boolean;
  requestHeadersTimeout?: string;
  idleTimeout?: string;
  upstreamIdleTimeout?: string;
  upstreamKeepaliveTimeout?: string;
  tcpIdleTimeout?: string;
  maxConnections?: string;
  maxRequestHeadersKb?: string;
  maxRequestHeadersCount?: string;
  inboundPort?: string;
  outboundPort?: string;
  prometheusPort?: string;
  statusPort?: string;
  healthPort?: string;
  adminPort?: string;
  inbound: string[];
  mesh?: string;
  serviceListener: string[];
  outboundTrafficPolicy?: string;
  mxMode?: string;
  telemetry: boolean;
  telemetryFile?: string;
  profile?: string;
  propagation?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  mtlsMode?: string;
  mxAdditionalLabels?: string;
  disableMxAlpn?: boolean;
  reportingInterval?: string;
  maxSeriesPerMetric?: string;
  maxLabelValueLength?: string;
  maxExpositionBytes?: string;
  maxPlaintextExpositionBytes?: string;
  maxPlaintextSeriesPerMetric?: string;
  seriesTtl?: string;
  labelAllowList?: string;
  histogramBuckets?: string;
  statsDefinitions?: string;
  retries?: string;
  routeTimeout?: string;
  prometheusAnnotations?: string;
  nativeHistograms?: boolean;
  nativeHistogramSchema?: string;
  nativeHistogramMaxBuckets?: string;
  metadataFile?: string;
  labelsPath?: string;
  annotationsPath?: string;
  tracing?: string;
  tracingEndpoint?: string;
  sampling?: string;
  shutdownTimeout?: string;
  otlpMetrics?: boolean;
  otlpMetricsEndpoint?: string;
  logLevel?: string;
}

const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;

function usage(message: string, field: string): ConfigError {
  return new ConfigError('MESHTEL_ERR_CLI_USAGE', message, { field });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw usage(`${flag} must be one of ${allowed.join(', ')}, got ${quote(value)}`, flag);
}

function parseNumberFlag(value: string, flag: string, min: number, max: number): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw usage(`${flag} must be a number between ${min} and ${max}, got ${quote(value)}`, flag);
  return n;
}

/** `--inbound 0:8081/grpc` → listen port, app port, protocol. */
export function parseInboundFlag(value: string): InboundPortOptions {
  const m = /^(\d+):(\d+)(?:\/([a-z0-9]+))?$/.exec(value);
  if (!m) throw usage(`--inbound must be <listenPort>:<appPort>[/<protocol>], got ${quote(value)}`, '--inbound');
  const protocol = oneOf(m[3] ?? 'http', PROTOCOLS, '--inbound protocol') as PortProtocol;
  return { port: parsePort(m[1], '--inbound listen port') ?? 0, appPort: parseIntInRange(m[2], '--inbound app port', 1, 65535) ?? 0, protocol };
}

/** `--service-listener reviews:9080=15101` → the service port reached through a local port. */
export function parseServiceListenerFlag(value: string): ServiceListenerOptions {
  const m = /^([^:=\s]+):(\d+)=(\d+)$/.exec(value);
  if (!m) throw usage(`--service-listener must be <host>:<port>=<listenPort>, got ${quote(value)}`, '--service-listener');
  return { host: m[1]!, port: parseIntInRange(m[2], '--service-listener port', 1, 65535) ?? 0, listenPort: parsePort(m[3], '--service-listener listen port') ?? 0 };
}

/** The flag of each recorder bound (the environment variables are `STATS_ENV` in src/sidecar/options.ts). */
const STATS_FLAGS: Readonly<Record<keyof RecorderBoundsOptions, [keyof SidecarFlags, string]>> = {
  maxSeriesPerMetric: ['maxSeriesPerMetric', '--max-series-per-metric'],
  maxLabelValueLength: ['maxLabelValueLength', '--max-label-value-length'],
  maxExpositionBytes: ['maxExpositionBytes', '--max-exposition-bytes'],
  maxPlainTextExpositionBytes: ['maxPlaintextExpositionBytes', '--max-plaintext-exposition-bytes'],
  maxPlainTextSeriesPerMetric: ['maxPlaintextSeriesPerMetric', '--max-plaintext-series-per-metric'],
  seriesTtlMs: ['seriesTtl', '--series-ttl'],
  labelAllowList: ['labelAllowList', '--label-allow-list'],
  buckets: ['histogramBuckets', '--histogram-buckets'],
  definitions: ['statsDefinitions', '--stats-definitions'],
};

/**
 * The recorder bounds given as flags, validated by the stats stage's own resolver (errors name the flag).
 * Only the flags given are returned, so the environment still supplies the others.
 */
function statsFromFlags(flags: SidecarFlags): RecorderBoundsOptions {
  const text: Record<string, string> = {};
  for (const [field, [key]] of Object.entries(STATS_FLAGS)) {
    const v = flags[key];
    if (typeof v === 'string') text[field] = v;
  }
  const resolved = resolveRecorderBounds(text, (field) => STATS_FLAGS[field][1]);
  const out: Record<string, unknown> = {};
  for (const field of Object.keys(text)) out[field] = resolved[field as keyof RecorderBoundsOptions];
  return out as RecorderBoundsOptions;
}

/** Turn flags into SidecarOptions (flags win over the environment, which startSidecar reads). */
export function sidecarOptionsFromFlags(flags: SidecarFlags, env: NodeJS.ProcessEnv = process.env): SidecarOptions {
  const port = (v: string | undefined, flag: string): number | undefined => parsePort(v, flag);
  const ports = {
    ...(flags.inboundPort !== undefined ? { inbound: port(flags.inboundPort, '--inbound-port') } : {}),
    ...(flags.outboundPort !== undefined ? { outbound: port(flags.outboundPort, '--outbound-port') } : {}),
    ...(flags.prometheusPort !== undefined ? { prometheus: port(flags.prometheusPort, '--prometheus-port') } : {}),
    ...(flags.statusPort !== undefined ? { status: port(flags.statusPort, '--status-port') } : {}),
    ...(flags.healthPort !== undefined ? { health: port(flags.healthPort, '--health-port') } : {}),
    ...(flags.adminPort !== undefined ? { admin: port(flags.adminPort, '--admin-port') } : {}),
  };
  const tlsGiven = flags.tlsCert !== undefined || flags.tlsKey !== undefined || flags.tlsCa !== undefined;
  if (tlsGiven && (flags.tlsCert === undefined || flags.tlsKey === undefined || flags.tlsCa === undefined)) {
    throw usage('--tls-cert, --tls-key and --tls-ca go together', '--tls-cert');
  }
  let telemetryResources;
  if (flags.telemetryFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.telemetryFile, 'utf8');
    } catch (err) {
      throw new ConfigError('MESHTEL_ERR_CONFIG_FILE', `cannot read ${quote(flags.telemetryFile)}: ${(err as Error).message}`, { file: flags.telemetryFile }, { cause: err });
    }
    telemetryResources = parseTelemetry(text);
  }
  const appPort = flags.appPort !== undefined ? parseIntInRange(flags.appPort, '--app-port', 1, 65535) : undefined;
  const appProtocol = oneOf(flags.appProtocol, PROTOCOLS, '--app-protocol');
  return {
    env,
    ...(flags.bind !== undefined ? { bindAddress: flags.bind } : {}),
    ...(flags.outboundBind !== undefined ? { outboundBindAddress: flags.outboundBind } : {}),
    ...(flags.loopbackPassthrough === true ? { loopbackPassthrough: true } : {}),
    limits: {
      ...(flags.requestHeadersTimeout !== undefined ? { headersTimeoutMs: parseDurationMs(flags.requestHeadersTimeout, '--request-headers-timeout') } : {}),
      ...(flags.idleTimeout !== undefined ? { idleTimeoutMs: parseDurationMs(flags.idleTimeout, '--idle-timeout') } : {}),
      ...(flags.upstreamIdleTimeout !== undefined ? { upstreamIdleTimeoutMs: parseDurationMs(flags.upstreamIdleTimeout, '--upstream-idle-timeout') } : {}),
      ...(flags.upstreamKeepaliveTimeout !== undefined ? { upstreamKeepAliveTimeoutMs: parseDurationMs(flags.upstreamKeepaliveTimeout, '--upstream-keepalive-timeout') } : {}),
      ...(flags.tcpIdleTimeout !== undefined ? { tcpIdleTimeoutMs: parseDurationMs(flags.tcpIdleTimeout, '--tcp-idle-timeout') } : {}),
      ...(flags.maxConnections !== undefined ? { maxConnections: parseIntInRange(flags.maxConnections, '--max-connections', 1, 1_000_000) } : {}),
      ...(flags.maxRequestHeadersKb !== undefined ? { maxRequestHeadersBytes: (parseIntInRange(flags.maxRequestHeadersKb, '--max-request-headers-kb', 1, 8192) ?? 60) * 1024 } : {}),
      ...(flags.maxRequestHeadersCount !== undefined ? { maxRequestHeadersCount: parseIntInRange(flags.maxRequestHeadersCount, '--max-request-headers-count', 1, MAX_HEADERS_COUNT) } : {}),
    },
    ports,
    app: { ...(flags.appHost !== undefined ? { host: flags.appHost } : {}), ...(appPort !== undefined ? { port: appPort } : {}), ...(appProtocol ? { protocol: appProtocol } : {}) },
    inboundPorts: flags.inbound.map(parseInboundFlag),
    ...(flags.mesh !== undefined ? { meshFile: flags.mesh } : {}),
    serviceListeners: flags.serviceListener.map(parseServiceListenerFlag),
    ...(flags.outboundTrafficPolicy !== undefined
      ? { outboundTrafficPolicy: oneOf(flags.outboundTrafficPolicy, ['ALLOW_ANY', 'REGISTRY_ONLY'] as const, '--outbound-traffic-policy') }
      : {}),
    ...(flags.mxMode !== undefined ? { mxMode: oneOf<MetadataExchangeMode>(flags.mxMode, ['ALWAYS', 'IN_MESH'], '--mx-mode') } : {}),
    ...(flags.telemetry === false ? { telemetry: false } : {}),
    ...(telemetryResources ? { telemetryResources } : {}),
    ...(flags.profile !== undefined ? { profile: oneOf<PayloadProfile>(flags.profile, PAYLOAD_PROFILES, '--profile') } : {}),
    ...(flags.propagation !== undefined ? { propagation: oneOf<PropagationMethod>(flags.propagation, ['istio_headers', 'baggage'], '--propagation') } : {}),
    ...(tlsGiven ? { tls: { certFile: flags.tlsCert!, keyFile: flags.tlsKey!, caFile: flags.tlsCa! } } : {}),
    ...(flags.mxAdditionalLabels !== undefined ? { additionalLabels: flags.mxAdditionalLabels.split(',') } : {}),
    ...(flags.disableMxAlpn === true ? { disableMxAlpn: true } : {}),
    ...(flags.mtlsMode !== undefined ? { mtlsMode: oneOf(flags.mtlsMode, ['STRICT', 'PERMISSIVE'] as const, '--mtls-mode') } : {}),
    ...(flags.reportingInterval !== undefined ? { reportingIntervalMs: parseDurationMs(flags.reportingInterval, '--reporting-interval') } : {}),
    stats: statsFromFlags(flags),
    ...(flags.retries !== undefined ? { retries: parseIntInRange(flags.retries, '--retries', 0, 10) } : {}),
    ...(flags.routeTimeout !== undefined ? { timeoutMs: parseDurationMs(flags.routeTimeout, '--route-timeout') } : {}),
    ...(flags.prometheusAnnotations !== undefined ? { prometheusAnnotations: flags.prometheusAnnotations } : {}),
    ...nativeHistogramFlags(flags),
  };
}

/** `--native-histograms [--native-histogram-schema n] [--native-histogram-max-buckets n]`; the last two need the first. */
function nativeHistogramFlags(flags: SidecarFlags): { nativeHistograms?: NativeHistogramOptions } {
  const schema = parseIntInRange(flags.nativeHistogramSchema, '--native-histogram-schema', -4, 8);
  const maxBuckets = parseIntInRange(flags.nativeHistogramMaxBuckets, '--native-histogram-max-buckets', 0, 100_000);
  if (flags.nativeHistograms !== true) {
    if (schema !== undefined || maxBuckets !== undefined) {
      throw usage('--native-histogram-schema and --native-histogram-max-buckets need --native-histograms', '--native-histograms');
    }
    return {};
  }
  return { nativeHistograms: { ...(schema !== undefined ? { schema } : {}), ...(maxBuckets !== undefined ? { maxBuckets } : {}) } };
}

/** Register `meshtel sidecar`. */
export function registerSidecarCommand(program: Command): void {
  program
    .command('sidecar')
    .description('run the Node sidecar: inbound/outbound listeners with metadata exchange, istio_* stats and tracing, plus the agent endpoints')
    .option('--app-port <port>', 'local app port the inbound listener forwards to (MESHTEL_APP_PORT)')
    .option('--concurrency <n>', 'worker processes sharing the traffic listeners, one merged scrape (1; Istio runs 2 Envoy workers)')
    .option('--app-host <host>', 'local app host (MESHTEL_APP_HOST)', undefined)
    .option('--app-protocol <p>', 'http | http2 | grpc | tcp (MESHTEL_APP_PROTOCOL)')
    .option('--bind <address>', 'address of the inbound and agent listeners (0.0.0.0; admin stays on 127.0.0.1)')
    .option('--outbound-bind <address>', 'address of the outbound and per-service listeners (127.0.0.1: the local app only)')
    .option('--loopback-passthrough', 'pass requests for 127.0.0.1/localhost through (refused by default, as Istio never captures them)')
    .option('--request-headers-timeout <duration>', 'time a client has to send a request head (10s)')
    .option('--idle-timeout <duration>', 'close a connection idle this long (60s)')
    .option('--upstream-idle-timeout <duration>', 'close a pooled upstream HTTP/2 connection with no stream this long (1h, as Envoy)')
    .option('--upstream-keepalive-timeout <duration>', 'close a pooled upstream HTTP/1.1 connection idle this long, under the app server\'s keep-alive timeout (4s)')
    .option('--tcp-idle-timeout <duration>', 'close a TCP-proxied connection with no byte either way this long (1h, as Envoy)')
    .option('--max-connections <n>', 'connections per traffic listener (4096)')
    .option('--max-request-headers-kb <n>', 'largest request head, KiB (60, as Envoy)')
    .option('--max-request-headers-count <n>', 'most header fields in a request (100, as Envoy)')
    .option('--inbound-port <port>', 'inbound listener (15006)')
    .option('--outbound-port <port>', 'outbound HTTP-proxy listener (15001)')
    .option('--prometheus-port <port>', 'proxy metrics (15090)')
    .option('--status-port <port>', 'merged metrics and readiness (15020)')
    .option('--health-port <port>', 'readiness (15021)')
    .option('--admin-port <port>', 'admin on 127.0.0.1 (15000)')
    .option('--inbound <listen:app[/protocol]>', 'another inbound listener for another app port (repeatable)', collect, [])
    .option('--mesh <file>', 'mesh YAML: services, ports, endpoints (MESHTEL_MESH_FILE)')
    .option('--service-listener <host:port=listen>', 'a local port that reaches one service port, for h2c/gRPC/TCP (repeatable)', collect, [])
    .option('--outbound-traffic-policy <mode>', 'ALLOW_ANY | REGISTRY_ONLY')
    .option('--mx-mode <mode>', 'ALWAYS | IN_MESH (no MX headers to external hosts)')
    .option('--no-telemetry', 'run as a bare proxy: no metadata exchange, no stats')
    .option('--telemetry-file <file>', 'Telemetry API resources (telemetry.istio.io/v1 YAML)')
    .option('--profile <profile>', 'MX payload: flat | reduced | reduced-1.29 (default, as Istio 1.29) | reduced-identity')
    .option('--propagation <method>', 'istio_headers | baggage')
    .option('--tls-cert <file>', 'mTLS certificate chain (MESHTEL_TLS_CERT)')
    .option('--tls-key <file>', 'mTLS private key (MESHTEL_TLS_KEY)')
    .option('--tls-ca <file>', 'mTLS root certificate (MESHTEL_TLS_CA)')
    .option('--mx-additional-labels <keys>', 'pod label keys the MX payload carries besides the standard ones, comma-separated (PILOT_MX_ADDITIONAL_LABELS)')
    .option('--disable-mx-alpn', 'leave istio-peer-exchange out of the mutual TLS ALPN: no TCP exchange frames (PILOT_DISABLE_MX_ALPN; set it mesh-wide, as istiod)')
    .option('--mtls-mode <mode>', 'inbound PeerAuthentication mode with certificates: STRICT (default) or PERMISSIVE, plain text accepted too (MESHTEL_MTLS_MODE)')
    .option('--reporting-interval <duration>', 'TCP and gRPC periodic reports (5s)')
    .option('--max-series-per-metric <n>', 'series per istio metric before the overflow series (10000; MESHTEL_MAX_SERIES_PER_METRIC)')
    .option('--max-label-value-length <n>', 'longer label values are cut and counted (600; MESHTEL_MAX_LABEL_VALUE_LENGTH)')
    .option('--max-exposition-bytes <n>', 'byte budget of the istio_* series on :15090 (67108864 = 64 MiB; MESHTEL_MAX_EXPOSITION_BYTES)')
    .option('--max-plaintext-exposition-bytes <n>', 'share of it for plain-text peers (16777216 = 16 MiB; MESHTEL_MAX_PLAINTEXT_EXPOSITION_BYTES)')
    .option('--max-plaintext-series-per-metric <n>', 'series per metric for plain-text peers (a quarter of the cap; MESHTEL_MAX_PLAINTEXT_SERIES_PER_METRIC)')
    .option('--series-ttl <duration>', 'remove series idle this long (never; MESHTEL_SERIES_TTL)')
    .option('--label-allow-list <json>', '{"label":["value",...]}: other values become "overflow" (MESHTEL_LABEL_ALLOW_LIST)')
    .option('--histogram-buckets <json>', '{"istio_request_duration_milliseconds":[1,5,10,...]} (MESHTEL_HISTOGRAM_BUCKETS)')
    .option('--stats-definitions <json>', 'custom metrics [{"name","value","type"}] (MESHTEL_STATS_DEFINITIONS)')
    .option('--retries <n>', 'retries on connection failure (2)')
    .option('--route-timeout <duration>', 'route timeout (none)')
    .option('--prometheus-annotations <json>', 'ISTIO_PROMETHEUS_ANNOTATIONS: {"scrape","path","port"} of the app metrics to merge')
    .option('--native-histograms', 'native histograms beside the classic buckets, served in protobuf (MESHTEL_NATIVE_HISTOGRAMS; off)')
    .option('--native-histogram-schema <n>', 'native histogram resolution, -4..8 (3: buckets grow by 9%)')
    .option('--native-histogram-max-buckets <n>', 'populated native buckets per series before the resolution halves (160; 0 = no bound)')
    .option('--metadata-file <file>', 'YAML/JSON workload metadata (name, namespace, labels, ...) over the environment')
    .option('--labels-path <file>', 'downward-API pod labels (/etc/istio/pod/labels)')
    .option('--annotations-path <file>', 'downward-API pod annotations (/etc/istio/pod/annotations)')
    .option('--tracing <exporter>', 'otlp | jaeger | console | none (default OTEL_TRACES_EXPORTER when set, else none); configured by NodeSDK and the OTEL_* variables')
    .option('--tracing-endpoint <url>', 'trace backend URL (default OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, localhost:4318)')
    .option('--sampling <percent>', 'random sampling percentage (default OTEL_TRACES_SAMPLER(_ARG), else Istio 1.0)')
    .option('--shutdown-timeout <duration>', 'bound on flushing spans and the last OTLP metrics push at shutdown; what is left is counted as dropped (2s)')
    .option('--otlp-metrics', 'also push the istio_* and meshtel_* series over OTLP/HTTP protobuf (on with OTEL_METRICS_EXPORTER=otlp); interval OTEL_METRIC_EXPORT_INTERVAL (60s)')
    .option('--otlp-metrics-endpoint <url>', 'OTLP metrics URL (default OTEL_EXPORTER_OTLP_METRICS_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, localhost:4318)')
    .option('--log-level <level>', 'debug | info | warn | error | silent', 'info')
    .addHelpText(
      'after',
      `
Examples:
  $ meshtel sidecar --app-port 8080 --mesh mesh.yaml
  $ meshtel sidecar --app-port 9090 --app-protocol grpc --service-listener ratings:9090=15101 --mesh mesh.yaml
  $ meshtel sidecar --app-port 8080 --tls-cert certs/default.web/cert-chain.pem --tls-key certs/default.web/key.pem --tls-ca certs/root-cert.pem`,
    )
    .action(async (flags: SidecarFlags) => {
      const level = oneOf<LogLevel>(flags.logLevel, ['debug', 'info', 'warn', 'error', 'silent'], '--log-level') ?? 'info';
      const logger = createLogger({ level, bindings: { component: 'sidecar' } });
      const env = process.env;
      // The proxy, prom-client and OpenTelemetry load here, not at CLI start: `meshtel --version`, `decode`,
      // `inject`... do not pay for them.
      const concurrency = parseIntInRange(flags.concurrency, '--concurrency', 1, 64) ?? 1;
      const { default: cluster } = await import('node:cluster');
      if (concurrency > 1 && cluster.isPrimary) {
        await runPrimary(flags, env, concurrency, logger);
        return;
      }
      const worker = concurrency > 1 && env[WORKER_ENV] === '1';
      const [{ startSidecar }, { Registry }] = await Promise.all([import('../../sidecar/sidecar.js'), import('prom-client')]);
      const metadata = loadWorkloadMetadata({
        env,
        ...(flags.metadataFile !== undefined ? { file: flags.metadataFile } : {}),
        ...(flags.labelsPath !== undefined ? { labelsPath: flags.labelsPath } : {}),
        ...(flags.annotationsPath !== undefined ? { annotationsPath: flags.annotationsPath } : {}),
      });
      // The flag, else the standard variable (OTel's own default, otlp, is not applied: Istio traces only when configured).
      const tracingFlag = flags.tracing ?? (env.OTEL_TRACES_EXPORTER?.trim() || undefined);
      const exporter = oneOf<TracingExporterName>(tracingFlag, ['otlp', 'jaeger', 'console', 'none'], flags.tracing !== undefined ? '--tracing' : 'OTEL_TRACES_EXPORTER');
      const shutdownTimeoutMillis = flags.shutdownTimeout !== undefined ? parseDurationMs(flags.shutdownTimeout, '--shutdown-timeout') : undefined;
      const samplingPercent = flags.sampling !== undefined ? parseNumberFlag(flags.sampling, '--sampling', 0, 100) : undefined;
      // One registry for the proxy: the tracing stage's meshtel_spans_* counters are served on :15090 too.
      const registry = new Registry();
      // The OTel SDK (NodeSDK) is imported only when tracing is on: a sidecar with tracing off never loads it.
      const tracer =
        exporter !== undefined && exporter !== 'none'
          ? (await import('../../tracing/node-sdk.js')).startNodeSdkTracing({
              local: metadata,
              nodeId: formatNodeId(metadata),
              exporter,
              registry,
              logger,
              ...(flags.tracingEndpoint !== undefined ? { endpoint: flags.tracingEndpoint } : {}),
              ...(samplingPercent !== undefined ? { samplingPercent } : {}),
              ...(shutdownTimeoutMillis !== undefined ? { shutdownTimeoutMillis } : {}),
            })
          : undefined;
      // The OTLP metrics push, started below once the recorder exists, pushes one last time when the sidecar has
      // drained and before it closes the recorder.
      const final: { push?: { shutdown(): Promise<void> } | undefined } = {};
      // startSidecar logs the one "sidecar ready" line (node id and bound ports) and "sidecar stopped" at the end.
      const sidecar = await startSidecar({
        beforeTelemetryClose: async () => final.push?.shutdown(),
        ...sidecarOptionsFromFlags(flags, env),
        metadata,
        logger,
        registry,
        ...(tracer ? { tracer } : {}),
        ...(worker ? { agentEndpoints: false } : {}),
      });
      // The OTLP metrics push (and the OTel metrics SDK) load only when asked for.
      const pushMetrics = flags.otlpMetrics === true || flags.otlpMetricsEndpoint !== undefined || env.OTEL_METRICS_EXPORTER?.trim() === 'otlp';
      const families = sidecar.stats.families;
      final.push =
        pushMetrics && families !== undefined
          ? (await import('../../stats/otlp-push.js')).startOtlpMetricsPush({
              families,
              registry,
              serviceName: (await import('../../tracing/config.js')).defaultServiceName(metadata),
              logger,
              ...(flags.otlpMetricsEndpoint !== undefined ? { endpoint: flags.otlpMetricsEndpoint } : {}),
              ...(shutdownTimeoutMillis !== undefined ? { shutdownTimeoutMillis } : {}),
            })
          : undefined;
      if (pushMetrics && families === undefined) logger.warn('--otlp-metrics ignored: telemetry is off (--no-telemetry)');
      if (worker) {
        const { serveWorker } = await import('../../sidecar/workers.js');
        serveWorker({
          ports: sidecar.ports,
          nodeId: sidecar.nodeId,
          families: sidecar.stats.families,
          registry: sidecar.registry,
          configDump: () => sidecar.configDump(),
          close: () => sidecar.close(),
          closed: sidecar.closed,
        });
      }
      await runUntilClosed(sidecar, logger);
    });
}

/** Serve until `running` has closed; SIGINT or SIGTERM closes it (the sidecar, or the primary of its workers). */
async function runUntilClosed(running: { close(): Promise<void>; readonly closed: Promise<unknown> }, logger: ReturnType<typeof createLogger>): Promise<void> {
  const stop = (signal: NodeJS.Signals): void => {
    logger.info('sidecar stopping', { signal });
    void running.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await running.closed;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Set in the environment of `--concurrency` workers (node:cluster runs the same command line in each). */
const WORKER_ENV = 'MESHTEL_SIDECAR_WORKER';

/** `--concurrency N` > 1 in the primary: fork N workers that share the listeners and serve the merged agent ports. */
async function runPrimary(flags: SidecarFlags, env: NodeJS.ProcessEnv, concurrency: number, logger: ReturnType<typeof createLogger>): Promise<void> {
  const [{ resolveSidecarOptions }, { parsePrometheusAnnotations }, { startSidecarPrimary }] = await Promise.all([
    import('../../sidecar/options.js'),
    import('../../sidecar/agent-endpoints.js'),
    import('../../sidecar/workers.js'),
  ]);
  // Checked here once, so a bad flag fails before any worker starts.
  const config = resolveSidecarOptions(sidecarOptionsFromFlags(flags, env));
  const appScrape = parsePrometheusAnnotations(config.prometheusAnnotations, config.ports.status);
  const primary = await startSidecarPrimary({
    concurrency,
    bindAddress: config.bindAddress,
    ports: { prometheus: config.ports.prometheus, status: config.ports.status, health: config.ports.health, admin: config.ports.admin },
    ...(appScrape ? { appScrape } : {}),
    appHost: config.app.host,
    maxAppScrapeBytes: config.appScrapeMaxBytes,
    logger,
    workerEnv: { [WORKER_ENV]: '1' },
  });
  await runUntilClosed(primary, logger);
}

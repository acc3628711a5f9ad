/**
 * `startSidecar`: a process beside an app the way istio-proxy sits beside it: inbound and outbound
 * listeners running metadata exchange, stats and tracing on every hop, plus the agent endpoints.
 */
import type { Registry } from 'prom-client';
import { ConfigError, isMeshtelError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { formatNodeId } from '../metadata/node-id.js';
import type { WorkloadMetadata } from '../metadata/types.js';
import { loadWorkloadMetadata } from '../metadata/workload.js';
import type { ServiceInfo } from '../stats/types.js';
import { parsePrometheusAnnotations, startAgentEndpoints } from './agent-endpoints.js';
import type { AgentEndpoints } from './agent-endpoints.js';
import { createDestinationGuard } from './destination-guard.js';
import { listenHttp } from './http-listener.js';
import type { BoundListener } from './http-listener.js';
import { createHttpProxyHandler } from './http-proxy.js';
import { createSidecarTelemetry } from './telemetry-binding.js';
import { createProxyRefusals } from './listener-limits.js';
import { registerProcessMetrics } from './self-metrics.js';
import { resolveSidecarOptions } from './options.js';
import type { ResolvedSidecarOptions, SidecarOptions } from './options.js';
import { createServiceRegistry, loadMeshFile } from './registry.js';
import type { PortProtocol, ServiceRegistry } from './registry.js';
import { createReportingTicker } from './reporting-ticker.js';
import { listenTcpInbound, listenTcpOutbound } from './tcp-proxy.js';
import type { SidecarTelemetry } from './telemetry-contract.js';
import { loadSidecarTls } from './tls.js';
import type { SidecarTls } from './tls.js';
import { createUpstreamPool } from './upstream.js';

/** Ports actually bound (useful when 0 was asked). */
export interface SidecarBoundPorts {
  /** Main inbound listener, or 0 when no app port is configured. */
  readonly inbound: number;
  readonly outbound: number;
  readonly prometheus: number;
  readonly status: number;
  readonly health: number;
  readonly admin: number;
  /** Extra inbound listeners, in the order of `inboundPorts`. */
  readonly inboundPorts: readonly number[];
  /** Per-service outbound listeners, in the order of `serviceListeners`. */
  readonly serviceListeners: readonly number[];
}

/** A running sidecar. */
export interface Sidecar {
  readonly ports: SidecarBoundPorts;
  /** This workload's identity. */
  readonly metadata: WorkloadMetadata;
  /** Node id sent as `x-envoy-peer-metadata-id`. */
  readonly nodeId: string;
  /** The telemetry filters (MX, stats, tracing) the listeners run. */
  readonly stats: SidecarTelemetry;
  /** The proxy metric registry (what :15090 serves). */
  readonly registry: Registry;
  /** The service registry built from the mesh. */
  readonly services: ServiceRegistry;
  readonly options: ResolvedSidecarOptions;
  /** Stop listening, close connections and pools. Safe to call twice. */
  close(): Promise<void>;
  /** What the admin port's `/config_dump` serves. */
  configDump(): unknown;
  /** Resolves when the sidecar has closed (e.g. after /quitquitquit). */
  readonly closed: Promise<void>;
}

const isH2 = (p: PortProtocol): boolean => p === 'http2' || p === 'grpc';

/** Start a sidecar. Throws ConfigError for bad options, mesh, certificates or ports in use. */
export async function startSidecar(options: SidecarOptions = {}): Promise<Sidecar> {
  const config = resolveSidecarOptions(options);
  const logger = options.logger ?? silentLogger;
  const env = options.env ?? process.env;
  const metadata = options.metadata ?? loadWorkloadMetadata({ env });
  const nodeId = formatNodeId(metadata);
  const mesh = config.meshFile !== undefined ? loadMeshFile(config.meshFile) : options.mesh;
  // Short names resolve in this workload's namespace, as cluster DNS does for the pod.
  const registryOfServices = createServiceRegistry(mesh, { namespace: metadata.namespace });
  // istio-peer-exchange only while the TCP exchange runs (PILOT_DISABLE_MX_ALPN, telemetry off: src/sidecar/tls.ts).
  const tls: SidecarTls | undefined = config.tls ? loadSidecarTls(config.tls, { mxAlpn: config.telemetry && !config.disableMxAlpn }) : undefined;
  const appScrape = parsePrometheusAnnotations(config.prometheusAnnotations, config.ports.status);
  const telemetry = createSidecarTelemetry({
    local: metadata,
    nodeId,
    enabled: config.telemetry,
    profile: options.profile,
    propagation: options.propagation,
    additionalLabels: config.additionalLabels,
    ...(options.telemetryResources ? { telemetry: options.telemetryResources } : {}),
    reportingIntervalMs: config.reportingIntervalMs,
    ...(config.nativeHistograms !== undefined ? { nativeHistograms: config.nativeHistograms } : {}),
    stats: config.stats,
    tracer: options.tracer,
    registry: options.registry,
  });
  registerProcessMetrics(telemetry.registry);
  const refusals = createProxyRefusals(telemetry.registry);
  const limits = config.limits;
  // The sidecar's own ports: configured ones now, ephemeral ones as they bind (listen() below).
  const guard = createDestinationGuard(
    [...Object.values(config.ports), ...config.inboundPorts.map((p) => p.port), ...config.serviceListeners.map((s) => s.listenPort)],
    [...metadata.instanceIps, config.bindAddress, config.outboundBindAddress],
    config.loopbackPassthrough,
  );
  const ticker = createReportingTicker(config.reportingIntervalMs);
  const inboundPool = createUpstreamPool({ idleTimeoutMs: limits.upstreamIdleTimeoutMs, keepAliveTimeoutMs: limits.upstreamKeepAliveTimeoutMs });
  const outboundPool = createUpstreamPool({ tls, idleTimeoutMs: limits.upstreamIdleTimeoutMs, keepAliveTimeoutMs: limits.upstreamKeepAliveTimeoutMs });
  // Inbound cluster metadata `istio.services[0]`: the first Service whose selector matches this pod's
  // labels (not its canonical name: a pod with canonical name `ratings` behind Service `server` is
  // `server`). None: null, and the stats stage falls back as istio_stats.cc does.
  const inboundService: ServiceInfo | null = registryOfServices.servicesOf(metadata)[0] ?? null;

  const listeners: BoundListener[] = [];
  let agent: AgentEndpoints | undefined;
  let ready = false;
  let closing: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const host = config.bindAddress;
  const outboundHost = config.outboundBindAddress;

  const inboundListener = async (port: number, appPort: number, protocol: PortProtocol): Promise<BoundListener> => {
    if (protocol === 'tcp') {
      return listenTcpInbound({ host, port, app: { host: config.app.host, port: appPort }, service: inboundService, tls, mtlsMode: config.mtlsMode, telemetry, logger, limits, refusals });
    }
    const handler = createHttpProxyHandler({
      direction: 'inbound',
      telemetry,
      pool: inboundPool,
      ticker,
      logger,
      app: { host: config.app.host, port: appPort, h2: isH2(protocol) },
      inboundService,
    });
    return listenHttp({
      host,
      port,
      name: 'inbound',
      role: 'inbound',
      limits,
      refusals,
      logger,
      tls,
      mtlsMode: config.mtlsMode,
      handler,
      h2: isH2(protocol),
      // An mTLS connection that asked for istio-peer-exchange on an HTTP port: Istio's TCP chain would
      // take it; here it is refused rather than mis-parsed.
      onPeerExchange: (socket) => socket.destroy(),
    });
  };

  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.allSettled(listeners.map((l) => l.close()));
      await agent?.close().catch(() => {});
      ticker.close();
      await Promise.all([inboundPool.close(), outboundPool.close()]);
      // Traffic is over and the recorder still open: the final OTLP push goes now (options.beforeTelemetryClose).
      await options.beforeTelemetryClose?.().catch(() => {});
      // The stats stage's TTL sweep and TCP report timers end with the sidecar (they outlived it).
      telemetry.close();
      await telemetry.tracer.shutdown().catch(() => {});
      // Once per sidecar, after every listener and the tracer are done (only if it had started).
      if (ready) logger.info('sidecar stopped', { nodeId });
      resolveClosed();
    })());

  try {
    const mainInbound = config.app.port !== undefined ? await inboundListener(config.ports.inbound, config.app.port, config.app.protocol) : undefined;
    if (mainInbound) listeners.push(mainInbound);
    const extraInbound: number[] = [];
    for (const ip of config.inboundPorts) {
      const l = await inboundListener(ip.port, ip.appPort, ip.protocol);
      listeners.push(l);
      extraInbound.push(l.port);
    }
    const outboundOptions = {
      direction: 'outbound' as const,
      telemetry,
      pool: outboundPool,
      ticker,
      logger,
      registry: registryOfServices,
      outboundTrafficPolicy: config.outboundTrafficPolicy,
      mxMode: config.mxMode,
      mtls: tls !== undefined,
      localPrincipal: tls?.localPrincipal ?? '',
      retries: config.retries,
      timeoutMs: config.timeoutMs,
      destinationGuard: guard,
      refusals,
    };
    const outboundListener = { role: 'outbound' as const, limits, refusals, logger };
    const outbound = await listenHttp({ ...outboundListener, host: outboundHost, port: config.ports.outbound, name: 'outbound', handler: createHttpProxyHandler(outboundOptions), h2: false });
    listeners.push(outbound);
    const serviceListenerPorts: number[] = [];
    for (const sl of config.serviceListeners) {
      const route = registryOfServices.resolve(`${sl.host}:${sl.port}`);
      if (!route) {
        throw new ConfigError('MESHTEL_ERR_INVALID_MESH', `service listener ${sl.host}:${sl.port} names no service port of the mesh`, { host: sl.host, port: sl.port });
      }
      const l =
        route.protocol === 'tcp'
          ? await listenTcpOutbound({ host: outboundHost, port: sl.listenPort, route, tls, telemetry, logger, limits, refusals })
          : await listenHttp({
              ...outboundListener,
              host: outboundHost,
              port: sl.listenPort,
              name: `outbound ${route.service.host}:${route.port}`,
              handler: createHttpProxyHandler({ ...outboundOptions, fixedRoute: route }),
              h2: isH2(route.protocol),
            });
      listeners.push(l);
      serviceListenerPorts.push(l.port);
    }
    const configDump = (): unknown => ({
      node: { id: nodeId, metadata },
      mesh: registryOfServices.mesh,
      listeners: { ...sidecarPorts() },
      options: config,
      localPrincipal: tls?.localPrincipal ?? '',
    });
    // A worker of `--concurrency N` leaves the agent ports to the primary, which merges the workers' pages (workers.ts).
    if (options.agentEndpoints !== false) agent = await startAgentEndpoints({
      bindAddress: host,
      ports: { prometheus: config.ports.prometheus, status: config.ports.status, health: config.ports.health, admin: config.ports.admin },
      proxyRegistry: telemetry.registry,
      renderProxy: telemetry.render,
      appScrape,
      appHost: config.app.host,
      maxAppScrapeBytes: config.appScrapeMaxBytes,
      isReady: () => ready,
      // Only a sidecar that records telemetry publishes tap records.
      ...(config.telemetry ? { tap: { workload: metadata.workload, namespace: metadata.namespace } } : {}),
      configDump,
      quit: () => void close(),
      logger,
    });
    const a = agent ?? { ports: { prometheus: 0, status: 0, health: 0, admin: 0 } };
    for (const l of listeners) guard.addOwnPort(l.port);
    for (const p of Object.values(a.ports)) guard.addOwnPort(p);
    const sidecarPorts = (): SidecarBoundPorts => ({
      inbound: mainInbound?.port ?? 0,
      outbound: outbound.port,
      prometheus: a.ports.prometheus,
      status: a.ports.status,
      health: a.ports.health,
      admin: a.ports.admin,
      inboundPorts: extraInbound,
      serviceListeners: serviceListenerPorts,
    });
    ready = true;
    logger.info('sidecar ready', { nodeId, ports: sidecarPorts() });
    return {
      ports: sidecarPorts(),
      configDump,
      metadata,
      nodeId,
      stats: telemetry,
      registry: telemetry.registry,
      services: registryOfServices,
      options: config,
      close,
      closed,
    };
  } catch (err) {
    await close();
    if (isMeshtelError(err)) throw err;
    throw new ConfigError('MESHTEL_ERR_LISTEN', `sidecar failed to start: ${(err as Error).message}`, {}, { cause: err });
  }
}

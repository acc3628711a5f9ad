/**
 * Binds the sidecar's telemetry interface to the exchange, stats and tracing stages: the only file
 * of src/sidecar that knows their factories.
 */
import { Registry } from 'prom-client';
import { createHttpMetadataExchange, nodeHeaderGetter, nodeHeaderSetter } from '../exchange/http-exchange.js';
import type { NodeHeaders } from '../exchange/http-exchange.js';
import type { HeaderRemover } from '../exchange/types.js';
import { createPeerCache } from '../exchange/peer-cache.js';
import { createTcpMetadataExchange } from '../exchange/tcp-exchange.js';
import type { PropagationMethod } from '../exchange/types.js';
import type { PayloadProfile, WorkloadMetadata } from '../metadata/types.js';
import { contentTypeOf, negotiateFormat, renderMetrics } from '../stats/exposition.js';
import type { NativeHistogramOptions } from '../stats/native-histogram.js';
import { createIstioStats } from '../stats/istio-stats.js';
import type { RecorderBoundsOptions } from '../stats/recorder-bounds.js';
import type { TelemetryConfig } from '../stats/telemetry-api.js';
import { createNoopTracing } from '../tracing/noop.js';
import type { HopTracer } from '../tracing/types.js';
import { publishHttpTap, tapChannel } from '../record/tap.js';
import { registerSelfMetrics } from './self-metrics.js';
import { createDisabledTelemetry } from './telemetry-contract.js';
import type { SidecarTelemetry } from './telemetry-contract.js';

/** Options for {@link createSidecarTelemetry}. */
export interface SidecarTelemetryOptions {
  readonly local: WorkloadMetadata;
  readonly nodeId: string;
  readonly enabled: boolean;
  readonly profile?: PayloadProfile;
  readonly propagation?: PropagationMethod;
  /** Pod labels the MX payload carries besides the standard ones (`PILOT_MX_ADDITIONAL_LABELS`). */
  readonly additionalLabels?: readonly string[];
  /** Parsed Telemetry API configuration passed through to the stats stage. */
  readonly telemetry?: TelemetryConfig;
  /** TCP byte-delta report interval (the stats stage runs the timer). */
  readonly reportingIntervalMs?: number;
  /** Native histograms beside the classic ones (protobuf exposition only); off when absent. */
  readonly nativeHistograms?: NativeHistogramOptions;
  /** Validated recorder bounds (resolveSidecarOptions). */
  readonly stats?: RecorderBoundsOptions;
  readonly tracer?: HopTracer;
  /** Registry to register the proxy metrics in; a fresh one by default. */
  readonly registry?: Registry;
}

/**
 * Strips an MX header by setting it to undefined rather than `delete`: deleting a property turns the
 * request's header object into a V8 dictionary, which made every later read and the forwarding copy
 * slower (~1 µs per request, measured); the listeners skip undefined values when they forward.
 */
const blankHeader: HeaderRemover<NodeHeaders> = (carrier, name) => {
  if (carrier[name] !== undefined) carrier[name] = undefined;
};

/** Build the telemetry adapter; with `enabled: false` it does nothing at all. */
export function createSidecarTelemetry(options: SidecarTelemetryOptions): SidecarTelemetry {
  const registry = options.registry ?? new Registry();
  const tracer = options.tracer ?? createNoopTracing();
  if (!options.enabled) return createDisabledTelemetry(registry, tracer);
  // One cache per direction, none for TCP (issue 11.4): a response or a TCP frame can never answer for a request.
  const http = createHttpMetadataExchange({
    local: options.local,
    nodeId: options.nodeId,
    profile: options.profile,
    propagation: options.propagation,
    additionalLabels: options.additionalLabels ?? [],
    inboundCache: createPeerCache(),
    outboundCache: createPeerCache(),
  });
  const tcp = createTcpMetadataExchange({ local: options.local, nodeId: options.nodeId, profile: options.profile, additionalLabels: options.additionalLabels ?? [] });
  const activity = { active: 0 };
  registerSelfMetrics(registry, { caches: http.caches, exchanges: [http.counters, tcp.counters], activity });
  const stats = createIstioStats({
    ...options.stats,
    local: options.local,
    registry,
    ...(options.telemetry ? { telemetry: options.telemetry } : {}),
    ...(options.reportingIntervalMs !== undefined ? { tcpReportingIntervalMs: options.reportingIntervalMs } : {}),
    ...(options.nativeHistograms !== undefined ? { nativeHistograms: options.nativeHistograms } : {}),
  });
  return {
    enabled: true,
    registry,
    tracer,
    families: () => stats.families(),
    render: (accept) => {
      const format = negotiateFormat(accept);
      return { contentType: contentTypeOf(format), body: renderMetrics(stats, format) };
    },
    activity,
    readRequestPeer: (headers, peerPrincipal) => http.extractRequest(headers, nodeHeaderGetter, blankHeader, peerPrincipal),
    writeResponsePeer: (headers, extract) => http.injectResponse(headers, nodeHeaderSetter, extract),
    writeRequestPeer: (headers) => http.injectRequest(headers, nodeHeaderSetter),
    readResponsePeer: (headers, peerPrincipal) => http.extractResponse(headers, nodeHeaderGetter, blankHeader, peerPrincipal),
    recordHttp: (attrs) => {
      stats.recordHttp(attrs);
      if (tapChannel.hasSubscribers) publishHttpTap(options.local, attrs);
    },
    recordGrpcMessages: (attrs, req, resp) => stats.recordGrpcMessages(attrs, req, resp),
    openTcp: (attrs) => stats.openTcp(attrs),
    recordPeerUnknown: (reason, reporter) => stats.recordPeerUnknown(reason, reporter),
    tcpFrame: tcp.frame,
    // The exchange's parser steps are a superset of what the listeners read.
    createTcpParser: () => tcp.createParser(),
    close: () => stats.close(),
  };
}


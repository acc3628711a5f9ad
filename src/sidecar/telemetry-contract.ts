/**
 * The telemetry interface the listeners call. `telemetry-binding.ts` binds it to the exchange, stats
 * and tracing stages; {@link createDisabledTelemetry} is the "telemetry off" variant, decided once at
 * construction (STYLE.md §5): every method is a shared no-op and no MX header is read, written or
 * stripped. It is the baseline the benchmark compares against.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Registry } from 'prom-client';
import type { ExchangeExtract } from '../exchange/types.js';
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter } from '../stats/types.js';
import type { HopSpan, HopTracer } from '../tracing/types.js';
import type { Family } from '../stats/series.js';

/** Byte counters of one TCP connection; the stats stage reports deltas every interval and at close. */
export interface TcpRecorder {
  addReceived(bytes: number): void;
  addSent(bytes: number): void;
  /** Emit the deltas since the last report. */
  flush(): void;
  /** Final report and the closed-connection count; `responseFlags` label a failed connection. */
  close(responseFlags?: number): void;
}

/** The TCP MX frame reader is the metadata stage's own (one definition of the parser contract). */
import type { TcpFrameParser } from '../metadata/tcp-frame.js';
export type { TcpFrameParser, TcpParseStep } from '../metadata/tcp-frame.js';

/**
 * Render the proxy's metrics for an `Accept` header (text 0.0.4 unless OpenMetrics is preferred). The body
 * is a stream of byte chunks so that a scrape of 10k+ label sets never builds one giant string (V8's string
 * limit) nor blocks the proxy for the whole render.
 */
export type ProxyMetricsRenderer = (accept: string | string[] | undefined) => {
  readonly contentType: string;
  readonly body: AsyncIterable<Buffer>;
};

/** Live request gauges of one sidecar, plain numbers read at scrape time (STYLE §8). */
export interface ProxyActivity {
  /** Requests received and not yet finished, over every HTTP listener. */
  active: number;
}

/** What the listeners need from the telemetry stages. */
export interface SidecarTelemetry {
  /** False when telemetry is switched off: listeners skip all telemetry work. */
  readonly enabled: boolean;
  /** The proxy's metric registry (served on :15090). */
  readonly registry: Registry;
  readonly tracer: HopTracer;
  /** The exposition of `registry` as :15090 serves it. */
  readonly render: ProxyMetricsRenderer;
  /** The recorder's families (istio_* and its meshtel_*), for the OTLP push; none when telemetry is off. */
  readonly families?: () => readonly Family[];
  /** In-flight request count, exported as `meshtel_proxy_requests_active`. */
  readonly activity: ProxyActivity;
  /** Inbound request: read and strip the downstream peer's MX headers (stripped = set to undefined; forwarders skip undefined values). */
  readRequestPeer(headers: IncomingHttpHeaders, peerPrincipal?: string): ExchangeExtract;
  /** Inbound response: add this proxy's MX headers per what the request carried. */
  writeResponsePeer(headers: OutgoingHttpHeaders, extract: ExchangeExtract): void;
  /** Outbound request: set this proxy's MX headers (overwriting what the app sent). */
  writeRequestPeer(headers: OutgoingHttpHeaders): void;
  /**
   * Outbound response: read and strip the upstream's MX headers (set to undefined, as for requests). Both readers take
   * the peer's verified SPIFFE id under mTLS, which binds the peer-cache entry to it (issue 11.4).
   */
  readResponsePeer(headers: IncomingHttpHeaders, peerPrincipal?: string): ExchangeExtract;
  recordHttp(attrs: HttpStreamAttributes): void;
  recordGrpcMessages(attrs: HttpStreamAttributes, requestMessages: number, responseMessages: number): void;
  openTcp(attrs: ConnectionAttributes): TcpRecorder;
  recordPeerUnknown(reason: UnknownPeerReason, reporter: Reporter): void;
  /** This proxy's TCP MX frame (magic, length, Any(Struct)), encoded once. */
  readonly tcpFrame: Buffer;
  createTcpParser(): TcpFrameParser;
  /** Stop the stages' timers (TTL sweep, TCP reports) and flush open TCP connections; later records are ignored. */
  close(): void;
}

/** The extract used when MX is not run (telemetry off, IN_MESH to an external host). */
export const NOT_READ: ExchangeExtract = Object.freeze({
  result: Object.freeze({ ok: false as const, reason: 'mx_disabled' as const }),
  idReceived: false,
  valueReceived: false,
  cacheHit: false,
});
const NOOP_TCP: TcpRecorder = Object.freeze({ addReceived() {}, addSent() {}, flush() {}, close() {} });
const noop = (): void => {};

/** Telemetry switched off: a pure proxy. */
export function createDisabledTelemetry(registry: Registry = new Registry(), tracer: HopTracer = NOOP_TRACER): SidecarTelemetry {
  return {
    enabled: false,
    registry,
    tracer,
    render: () => ({ contentType: registry.contentType, body: registryChunks(registry) }),
    activity: { active: 0 },
    readRequestPeer: () => NOT_READ,
    writeResponsePeer: noop,
    writeRequestPeer: noop,
    readResponsePeer: () => NOT_READ,
    recordHttp: noop,
    recordGrpcMessages: noop,
    openTcp: () => NOOP_TCP,
    recordPeerUnknown: noop,
    tcpFrame: Buffer.alloc(0),
    createTcpParser: () => ({
      push: (chunk) => ({ done: true, result: NOT_READ.result, peerId: '', rest: chunk }),
      end: () => ({ done: true, result: NOT_READ.result, peerId: '', rest: Buffer.alloc(0) }),
    }),
    close: noop,
  };
}

async function* registryChunks(registry: Registry): AsyncGenerator<Buffer> {
  yield Buffer.from(await registry.metrics(), 'utf8');
}

const NOOP_SPAN: HopSpan = Object.freeze({ sampled: false, traceId: '00000000000000000000000000000000', inject() {}, end() {} });
const NOOP_TRACER: HopTracer = Object.freeze({ startSpan: () => NOOP_SPAN, shutdown: () => Promise.resolve() });

/** The peer of an extract, or null. */
export function peerOf(extract: ExchangeExtract): PeerMetadata | null {
  return extract.result.ok ? extract.result.peer : null;
}

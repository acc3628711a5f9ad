/**
 * The contract between traffic filters and the tracing stage: one span per request per hop, as Envoy's
 * HTTP connection manager creates it (istio-telemetry-v2 spec §5).
 */
import type { Context } from '@opentelemetry/api';
import type { PeerMetadata } from '../metadata/types.js';

/** Headers as Node gives them (lower-case names). */
export type HeaderBag = Record<string, string | string[] | undefined>;

/** What a filter knows when a request arrives. */
export interface SpanStartInfo {
  /** `server` for the inbound hop (reporter=destination), `client` for outbound/gateway hops. */
  readonly kind: 'server' | 'client';
  readonly method: string;
  /** Full URL as Envoy's `http.url` tag: scheme://authority/path. */
  readonly url: string;
  readonly authority: string;
  /** `HTTP/1.1`, `HTTP/2`. */
  readonly protocol: string;
  /** Downstream peer address (`peer.address`). */
  readonly peerAddress?: string;
  /** Port used in the span name `host:port/*`. */
  readonly port: number;
  /** Service host for the span name; falls back to the authority host. */
  readonly serviceHost?: string;
}

/** What a filter knows when the request ends. */
export interface SpanEndInfo {
  readonly statusCode: number;
  readonly responseFlags: string;
  readonly upstreamCluster: string;
  /** Upstream host address (`upstream_address` tag), when one was picked. */
  readonly upstreamAddress?: string;
  readonly requestSize: number;
  readonly responseSize: number;
  readonly grpcStatus?: string;
  /** The peer learned by MX, added as `istio.peer.*` tags. */
  readonly peer?: PeerMetadata | null;
}

/** A live span for one hop. Never throws; all methods are safe after end(). */
export interface HopSpan {
  /** True when sampled (recorded and exported). */
  readonly sampled: boolean;
  /** 32-hex trace id (also for unsampled spans, for log correlation); `''` when tracing is off (createNoopTracing). */
  readonly traceId: string;
  /**
   * The OpenTelemetry context with this span active, for code that runs inside the hop (the embedding runs the
   * app's handlers in it, so the app's own spans and meshtel's client spans become its children). Absent when
   * tracing is off.
   */
  readonly context?: Context;
  /** Write the propagation headers (traceparent, b3, x-request-id, ...) for the next hop. */
  inject(headers: HeaderBag): void;
  /** End the span; an unsampled span ignores `info` (callers may pass a shared object for it). */
  end(info: SpanEndInfo): void;
}

/** The tracing stage as filters see it. */
export interface HopTracer {
  /**
   * `false` when this tracer never records a span (tracing off): a caller may then pass any {@link SpanStartInfo},
   * e.g. one shared object, instead of building one per request. Absent means it may record.
   */
  readonly recording?: boolean;
  /** Start a span from the incoming request headers (extracting the parent). Mutates `headers` to add x-request-id when absent. */
  startSpan(headers: HeaderBag, info: SpanStartInfo): HopSpan;
  /** Flush and stop exporting. */
  shutdown(): Promise<void>;
}

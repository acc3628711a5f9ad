/**
 * Limits of the traffic listeners and the counter of everything the proxy refuses.
 *
 * Envoy bounds a downstream connection with the HTTP connection manager's `request_headers_timeout`,
 * `common_http_protocol_options.idle_timeout` (1 h by default), `max_request_headers_kb` (60 KiB by
 * default) and the listener's connection limit
 * (envoy `api/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto`).
 * meshtel keeps the 60 KiB header limit and sets the other three tighter than Envoy's defaults
 * (disabled, 1 h, unlimited), because a Node listener has no overload manager: see docs/security.md.
 */
import type tls from 'node:tls';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';

/** Per-listener limits (each traffic listener applies all of them). */
export interface ListenerLimits {
  /** Time a client has to send a complete request head (and, under mTLS, finish the handshake), ms. */
  readonly headersTimeoutMs: number;
  /** An open connection with no request in flight is closed after this long, ms. */
  readonly idleTimeoutMs: number;
  /** Connections held at once per listener; further ones are closed at accept. */
  readonly maxConnections: number;
  /** Largest request head accepted (request line plus headers), bytes; over it: 431. */
  readonly maxRequestHeadersBytes: number;
  /**
   * Most header fields a request may carry (Envoy's `common_http_protocol_options.max_headers_count`, 100 by
   * default): HTTP/1.1 counts the header lines (431 over it), HTTP/2 the header list with its pseudo-headers
   * (the stream reset with `INTERNAL_ERROR`), as Envoy's codecs count them. Counted as `too_many_headers`.
   */
  readonly maxRequestHeadersCount: number;
  /**
   * A pooled upstream HTTP/2 session with no stream open is closed after this long, ms (Envoy's upstream
   * `common_http_protocol_options.idle_timeout`, Istio `connectionPool.http.idleTimeout`: 1 h).
   */
  readonly upstreamIdleTimeoutMs: number;
  /**
   * A pooled upstream HTTP/1.1 connection with no request on it is closed after this long, ms, and sooner
   * when the upstream's `Keep-Alive: timeout=` hint says so. It must stay under the app server's own
   * keep-alive timeout (node's default: 5 s), or a request can be written on a connection the app is
   * closing at that moment (ECONNRESET, 503 `UC`): the sidecar, as Istio's default retry policy, does not
   * retry a request once sent. Envoy's cluster `idle_timeout` defaults to 1 h; this one is tighter.
   */
  readonly upstreamKeepAliveTimeoutMs: number;
  /**
   * A TCP-proxied connection with no byte in either direction is closed after this long, ms (Envoy's
   * `tcp_proxy` `idle_timeout`, 1 h by default). Counted as `reason="tcp_idle_timeout"`.
   */
  readonly tcpIdleTimeoutMs: number;
}

/** The defaults, documented in docs/security.md. */
export const DEFAULT_LISTENER_LIMITS: ListenerLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxConnections: 4096,
  // Envoy's max_request_headers_kb default (60), not node's 16 KiB.
  maxRequestHeadersBytes: 60 * 1024,
  // Envoy's DEFAULT_MAX_HEADERS_COUNT, not node's 2000 (HTTP/1.1) or 128 (HTTP/2).
  maxRequestHeadersCount: 100,
  upstreamIdleTimeoutMs: 3_600_000,
  // Under node's 5 s server keepAliveTimeout, the most common app server behind a meshtel sidecar.
  upstreamKeepAliveTimeoutMs: 4_000,
  tcpIdleTimeoutMs: 3_600_000,
});

/**
 * Largest `maxRequestHeadersCount` accepted. Envoy's `max_headers_count` has no upper bound; this one bounds what
 * node's own HTTP/2 pair limit (twice it, http-listener.ts) lets one stream hold before the listener's check.
 */
export const MAX_HEADERS_COUNT = 10_000;

/** Why the proxy refused a connection or a request (the `reason` label). */
export type RefusalReason =
  /** The listener held `maxConnections` connections. */
  | 'max_connections'
  /** No complete request head within `headersTimeoutMs` (slowloris). */
  | 'headers_timeout'
  /** The request head exceeded `maxRequestHeadersBytes` (answered 431). */
  | 'headers_too_large'
  /** The request carried more than `maxRequestHeadersCount` header fields (431; HTTP/2: stream reset). */
  | 'too_many_headers'
  /**
   * An HTTP/2 stream node's codec reset before the listener saw its headers (over twice either header limit,
   * node's session memory, header fields nghttp2 rejects): a client stream id that opened but never arrived.
   */
  | 'h2_codec_refused'
  /** The destination is one of the sidecar's own listeners (admin, agent, traffic ports). */
  | 'own_port'
  /** Passthrough to a loopback address (Envoy never sees such traffic: iptables does not capture it). */
  | 'loopback_destination'
  /** The upstream certificate is not the identity the registry expects for the endpoint. */
  | 'upstream_san_mismatch'
  /** A TCP connection idle for `tcpIdleTimeoutMs` was closed (Envoy `tcp.<prefix>.idle_timeout`). */
  | 'tcp_idle_timeout'
  /**
   * An HTTP connection idle for `idleTimeoutMs` was closed: an HTTP/1.1 keep-alive connection with no request, an
   * HTTP/2 session with no frame (Envoy `downstream_cx_idle_timeout`).
   */
  | 'idle_timeout'
  /** The request head could not be parsed (answered 400, recorded with flag `DPE`). */
  | 'protocol_error'
  /**
   * The client closed or reset the connection before its request head was complete: no request, so
   * nothing in `istio_requests_total` (Envoy counts it in `downstream_rq_rx_reset` only).
   */
  | 'incomplete_head';

/** The listener role (the `listener` label): bounded, never a port or a host. */
export type ListenerRole = 'inbound' | 'outbound';

/** Counts refusals; one per sidecar, registered in the proxy registry (served on :15090). */
export interface ProxyRefusals {
  /** Count `n` (default 1) refusals. */
  count(listener: ListenerRole, reason: RefusalReason, n?: number): void;
}

/** Metric name of {@link ProxyRefusals}. */
export const PROXY_REFUSED_METRIC = 'meshtel_proxy_refused_total';

/** Register `meshtel_proxy_refused_total{listener,reason}` in `registry` (or reuse it). */
export function createProxyRefusals(registry: Registry): ProxyRefusals {
  const existing = registry.getSingleMetric(PROXY_REFUSED_METRIC) as Counter<'listener' | 'reason'> | undefined;
  const counter =
    existing ??
    new Counter({
      name: PROXY_REFUSED_METRIC,
      help: 'Connections and requests the sidecar refused, by listener role and reason (limits, own ports, loopback passthrough, upstream identity).',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    });
  // Pre-bound children: a refusal under attack is one add, no label-key build.
  const children = new Map<string, Counter.Internal>();
  return {
    count(listener, reason, n = 1) {
      const key = `${listener}/${reason}`;
      let c = children.get(key);
      if (c === undefined) {
        c = counter.labels(listener, reason);
        children.set(key, c);
      }
      c.inc(n);
    },
  };
}

/** A refusal counter that counts nothing (listeners started outside a sidecar, e.g. in unit tests). */
export const NO_REFUSALS: ProxyRefusals = Object.freeze({ count: () => {} });

/**
 * The TLS handshake deadline of a listener's TLS server (created with `handshakeTimeout`): node emits
 * `ERR_TLS_HANDSHAKE_TIMEOUT` as a `tlsClientError` but leaves the connection open (a client that never finishes its
 * handshake held it for ever), so the connection is closed here and counted as `reason="headers_timeout"`. A
 * connection with any other client error before its handshake finished is closed too.
 */
export function closeOnTlsClientError(server: tls.Server, refusals: ProxyRefusals, role: ListenerRole): void {
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') refusals.count(role, 'headers_timeout');
    socket.destroy();
  });
}

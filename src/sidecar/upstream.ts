/**
 * Upstream connections for the HTTP listeners: a keep-alive node:http Agent for HTTP/1.1 and one
 * cached HTTP/2 session per endpoint for h2c/gRPC (Envoy's per-cluster connection pools).
 *
 * Requests without a body over plain text go through an undici Agent (keep-alive pools per origin):
 * bench/sidecar.bench.ts measured a bare undici proxy at ~1.36x the throughput of a bare node:http
 * one. Requests with a body, and mTLS requests, go through node:http: a retry after a connection
 * failure must not lose the body, so it is piped only once the socket has connected and a refused
 * connection leaves it untouched for the next attempt (Envoy buffers for the same reason), whereas
 * undici destroys the body on a connect error; and the upstream certificate (the principal) is read
 * from node's socket.
 */
import http from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { Agent as UndiciAgent } from 'undici';
import type { TLSSocket } from 'node:tls';
import { ALPN_HTTP1_CLIENT, ALPN_HTTP2_CLIENT, peerPrincipalOf } from './tls.js';
import type { SidecarTls } from './tls.js';

/** Where to send one request. */
export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  /** `h2` for http2/grpc ports (prior-knowledge h2c, or h2 over mTLS). */
  readonly h2: boolean;
  /** Use mutual TLS (mesh endpoint with a sidecar, and TLS configured). */
  readonly tls: boolean;
}

/** The upstream's response head and body. */
export interface UpstreamResponse {
  readonly status: number;
  /** Response headers, pseudo-headers removed. */
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  /** The head carried END_STREAM (gRPC trailers-only response): there is no body and no trailers. */
  readonly endStream: boolean;
  /** Trailers, valid once `body` has ended. */
  trailers(): IncomingHttpHeaders | undefined;
  /** Upstream certificate SPIFFE id under mTLS, else `''`. */
  readonly peerPrincipal: string;
  /** Approximate wire size of the response head (for h2 downstream accounting). */
  readonly headBytes: number;
}

/** How an attempt failed. */
export type UpstreamFailure =
  /** No connection was made; nothing of the body was sent: retryable (Envoy UF). */
  | 'connect'
  /** Connected but reset/closed before a response head (Envoy UC). */
  | 'reset';

/** Callbacks of one attempt; exactly one of them is called once. */
export interface UpstreamHandlers {
  onResponse(res: UpstreamResponse): void;
  onError(kind: UpstreamFailure, err: Error): void;
}

/** A running attempt. */
export interface UpstreamCall {
  /** Abandon the attempt (downstream went away, timeout). */
  abort(): void;
}

/** Options of {@link createUpstreamPool}. */
export interface UpstreamPoolOptions {
  readonly tls?: SidecarTls;
  /** Max sockets per HTTP/1.1 endpoint. */
  readonly maxSocketsPerHost?: number;
}

/** The per-listener connection pools. */
export interface UpstreamPool {
  /**
   * Send a request. `body` (the downstream request) is piped only once connected; `onBodyChunk`
   * sees each chunk as it is sent (gRPC message counting, h2 byte accounting).
   */
  request(
    target: UpstreamTarget,
    method: string,
    path: string,
    authority: string,
    headers: OutgoingHttpHeaders,
    body: Readable | null,
    handlers: UpstreamHandlers,
    onBodyChunk?: (chunk: Buffer) => void,
  ): UpstreamCall;
  close(): void;
}

/** Pseudo and connection-specific headers that must not cross an HTTP/2 hop (RFC 9113 §8.2.2). */
const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/** Create the pools. */
export function createUpstreamPool(options: UpstreamPoolOptions = {}): UpstreamPool {
  const maxSockets = options.maxSocketsPerHost ?? 1024;
  const plainAgent = new http.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });
  const tlsAgent = options.tls
    ? new https.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo', ...options.tls.clientOptions(ALPN_HTTP1_CLIENT) })
    : undefined;
  const sessions = new Map<string, ClientHttp2Session>();
  // No undici timeouts: the route timeout (UT) is the only one, as in Envoy's default.
  const undici = new UndiciAgent({ connections: maxSockets, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 60_000 });

  /** Errors that mean no connection was made (nothing was sent, safe to retry). */
  const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

  function bodyless(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, handlers: UpstreamHandlers): UpstreamCall {
    let settled = false;
    const abort = new AbortController();
    headers.host = authority;
    const origin = `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    undici
      .request({ origin, path, method: method as 'GET', headers: headers as Record<string, string>, body: null, signal: abort.signal })
      .then(
        (res) => {
          if (settled) {
            res.body.destroy();
            return;
          }
          settled = true;
          handlers.onResponse({
            status: res.statusCode,
            headers: res.headers as IncomingHttpHeaders,
            body: res.body,
            // undici fills the trailers object once the body has ended.
            trailers: () => (Object.keys(res.trailers).length > 0 ? (res.trailers as IncomingHttpHeaders) : undefined),
            endStream: false,
            peerPrincipal: '',
            headBytes: 0,
          });
        },
        (err: Error & { code?: string }) => {
          if (settled) return;
          settled = true;
          handlers.onError(CONNECT_ERRORS.has(err.code ?? '') ? 'connect' : 'reset', err);
        },
      );
    return {
      abort() {
        settled = true;
        abort.abort();
      },
    };
  }

  function h1(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, body: Readable | null, handlers: UpstreamHandlers, onBodyChunk?: (chunk: Buffer) => void): UpstreamCall {
    let settled = false;
    let connected = false;
    const agent = target.tls && tlsAgent ? tlsAgent : plainAgent;
    headers.host = authority;
    const req = (target.tls && tlsAgent ? https : http).request({ agent, host: target.host, port: target.port, method, path, headers, setHost: false });
    const start = (): void => {
      connected = true;
      // The tap goes on together with the pipe: a 'data' listener added earlier would start the flow
      // before anyone consumes it.
      if (body) {
        if (onBodyChunk) body.on('data', onBodyChunk);
        body.pipe(req);
      } else req.end();
    };
    if (body === null) {
      // Nothing to lose on a failed connect: end at once (saves a listener and a tick per request).
      req.end();
      req.once('socket', (socket) => {
        if (socket.connecting) socket.once('connect', () => (connected = true));
        else connected = true;
      });
    } else {
      req.on('socket', (socket) => {
        if (socket.connecting) socket.once('connect', start);
        else start();
      });
    }
    req.on('response', (res) => {
      if (settled) return;
      settled = true;
      const principal = target.tls ? peerPrincipalOf(res.socket as TLSSocket) : '';
      handlers.onResponse({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: res,
        trailers: () => res.trailers,
        endStream: false,
        peerPrincipal: principal,
        headBytes: 0,
      });
    });
    req.on('error', (err) => {
      if (settled) return;
      settled = true;
      // A stale keep-alive socket reset before anything was answered is a connection failure too,
      // provided no body byte was consumed (bodyless requests).
      const staleReuse = req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && body === null;
      handlers.onError(!connected || staleReuse ? 'connect' : 'reset', err);
    });
    return {
      abort() {
        settled = true;
        req.destroy();
      },
    };
  }

  function session(target: UpstreamTarget): ClientHttp2Session {
    const key = `${target.tls ? 's' : 'p'}:${target.host}:${target.port}`;
    const existing = sessions.get(key);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const url = `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    const tlsOpts = target.tls && options.tls ? options.tls.clientOptions(ALPN_HTTP2_CLIENT) : undefined;
    const s = http2.connect(url, tlsOpts ? { createConnection: () => tls.connect({ ...tlsOpts, host: target.host, port: target.port }) } : {});
    sessions.set(key, s);
    // Requests queued while connecting each hold a listener; bounded by in-flight requests.
    s.setMaxListeners(0);
    const drop = (): void => {
      if (sessions.get(key) === s) sessions.delete(key);
    };
    s.on('close', drop);
    s.on('error', drop);
    s.on('goaway', drop);
    // An idle pool connection must not keep the process alive.
    s.unref();
    return s;
  }

  function h2(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, body: Readable | null, handlers: UpstreamHandlers, onBodyChunk?: (chunk: Buffer) => void): UpstreamCall {
    let settled = false;
    const s = session(target);
    let connected = !s.connecting;
    const h2headers: OutgoingHttpHeaders = { ':method': method, ':path': path, ':authority': authority, ':scheme': target.tls ? 'https' : 'http' };
    for (const name in headers) if (!H2_FORBIDDEN.has(name) && name.charCodeAt(0) !== 58) h2headers[name] = headers[name];
    let stream: http2.ClientHttp2Stream;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      handlers.onError(connected ? 'reset' : 'connect', err);
    };
    try {
      stream = s.request(h2headers, { endStream: body === null });
    } catch (err) {
      queueMicrotask(() => fail(err as Error));
      return { abort() {} };
    }
    const start = (): void => {
      connected = true;
      if (body) {
        if (onBodyChunk) body.on('data', onBodyChunk);
        body.pipe(stream);
      }
    };
    if (s.connecting) {
      s.once('connect', start);
      s.once('error', fail);
    } else start();
    let trailers: IncomingHttpHeaders | undefined;
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('response', (head, flags) => {
      if (settled) return;
      settled = true;
      let headBytes = 9;
      const out: IncomingHttpHeaders = {};
      for (const name in head) {
        const v = head[name];
        headBytes += name.length + String(v).length + 2;
        if (name.charCodeAt(0) !== 58) out[name] = v as string;
      }
      const principal = target.tls ? peerPrincipalOf(s.socket as unknown as TLSSocket) : '';
      handlers.onResponse({
        status: Number(head[':status'] ?? 0),
        headers: out,
        body: stream,
        trailers: () => trailers,
        endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0,
        peerPrincipal: principal,
        headBytes,
      });
    });
    stream.on('error', fail);
    stream.on('close', () => {
      if (!settled) fail(new Error(`upstream stream closed (code ${stream.rstCode ?? 0})`));
    });
    return {
      abort() {
        settled = true;
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }

  return {
    request(target, method, path, authority, headers, body, handlers, onBodyChunk) {
      if (body === null && !target.h2 && !target.tls && headers.expect === undefined) return bodyless(target, method, path, authority, headers, handlers);
      return target.h2
        ? h2(target, method, path, authority, headers, body, handlers, onBodyChunk)
        : h1(target, method, path, authority, headers, body, handlers, onBodyChunk);
    },
    close() {
      plainAgent.destroy();
      void undici.destroy().catch(() => {});
      tlsAgent?.destroy();
      for (const s of sessions.values()) s.destroy();
      sessions.clear();
    },
  };
}

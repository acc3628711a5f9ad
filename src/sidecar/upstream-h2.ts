/**
 * The HTTP/2 upstream pool (h2c, gRPC, h2 over mTLS): one cached session per endpoint, as Envoy keeps one
 * connection per upstream host in an HTTP/2 cluster's pool, queued requests while it connects, and the
 * upstream idle timeout (Envoy's `common_http_protocol_options.idle_timeout`) once no stream is open.
 */
import http2 from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { ALPN_HTTP2_CLIENT, peerPrincipalOf } from './tls.js';
import type { UpstreamCall, UpstreamHandlers, UpstreamPool, UpstreamPoolOptions, UpstreamTarget } from './upstream.js';
import { ReadableResponse } from './upstream-response.js';

/**
 * One pooled HTTP/2 session: its streams in flight, the requests waiting for it to connect and its
 * idle timer. Waiters sit in a set the session's two own listeners walk, so a request never adds a
 * listener to the shared session (one per queued request stayed there for ever: 201 after 200).
 */
interface PooledSession {
  readonly session: ClientHttp2Session;
  /** Requests queued while connecting: `start` on connect, `fail` on a connect error. */
  readonly waiting: Set<H2Waiter>;
  active: number;
  idle: NodeJS.Timeout | undefined;
}

interface H2Waiter {
  start(): void;
  fail(err: Error): void;
}

/** Pseudo and connection-specific headers that must not cross an HTTP/2 hop (RFC 9113 §8.2.2). */
const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/** The HTTP/2 side of the pool: one session per endpoint (and expected identity), idle-closed. */
export interface H2Upstream {
  readonly request: UpstreamPool['request'];
  /** Destroy every session. */
  close(): void;
  /** Sessions in the pool. */
  readonly size: number;
}

/** Create the HTTP/2 session pool; a session with no stream open for `idleTimeoutMs` is closed. */
export function createH2Upstream(options: UpstreamPoolOptions, idleTimeoutMs: number): H2Upstream {
  const sessions = new Map<string, PooledSession>();

  function session(target: UpstreamTarget): PooledSession {
    const key = `${target.tls ? `s:${target.identity ?? ''}` : 'p'}:${target.host}:${target.port}`;
    const existing = sessions.get(key);
    if (existing && !existing.session.closed && !existing.session.destroyed) return existing;
    const url = `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    const tlsOpts = target.tls && options.tls ? options.tls.clientOptions(ALPN_HTTP2_CLIENT, target.identity) : undefined;
    const s = http2.connect(url, tlsOpts ? { createConnection: () => tls.connect({ ...tlsOpts, host: target.host, port: target.port }) } : {});
    const pooled: PooledSession = { session: s, waiting: new Set(), active: 0, idle: undefined };
    sessions.set(key, pooled);
    const drop = (): void => {
      if (sessions.get(key) === pooled) sessions.delete(key);
      if (pooled.idle !== undefined) clearTimeout(pooled.idle);
      pooled.idle = undefined;
    };
    s.once('connect', () => {
      const waiting = [...pooled.waiting];
      pooled.waiting.clear();
      for (const w of waiting) w.start();
    });
    s.on('error', (err) => {
      drop();
      const waiting = [...pooled.waiting];
      pooled.waiting.clear();
      for (const w of waiting) w.fail(err);
    });
    s.on('close', drop);
    s.on('goaway', drop);
    // An idle pool connection must not keep the process alive.
    s.unref();
    return pooled;
  }

  /** A stream of `p` ended: with none left, the session is closed after the idle timeout. */
  function streamDone(p: PooledSession): void {
    p.active--;
    if (p.active > 0 || p.session.destroyed) return;
    if (p.idle !== undefined) clearTimeout(p.idle);
    p.idle = setTimeout(() => {
      p.idle = undefined;
      // Out of the pool first: a request arriving now opens a fresh session; close() lets nothing in flight die.
      for (const [k, v] of sessions) if (v === p) sessions.delete(k);
      p.session.close();
    }, idleTimeoutMs);
    p.idle.unref();
  }

  function h2(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, body: Readable | null, handlers: UpstreamHandlers, onBodyChunk?: (chunk: Buffer) => void): UpstreamCall {
    let settled = false;
    const p = session(target);
    const s = p.session;
    let connected = !s.connecting;
    const h2headers: OutgoingHttpHeaders = { ':method': method, ':path': path, ':authority': authority, ':scheme': target.tls ? 'https' : 'http' };
    for (const name in headers) if (!H2_FORBIDDEN.has(name) && name.charCodeAt(0) !== 58) h2headers[name] = headers[name];
    let stream: http2.ClientHttp2Stream;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      handlers.onUpstreamError(connected ? 'reset' : 'connect', err);
    };
    try {
      stream = s.request(h2headers, { endStream: body === null });
    } catch (err) {
      queueMicrotask(() => fail(err as Error));
      return { abort() {} };
    }
    p.active++;
    if (p.idle !== undefined) {
      clearTimeout(p.idle);
      p.idle = undefined;
    }
    const start = (): void => {
      connected = true;
      if (body) {
        if (onBodyChunk) body.on('data', onBodyChunk);
        body.pipe(stream);
      }
    };
    const waiter: H2Waiter = { start, fail };
    if (s.connecting) p.waiting.add(waiter);
    else start();
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
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      handlers.onUpstreamResponse(new ReadableResponse(Number(head[':status'] ?? 0), out, stream, () => trailers, endStream, principal, headBytes));
    });
    stream.on('error', fail);
    stream.on('close', () => {
      p.waiting.delete(waiter);
      streamDone(p);
      if (!settled) fail(new Error(`upstream stream closed (code ${stream.rstCode ?? 0})`));
    });
    return {
      abort() {
        settled = true;
        p.waiting.delete(waiter);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }

  return {
    request: h2,
    close() {
      for (const p of sessions.values()) {
        if (p.idle !== undefined) clearTimeout(p.idle);
        p.session.destroy();
      }
      sessions.clear();
    },
    get size() {
      return sessions.size;
    },
  };
}

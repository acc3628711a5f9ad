/**
 * An HTTP listener in plain text or mutual TLS. Under TLS the codec follows ALPN (`h2`/`istio-h2` or
 * `http/1.1`/`istio-http/1.1`); in plain text it follows the port's declared protocol, as Istio picks
 * the codec from the port name (`http-` → HTTP/1.1, `http2-`/`grpc-` → HTTP/2 prior knowledge).
 * Plain-text sniffing of the h2 preface is not done: node's HTTP/2 session reads the socket handle
 * directly and would lose the sniffed bytes. A TLS connection that negotiated `istio-peer-exchange`
 * is handed to the TCP path instead.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { closeOnTlsClientError } from './listener-limits.js';
import { attachConnectionInfo, attachedConnectionInfo } from '../record/connection.js';
import { PLAIN_TEXT_PRINCIPALS } from '../record/principal.js';
import type { ConnectionPrincipals } from '../record/principal.js';
import type { ConnectionInfo } from '../record/connection.js';
import type { ListenerLimits, ListenerRole, ProxyRefusals } from './listener-limits.js';
import type { HttpHandler, ProxyHandler } from './http-proxy.js';
import { ResponseFlag } from '../stats/types.js';
import { createPermissiveServer } from './permissive.js';
import type { MtlsMode } from './permissive.js';
import { peerPrincipalOf } from './tls.js';
import type { SidecarTls } from './tls.js';

/** Options of {@link listen}. */
export interface ListenerOptions {
  readonly host: string;
  readonly port: number;
  /** Name for errors and logs (`inbound`, `outbound`, ...). */
  readonly name: string;
  readonly logger: Logger;
  /** Terminate mutual TLS on this listener. */
  readonly tls?: SidecarTls;
  /** With `tls`: `STRICT` (default) refuses plain text, `PERMISSIVE` accepts both (src/sidecar/permissive.ts). */
  readonly mtlsMode?: MtlsMode;
  /** Role for the refusal counter's `listener` label. */
  readonly role: ListenerRole;
  readonly limits: ListenerLimits;
  readonly refusals: ProxyRefusals;
}

/** A bound listener. */
export interface BoundListener {
  readonly port: number;
  readonly server: net.Server;
  close(): Promise<void>;
}

/** Options of {@link listenHttp}. */
export interface HttpListenerOptions extends ListenerOptions {
  /** The request handler; with `protocolError` (the proxy's), requests the codec refuses are recorded too. */
  readonly handler: HttpHandler & Partial<Pick<ProxyHandler, 'protocolError' | 'upgrade' | 'connect'>>;
  /** Plain-text codec: HTTP/2 prior knowledge (h2c) instead of HTTP/1.1. */
  readonly h2: boolean;
  /** Receives TLS connections that negotiated `istio-peer-exchange` (TCP MX over mTLS). */
  readonly onPeerExchange?: (socket: TLSSocket) => void;
}

/** Bind a net/tls server, mapping bind errors to MESHTEL_ERR_LISTEN. */
export async function bind(server: net.Server, options: ListenerOptions): Promise<BoundListener> {
  const sockets = new Set<Socket>();
  // Over the limit node closes the accepted socket at once and emits 'drop' (Envoy's listener
  // connection limit closes it the same way, counted in downstream_cx_overflow).
  server.maxConnections = options.limits.maxConnections;
  server.on('drop', () => options.refusals.count(options.role, 'max_connections'));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new ConfigError('MESHTEL_ERR_LISTEN', `${options.name} listener cannot bind ${options.host}:${options.port}: ${err.message}`, { listener: options.name, host: options.host, port: options.port }, { cause: err }));
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => options.logger.error('listener error', { listener: options.name, err }));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Marks an HTTP/2 stream refused in the 'stream' listener: the request handler never sees it. */
const REFUSED = Symbol('meshtel.refused');
type RefusableStream = http2.ServerHttp2Stream & { [REFUSED]?: boolean };

/**
 * The header-list size node's HTTP/2 session itself enforces (SETTINGS_MAX_HEADER_LIST_SIZE, which it also
 * advertises): twice ours, so what lies between is refused and counted by the listener; above it node
 * resets the stream on its own, uncounted (documented in docs/security.md). Twice bounds what one stream
 * may buffer before our check runs.
 */
export function nodeHeaderListLimit(maxRequestHeadersBytes: number): number {
  return Math.min(2 * maxRequestHeadersBytes, 0xffffffff);
}

/**
 * The header-pair count node's HTTP/2 session itself enforces (`maxHeaderListPairs`, pseudo-headers included; node's
 * floor is 4): twice ours, for the reason {@link nodeHeaderListLimit} gives.
 */
export function nodeHeaderPairLimit(maxRequestHeadersCount: number): number {
  return Math.max(4, 2 * maxRequestHeadersCount);
}

/**
 * A request's header list as Envoy sizes it (`HeaderMap::byteSize()`: names plus values, pseudo-headers
 * included), from node's flat `[name, value, ...]` list.
 */
export function headerListBytes(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i++) n += rawHeaders[i]!.length;
  return n;
}

/**
 * Least bytes a client-opened HTTP/2 stream costs on the wire: a HEADERS frame's 9-byte header (its block may be
 * a single byte, or none). Bounds the count of ids a client skipped, so a jump in stream ids cannot inflate it.
 */
const MIN_STREAM_BYTES = 9;

/** Per HTTP/2 session: the last client stream id the listener saw, the bytes read by then, and whether it ended. */
interface StreamIds {
  last: number;
  bytes: number;
  ended: boolean;
}
const STREAM_IDS = Symbol('meshtel.streamIds');
type WatchedSession = http2.ServerHttp2Session & { [STREAM_IDS]?: StreamIds };

/**
 * Client stream ids that opened on `session` but never reached the listener, below `next` (the next id seen or,
 * at the session's end, the last one nghttp2 processed plus 2): node's codec reset them in C++ with no event
 * (ENHANCE_YOUR_CALM over its own header limits, PROTOCOL_ERROR for fields nghttp2 rejects), so the gap in the
 * ids is what shows them. At most one per MIN_STREAM_BYTES read since the last count.
 */
function skippedStreams(session: http2.Http2Session, ids: StreamIds, next: number): number {
  const skipped = (next - ids.last - 2) / 2;
  const bytes = session.socket?.bytesRead ?? ids.bytes;
  const n = skipped >= 1 ? Math.min(Math.floor(skipped), Math.floor((bytes - ids.bytes) / MIN_STREAM_BYTES)) : 0;
  ids.bytes = bytes;
  return n;
}

/** Where a connection keeps the response it is serving (set per request by the HTTP/1.1 server). */
const CURRENT_RESPONSE = Symbol('meshtel.currentResponse');
type TrackedSocket = Socket & { [CURRENT_RESPONSE]?: http.ServerResponse };

/**
 * Parser errors that mean the client left: a FIN in the middle of a message (node's `HPE_INVALID_EOF_STATE`)
 * or a reset. Not protocol errors: nothing is answered and nothing recorded as a request.
 */
const CLIENT_GONE = new Set(['HPE_INVALID_EOF_STATE', 'ECONNRESET', 'EPIPE']);

/**
 * node's HTTP/1.1 parser as its server keeps it on the socket (`socket.parser`, internal): `duration()` is the time
 * since the current message's first byte, 0 between messages; `headersCompleted()` says whether that message's
 * head is complete. The same state node's header timeout is judged by (node 18+).
 */
interface NodeHttpParser {
  duration?(): number;
  headersCompleted?(): boolean;
}

/**
 * Whether a client that left (`code`: a FIN mid-message or a reset) left a request head unfinished. node's parser
 * knows: it began a message whose head is not complete, even when those bytes came in the same read as an earlier
 * request (the socket's byte count cannot tell them apart). Without the parser's state: a FIN mid-message, or
 * bytes read since the connection's last finished request.
 */
export function leftPartialHead(socket: Socket, code: string, conn: ConnectionInfo | undefined): boolean {
  const parser = (socket as Socket & { parser?: NodeHttpParser | null }).parser;
  if (typeof parser?.duration === 'function' && typeof parser.headersCompleted === 'function') {
    return parser.duration() > 0 && !parser.headersCompleted();
  }
  return code === 'HPE_INVALID_EOF_STATE' || socket.bytesRead > (conn?.read ?? 0);
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** Start an HTTP/1.1 + h2c (or mTLS) listener with the given handler. */
export async function listenHttp(options: HttpListenerOptions): Promise<BoundListener> {
  const { limits, refusals, role } = options;
  const maxRawHeaders = 2 * limits.maxRequestHeadersCount;
  const h1 = http.createServer(
    {
      keepAliveTimeout: limits.idleTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: 0,
      maxHeaderSize: limits.maxRequestHeadersBytes,
      // node checks the header deadline on this interval: the close comes at most this late.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.rawHeaders.length > maxRawHeaders) {
        tooManyHeaders(req.socket, res);
        return;
      }
      // The response in progress on this connection (one property write per request): a client that
      // leaves mid-request is the proxy's to record (DC), not a codec error (see 'clientError').
      (req.socket as TrackedSocket)[CURRENT_RESPONSE] = res;
      (options.handler as http.RequestListener)(req, res);
    },
  );
  // Node keeps at least this many header lines of a request (more arrive in chunks of 32), so a request over
  // the limit always shows more than `maxRawHeaders` entries in rawHeaders, and node never keeps its 2000.
  h1.maxHeadersCount = limits.maxRequestHeadersCount + 1;
  // Envoy's HTTP/1.1 codec: more header lines than max_headers_count is a codec error answered 431
  // (`http1.too_many_headers`) and recorded as its local reply (431, DPE), like a head over the size limit.
  const tooManyHeaders = (socket: Socket, res?: http.ServerResponse): void => {
    refusals.count(role, 'too_many_headers');
    const record = (): void => options.handler.protocolError?.(socket, 431, ResponseFlag.DPE);
    if (res === undefined) {
      socket.end(`HTTP/1.1 431 ${STATUS_TEXT[431]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`, record);
      return;
    }
    res.shouldKeepAlive = false;
    res.writeHead(431, { connection: 'close', 'content-length': '0' });
    res.end(record);
  };
  // Idle keep-alive: node arms the socket's timeout with keepAliveTimeout once a response is done (and clears it when
  // the next request begins), and calls this listener instead of destroying the socket itself.
  h1.on('timeout', (socket: Socket) => {
    refusals.count(role, 'idle_timeout');
    socket.destroy();
  });
  // Sockets reach this server through emit('connection'), never listen(): node starts its
  // header-timeout tracking on 'listening' only, so it is started here (without it no header
  // timeout ever runs and slowloris connections stay open for ever).
  h1.emit('listening');
  const h2Handler = options.handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  const h2 = http2.createServer(
    // Node resets a stream over its own header-list limit before any event (ENHANCE_YOUR_CALM, nothing to
    // count), so node's limit sits above ours and the 'stream' listener below refuses (and counts) the rest.
    { settings: { maxHeaderListSize: nodeHeaderListLimit(limits.maxRequestHeadersBytes) }, maxHeaderListPairs: nodeHeaderPairLimit(limits.maxRequestHeadersCount) },
    (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      if ((req.stream as RefusableStream)[REFUSED] !== true) h2Handler(req, res);
    },
  );
  // Before the compatibility layer's own listener, which builds the request the handler gets.
  h2.prependListener('stream', (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    const session = stream.session as WatchedSession | undefined;
    const ids = session?.[STREAM_IDS];
    const id = stream.id;
    if (session !== undefined && ids !== undefined && id !== undefined) {
      const skipped = skippedStreams(session, ids, id);
      if (skipped > 0) refusals.count(role, 'h2_codec_refused', skipped);
      ids.last = id;
    }
    const tooMany = rawHeaders.length > maxRawHeaders;
    if (!tooMany && headerListBytes(rawHeaders) <= limits.maxRequestHeadersBytes) return;
    // Envoy's HTTP/2 codec: the header map over max_request_headers_kb or max_headers_count (pseudo-headers
    // are entries of it) fails the header callback, so nghttp2 resets the stream with INTERNAL_ERROR
    // (details `http2.too_many_headers`, stat `http2.header_overflow`); the stream never reaches the HTTP
    // filters, so istio_requests_total has no record of it (envoy source/common/http/http2/codec_impl.cc saveHeader).
    (stream as RefusableStream)[REFUSED] = true;
    refusals.count(role, tooMany ? 'too_many_headers' : 'headers_too_large');
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
  h1.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Never thrown: a request head over the limit is 431 (as Envoy answers), one not complete in time
    // 408 (node's reply), anything else malformed 400; each closes the connection and is recorded as
    // Envoy records a codec error's local reply: the code, with DPE for a protocol error (431, 400).
    // The client closed or reset the connection: nothing to answer. With a request in progress the proxy
    // records it (DC); before its head was complete there is no request (Envoy's codec never hands the
    // stream to the HTTP filters, so istio_requests_total has nothing; Envoy counts it in its own
    // downstream_rq_rx_reset): counted as reason="incomplete_head", never recorded as a 400.
    if (CLIENT_GONE.has(err.code ?? '')) {
      const current = (socket as TrackedSocket)[CURRENT_RESPONSE];
      const inRequest = current !== undefined && !current.writableFinished;
      const conn = attachedConnectionInfo(socket);
      if (!inRequest && leftPartialHead(socket, err.code ?? '', conn)) refusals.count(role, 'incomplete_head');
      socket.destroy();
      return;
    }
    // A second parser error on a connection already answered (bytes that followed): close, count once.
    if (!socket.writable || socket.writableEnded) {
      socket.destroy();
      return;
    }
    let code = 400;
    let flags = ResponseFlag.DPE;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      refusals.count(role, 'headers_too_large');
      code = 431;
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      refusals.count(role, 'headers_timeout');
      // Envoy's request_headers_timeout local reply carries no response flag.
      code = 408;
      flags = 0;
    } else {
      refusals.count(role, 'protocol_error');
    }
    socket.end(`HTTP/1.1 ${code} ${STATUS_TEXT[code]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    options.handler.protocolError?.(socket, code, flags);
  });
  // Upgrade and CONNECT requests leave node's parser: the proxy answers them on the socket. An upgraded
  // (WebSocket) connection keeps the listener's idle timeout, as Envoy's stream idle timeout bounds it.
  const { upgrade, connect } = options.handler;
  if (upgrade) {
    h1.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      if (req.rawHeaders.length > maxRawHeaders) {
        tooManyHeaders(socket);
        return;
      }
      socket.setTimeout(limits.idleTimeoutMs, () => socket.destroy());
      upgrade(req, socket, head);
    });
  }
  if (connect) {
    h1.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      if (req.rawHeaders.length > maxRawHeaders) tooManyHeaders(socket);
      else connect(req, socket, head);
    });
  }
  h2.on('sessionError', () => {});
  h2.on('session', (session: WatchedSession) => {
    // Streams node's codec refused after the last one the listener saw show only in nghttp2's last processed id,
    // readable until the session is destroyed: every way a session ends (socket closed, GOAWAY, error, our own
    // close or destroy) goes through destroy(), so the count is taken there.
    const ids: StreamIds = { last: -1, bytes: 0, ended: false };
    session[STREAM_IDS] = ids;
    const destroy = session.destroy;
    session.destroy = function (this: http2.ServerHttp2Session, ...args: Parameters<typeof destroy>) {
      if (!ids.ended) {
        ids.ended = true;
        const lastProcessed = (this.destroyed ? undefined : this.state.lastProcStreamID) ?? 0;
        const skipped = skippedStreams(this, ids, lastProcessed + 2);
        if (skipped > 0) refusals.count(role, 'h2_codec_refused', skipped);
      }
      return destroy.apply(this, args);
    };
    // Idle: no frame for idleTimeoutMs closes the session (node resets the timer on every frame).
    session.setTimeout(limits.idleTimeoutMs, () => {
      if (session.closed) return;
      refusals.count(role, 'idle_timeout');
      session.close();
    });
    // HTTP/2 has no node header timeout: a connection must open its first stream in time.
    const timer = setTimeout(() => {
      refusals.count(role, 'headers_timeout');
      session.destroy();
    }, limits.headersTimeoutMs);
    timer.unref();
    session.once('stream', () => clearTimeout(timer));
    session.once('close', () => clearTimeout(timer));
  });

  const dispatch = (socket: Socket, principals: ConnectionPrincipals, alpn: string | false | undefined): void => {
    attachConnectionInfo(socket, principals);
    socket.on('error', () => {});
    let useH2 = options.h2;
    if (alpn === 'h2' || alpn === 'istio-h2') useH2 = true;
    else if (alpn === 'http/1.1' || alpn === 'istio-http/1.1') useH2 = false;
    (useH2 ? h2 : h1).emit('connection', socket);
  };

  let server: net.Server;
  if (options.tls) {
    const t = options.tls;
    // TCP_NODELAY on every accepted connection, as Envoy sets it: the http server's own noDelay
    // default does not apply to sockets it is handed through 'connection'. The handshake has the
    // header deadline too (a client that never completes it holds a connection otherwise).
    const tlsServer = tls.createServer({ ...t.serverOptions(), noDelay: true, handshakeTimeout: limits.headersTimeoutMs }, (socket) => {
      if (socket.alpnProtocol === 'istio-peer-exchange' && options.onPeerExchange) {
        options.onPeerExchange(socket);
        return;
      }
      dispatch(socket, { peerPrincipal: peerPrincipalOf(socket), localPrincipal: t.localPrincipal }, socket.alpnProtocol ?? undefined);
    });
    closeOnTlsClientError(tlsServer, refusals, role);
    // PERMISSIVE: plain-text clients (no principal, connection_security_policy="none") share the port.
    server =
      options.mtlsMode === 'PERMISSIVE'
        ? createPermissiveServer({
            tlsServer,
            onPlain: (socket) => dispatch(socket, PLAIN_TEXT_PRINCIPALS, undefined),
            firstByteTimeoutMs: limits.headersTimeoutMs,
            onTimeout: () => refusals.count(role, 'headers_timeout'),
            serverOptions: { noDelay: true },
          })
        : tlsServer;
  } else {
    server = net.createServer({ noDelay: true }, (socket) => dispatch(socket, PLAIN_TEXT_PRINCIPALS, undefined));
  }
  const bound = await bind(server, options);
  return {
    ...bound,
    close: async () => {
      h1.closeAllConnections();
      // Stops node's connection-checking interval started above.
      h1.close(() => {});
      await bound.close();
    },
  };
}

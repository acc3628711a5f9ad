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
import { CONNECTION_INFO } from './http-proxy.js';
import type { ConnectionInfo, HttpHandler } from './http-proxy.js';
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
}

/** A bound listener. */
export interface BoundListener {
  readonly port: number;
  readonly server: net.Server;
  close(): Promise<void>;
}

/** Options of {@link listenHttp}. */
export interface HttpListenerOptions extends ListenerOptions {
  readonly handler: HttpHandler;
  /** Plain-text codec: HTTP/2 prior knowledge (h2c) instead of HTTP/1.1. */
  readonly h2: boolean;
  /** Receives TLS connections that negotiated `istio-peer-exchange` (TCP MX over mTLS). */
  readonly onPeerExchange?: (socket: TLSSocket) => void;
}

/** Bind a net/tls server, mapping bind errors to MESHTEL_ERR_LISTEN. */
export async function bind(server: net.Server, options: ListenerOptions): Promise<BoundListener> {
  const sockets = new Set<Socket>();
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

/** Start an HTTP/1.1 + h2c (or mTLS) listener with the given handler. */
export async function listenHttp(options: HttpListenerOptions): Promise<BoundListener> {
  const h1 = http.createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, options.handler as http.RequestListener);
  const h2 = http2.createServer({}, options.handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  h1.on('clientError', (_err, socket) => {
    // A malformed request is answered 400 and closed, never thrown (Envoy DPE).
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  h2.on('sessionError', () => {});

  const dispatch = (socket: Socket, info: ConnectionInfo, alpn: string | false | undefined): void => {
    (socket as Socket & { [CONNECTION_INFO]?: ConnectionInfo })[CONNECTION_INFO] = info;
    socket.on('error', () => {});
    if (alpn === 'h2' || alpn === 'istio-h2') {
      h2.emit('connection', socket);
      return;
    }
    if (alpn === 'http/1.1' || alpn === 'istio-http/1.1') {
      h1.emit('connection', socket);
      return;
    }
    (options.h2 ? h2 : h1).emit('connection', socket);
  };

  let server: net.Server;
  if (options.tls) {
    const t = options.tls;
    // TCP_NODELAY on every accepted connection, as Envoy sets it: the http server's own noDelay
    // default does not apply to sockets it is handed through 'connection'.
    server = tls.createServer({ ...t.serverOptions(), noDelay: true }, (socket) => {
      if (socket.alpnProtocol === 'istio-peer-exchange' && options.onPeerExchange) {
        options.onPeerExchange(socket);
        return;
      }
      dispatch(socket, { peerPrincipal: peerPrincipalOf(socket), localPrincipal: t.localPrincipal, read: 0, written: 0 }, socket.alpnProtocol ?? undefined);
    });
    server.on('tlsClientError', () => {});
  } else {
    server = net.createServer({ noDelay: true }, (socket) => dispatch(socket, { peerPrincipal: '', localPrincipal: '', read: 0, written: 0 }, undefined));
  }
  const bound = await bind(server, options);
  return {
    ...bound,
    close: async () => {
      h1.closeAllConnections();
      await bound.close();
    },
  };
}

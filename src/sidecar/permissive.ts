/**
 * PeerAuthentication `PERMISSIVE` on one port: mutual TLS and plain text side by side, told apart by the first byte
 * a client sends, as Envoy's `tls_inspector` listener filter picks the filter chain in Istio's inbound listener. A
 * TLS record starts with content type 22 (handshake, RFC 8446 §5.1); anything else is plain text. Node has no
 * MSG_PEEK: the byte is read and `unshift`ed back, which node's TLS wrap, HTTP/1.1 parser and HTTP/2 session all
 * read before their socket's handle.
 *
 * As with Envoy, a client that sends nothing gets nothing: server-first protocols (MySQL, SMTP) need `STRICT` or
 * plain text on their port. The wait is bounded by the listener's header timeout and counted as one.
 */
import type { Socket } from 'node:net';
import net from 'node:net';

/** TLS record content type `handshake`: the first byte of every ClientHello. */
const TLS_HANDSHAKE = 0x16;

/** Istio's PeerAuthentication modes a listener with certificates supports (`DISABLE` is a sidecar without certificates). */
export type MtlsMode = 'STRICT' | 'PERMISSIVE';

/** Options of {@link createPermissiveServer}. */
export interface PermissiveServerOptions {
  /** Receives the connections that start a TLS handshake (a tls.Server that is not listening itself). */
  readonly tlsServer: net.Server;
  /** Receives the plain-text connections. */
  readonly onPlain: (socket: Socket) => void;
  /** How long a connection may stay silent before its first byte; then it is closed and `onTimeout` called. */
  readonly firstByteTimeoutMs: number;
  readonly onTimeout: () => void;
  /** net.Server options (noDelay, allowHalfOpen) of the listening server. */
  readonly serverOptions?: net.ServerOpts;
}

/** A listening-ready net.Server that hands each connection to TLS or plain text by its first byte. */
export function createPermissiveServer(options: PermissiveServerOptions): net.Server {
  return net.createServer(options.serverOptions ?? {}, (socket) => {
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.removeListener('readable', onReadable);
      options.onTimeout();
      socket.destroy();
    }, options.firstByteTimeoutMs);
    timer.unref();
    const onReadable = (): void => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) return; // woken without data (end of stream is 'close', handled by node)
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.unshift(first);
      if (first[0] === TLS_HANDSHAKE) options.tlsServer.emit('connection', socket);
      else options.onPlain(socket);
    };
    socket.on('readable', onReadable);
    socket.once('close', () => clearTimeout(timer));
  });
}

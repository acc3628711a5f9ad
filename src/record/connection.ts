/**
 * What a request record needs from its connection, computed once per connection: the two principals
 * (certificates are read once, not per request) and the byte marks of keep-alive reuse. The sidecar's
 * listener stores it at accept time; the fastify plugin creates it on a connection's first request.
 */
import type { ByteMarks } from './bytes.js';
import { principalsOf } from './principal.js';
import type { ConnectionPrincipals } from './principal.js';

/** Symbol under which a connection's record is kept on the raw socket (read and written only here). */
const CONNECTION_INFO = Symbol('meshtel.connection');

/** Per-connection facts: principals fixed at accept time, byte marks moved by each finished request. */
export interface ConnectionInfo extends ConnectionPrincipals, ByteMarks {}

type TaggedSocket = object & { [CONNECTION_INFO]?: ConnectionInfo };

/**
 * Start the record of a connection whose principals are known at accept time (the sidecar's listener: the peer's
 * certificate read once after the handshake, its own principal from its certificate file).
 */
export function attachConnectionInfo(socket: object, principals: ConnectionPrincipals): ConnectionInfo {
  const info: ConnectionInfo = { peerPrincipal: principals.peerPrincipal, localPrincipal: principals.localPrincipal, read: 0, written: 0 };
  (socket as TaggedSocket)[CONNECTION_INFO] = info;
  return info;
}

/** The record a listener attached to this connection, if any (the sidecar's code-refused and stream paths). */
export function attachedConnectionInfo(socket: object | null | undefined): ConnectionInfo | undefined {
  return socket == null ? undefined : (socket as TaggedSocket)[CONNECTION_INFO];
}

/** The connection's record, created (certificates read) on first use. */
export function connectionInfoOf(socket: object): ConnectionInfo {
  return (socket as TaggedSocket)[CONNECTION_INFO] ?? attachConnectionInfo(socket, principalsOf(socket));
}

/**
 * Whether the peer ended or reset the connection: a FIN arrived (`readableEnded`) or the socket failed with
 * ECONNRESET / EPIPE. Read when a response closes unfinished: false means our side ended it (the app destroyed
 * its response or socket), which an inbound sidecar in front of the app sees as an upstream reset (UC), not as
 * the downstream leaving (DC). No listener is needed: the socket keeps both facts.
 */
export function peerClosedConnection(socket: { readonly readableEnded?: boolean; readonly errored?: unknown }): boolean {
  if (socket.readableEnded === true) return true;
  const code = (socket.errored as { code?: unknown } | null | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/**
 * What a request record needs from its connection, computed once per connection: the two principals
 * (certificates are read once, not per request) and the byte marks of keep-alive reuse. The sidecar's
 * listener stores it at accept time; the fastify plugin creates it on a connection's first request.
 */
import type { ByteMarks } from './bytes.js';
import { principalsOf } from './principal.js';
import type { ConnectionPrincipals } from './principal.js';

/** Symbol under which a connection's record is kept on the raw socket. */
export const CONNECTION_INFO = Symbol('meshtel.connection');

/** Per-connection facts: principals fixed at accept time, byte marks moved by each finished request. */
export interface ConnectionInfo extends ConnectionPrincipals, ByteMarks {}

type TaggedSocket = object & { [CONNECTION_INFO]?: ConnectionInfo };

/** The connection's record, created (certificates read) on first use. */
export function connectionInfoOf(socket: object): ConnectionInfo {
  const s = socket as TaggedSocket;
  let info = s[CONNECTION_INFO];
  if (info === undefined) {
    info = { ...principalsOf(socket), read: 0, written: 0 };
    s[CONNECTION_INFO] = info;
  }
  return info;
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

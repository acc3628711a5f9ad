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

/**
 * Per-request wire bytes on a keep-alive connection: Envoy's downstream byte meters count what each stream
 * read and wrote on the connection; with Node's per-socket totals that is the delta since the previous
 * request on the same socket.
 */

/** Bytes already attributed to earlier requests on one connection. */
export interface ByteMarks {
  read: number;
  written: number;
}

/** The part of a socket the byte deltas need (fastify's inject() socket has no counters: 0 bytes). */
export interface ByteCountingSocket {
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
}

/** Bytes read and written since the marks, and the marks moved forward (each byte counted once). */
export function takeByteDeltas(socket: ByteCountingSocket, marks: ByteMarks): { readonly requestBytes: number; readonly responseBytes: number } {
  const read = Number.isFinite(socket.bytesRead) ? (socket.bytesRead as number) : 0;
  const written = Number.isFinite(socket.bytesWritten) ? (socket.bytesWritten as number) : 0;
  const requestBytes = Math.max(0, read - marks.read);
  const responseBytes = Math.max(0, written - marks.written);
  marks.read = read;
  marks.written = written;
  return { requestBytes, responseBytes };
}

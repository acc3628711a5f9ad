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

/**
 * HTTP/1.1 header bytes of a header object as written on the wire: one `name: value\r\n` line per value (an array
 * repeats the line). Used where no socket counter sees the bytes (the undici interceptor sits above the socket).
 */
export function h1HeaderLineBytes(headers: Readonly<Record<string, unknown>>): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) n += Buffer.byteLength(k) + 2 + Buffer.byteLength(String(one)) + 2;
  }
  return n;
}

/**
 * HTTP/2 has no per-stream socket counters, so a stream's header bytes are estimated: the uncompressed (HPACK-free)
 * size of the block, `name` + `value` + 2 per field (a repeated field joined with `, `), plus the 9-byte frame
 * header. Envoy counts the HPACK-encoded bytes on the wire, usually fewer once the dynamic table is warm; the
 * estimate does not depend on connection history, so one request always counts the same.
 */
export function h2HeaderBlockBytes(headers: Readonly<Record<string, unknown>>): number {
  let n = 9;
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    n += name.length + (Array.isArray(v) ? v.join(', ').length : String(v).length) + 2;
  }
  return n;
}

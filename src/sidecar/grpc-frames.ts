/**
 * Counts gRPC messages in a byte stream by walking the 5-byte length prefix of each message
 * (gRPC over HTTP/2 spec: 1 byte compressed flag, 4 bytes big-endian length, then the message).
 * This is what Envoy's `envoy.filters.http.grpc_stats` filter feeds `istio_request_messages_total`
 * and `istio_response_messages_total` with (envoy `source/common/grpc/codec.cc` `Decoder`).
 *
 * Hand-written because it runs on every chunk of every gRPC stream and only needs a counter:
 * no message is buffered, a chunk is skipped over in O(frames) without copying.
 */

/** An incremental message counter for one direction of one stream. */
export interface GrpcMessageCounter {
  /** Feed the next body chunk; returns how many messages completed in it. */
  push(chunk: Uint8Array): number;
  /** Messages completed so far. */
  readonly total: number;
}

/** Create a counter. A message counts when its last byte has arrived (a zero-length message counts at once). */
export function createGrpcMessageCounter(): GrpcMessageCounter {
  let total = 0;
  // Bytes of the 5-byte prefix still to read (5 at a message boundary), then body bytes left.
  let headerLeft = 5;
  let length = 0;
  let bodyLeft = 0;
  return {
    get total() {
      return total;
    },
    push(chunk) {
      let done = 0;
      let i = 0;
      const n = chunk.length;
      while (i < n) {
        if (headerLeft > 0) {
          // Bytes 1..4 of the prefix are the length; byte 0 is the compressed flag.
          if (headerLeft <= 4) length = length * 256 + (chunk[i] ?? 0);
          headerLeft--;
          i++;
          if (headerLeft === 0) {
            bodyLeft = length;
            if (bodyLeft === 0) {
              done++;
              headerLeft = 5;
              length = 0;
            }
          }
        } else {
          const take = Math.min(bodyLeft, n - i);
          bodyLeft -= take;
          i += take;
          if (bodyLeft === 0) {
            done++;
            headerLeft = 5;
            length = 0;
          }
        }
      }
      total += done;
      return done;
    },
  };
}

/**
 * The demo's one gRPC service (reviews → ratings), defined without a .proto: grpc-js takes any
 * serializer, and JSON keeps the demo dependency-free. The wire is real gRPC over h2c (length-prefixed
 * messages, `grpc-status` trailers), which is what the sidecars parse and count.
 */
import * as grpc from '@grpc/grpc-js';

/** Full method path, as a gRPC client puts it in `:path`. */
export const GET_RATINGS_PATH = '/bookinfo.ratings.v1.Ratings/GetRatings';

/** Request of GetRatings. */
export interface RatingsRequest {
  readonly productId: number;
}
/** Response of GetRatings: stars per reviewer. */
export interface RatingsReply {
  readonly productId: number;
  readonly ratings: Readonly<Record<string, number>>;
}

const serialize = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const deserialize = <T>(b: Buffer): T => JSON.parse(b.toString('utf8')) as T;

/** grpc-js service definition for the server side. */
export const RATINGS_SERVICE: grpc.ServiceDefinition = {
  GetRatings: {
    path: GET_RATINGS_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: serialize,
    requestDeserialize: (b: Buffer) => deserialize<RatingsRequest>(b),
    responseSerialize: serialize,
    responseDeserialize: (b: Buffer) => deserialize<RatingsReply>(b),
  },
};

/** Call GetRatings on `client` with a deadline. */
export function getRatings(client: grpc.Client, productId: number, timeoutMs: number): Promise<RatingsReply> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<RatingsRequest, RatingsReply>(
      GET_RATINGS_PATH,
      serialize,
      (b) => deserialize<RatingsReply>(b),
      { productId },
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, reply) => (err || !reply ? reject(err ?? new Error('empty reply')) : resolve(reply)),
    );
  });
}

/**
 * `grpc_response_status`: for gRPC streams the `grpc-status` of the trailers, else of the headers, else
 * mapped from the HTTP status; `""` for plain HTTP and for gRPC streams without any response.
 *
 * Envoy `source/common/grpc/common.cc` `Common::getGrpcStatus(trailers, headers, info)` and
 * `source/common/grpc/status.cc` `Utility::httpToGrpcStatus`; istio/proxy `istio_stats.cc` prints the
 * value with `absl::StrCat`, so an unparsable or user-defined (> 16) status prints as `-1` (InvalidCode).
 */

/**
 * `request_protocol` of an HTTP stream from its request's `content-type`: `grpc` when it starts with
 * `application/grpc` (docs: spec istio-telemetry-v2.md, the request_protocol row), else `http`. The one place the
 * sidecar, the fastify plugin and the undici interceptor decide it.
 */
export function requestProtocolOf(contentType: string | undefined): 'http' | 'grpc' {
  return contentType !== undefined && contentType.startsWith('application/grpc') ? 'grpc' : 'http';
}

/** gRPC status codes 0–16 (grpc `doc/statuscodes.md`). */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
});

/** Envoy's `InvalidCode`, printed for a grpc-status that is not an integer in 0..16. */
export const GRPC_INVALID_CODE = -1;

/** Map an HTTP status to a gRPC status as Envoy does (grpc `doc/http-grpc-status-mapping.md`). */
export function httpToGrpcStatus(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/**
 * Parse a raw `grpc-status` value like Envoy's `getGrpcStatus(headers)` without user-defined codes:
 * `absl::SimpleAtoi` into an unsigned integer (surrounding whitespace allowed), > 16 → InvalidCode.
 */
export function parseGrpcStatus(raw: string): number {
  const s = raw.trim();
  if (!/^\+?\d+$/.test(s)) return GRPC_INVALID_CODE;
  const n = Number(s);
  return n <= GRPC_STATUS.UNAUTHENTICATED ? n : GRPC_INVALID_CODE;
}

/**
 * The `grpc_response_status` label value as a small integer: `-2` means "no value" (`""`),
 * `-1` InvalidCode, 0..16 the status. Used by the recorder to build a numeric series key.
 *
 * @param protocol `grpc` or `http`; plain HTTP always gives "no value".
 * @param grpcStatus raw status from trailers, else headers (the filter picks), or undefined.
 * @param responseCode HTTP status, 0 when no response was sent.
 */
export function grpcStatusCode(protocol: 'http' | 'grpc', grpcStatus: string | undefined, responseCode: number): number {
  if (protocol !== 'grpc') return -2;
  if (grpcStatus !== undefined) return parseGrpcStatus(grpcStatus);
  if (responseCode > 0) return httpToGrpcStatus(responseCode);
  return -2;
}

/** Render {@link grpcStatusCode} as the label value. */
export function grpcStatusLabel(code: number): string {
  return code === -2 ? '' : String(code);
}

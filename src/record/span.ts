/**
 * The end tags of a hop's span, derived from the same attributes the stats stage records, so that a span
 * and its series never disagree (Envoy's tracer reads `response_code` / `response_flags` / sizes from the
 * same stream info the stats filter reads).
 */
import { formatResponseFlags } from '../stats/response-flags.js';
import type { HttpStreamAttributes } from '../stats/types.js';
import type { SpanEndInfo } from '../tracing/types.js';

/**
 * Span end tags of a finished request: code, flags (`-` when none), sizes, gRPC status, peer, cluster. The gRPC
 * status is a gRPC request's only, as the stats stage reads it (grpcStatusCode) and Envoy's tracer tags it: a
 * `grpc-status` header on a plain HTTP response is neither a tag nor an error.
 */
export function spanEndOf(attrs: HttpStreamAttributes, upstreamCluster: string): SpanEndInfo {
  return {
    statusCode: attrs.responseCode,
    responseFlags: formatResponseFlags(attrs.responseFlags),
    upstreamCluster,
    requestSize: attrs.requestBytes,
    responseSize: attrs.responseBytes,
    ...(attrs.protocol === 'grpc' && attrs.grpcStatus !== undefined ? { grpcStatus: attrs.grpcStatus } : {}),
    peer: attrs.peer,
  };
}

/**
 * What an unsampled span is ended with: its end tags are never written (HopSpan.end ignores them), so no
 * per-request object or flags string is derived for the 99 % of requests that nothing samples.
 */
export const UNSAMPLED_SPAN_END: SpanEndInfo = Object.freeze({ statusCode: 0, responseFlags: '-', upstreamCluster: '', requestSize: 0, responseSize: 0 });

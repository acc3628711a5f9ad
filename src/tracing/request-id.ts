/**
 * Envoy's `x-request-id` handling: generate a UUIDv4 when absent and pack the trace decision into the
 * version nibble (character 14), as the HTTP connection manager does with the UUID request-id extension
 * and `use_request_id_for_trace_sampling: true` (Istio sets it: pilot/pkg/xds/requestidextension/uuid_extension.go).
 *
 * Written by hand: this is Envoy-specific behaviour with no library equivalent, and it runs per request.
 * - generation: envoy source/common/http/conn_manager_utility.cc `mutateRequestHeaders`
 *   ("Generate x-request-id for all edge requests, or if there is none").
 * - decision: conn_manager_utility.cc `mutateTracingRequestHeader`.
 * - the mark: source/extensions/request_id/uuid/config.cc `getTraceReason` / `setTraceReason`.
 */
import { randomFillSync } from 'node:crypto';

/** The request id header. */
export const X_REQUEST_ID = 'x-request-id';
/** A client asking to be traced (`guid:x-client-trace-id` tag; client_sampling, 100 % in Istio). */
export const X_CLIENT_TRACE_ID = 'x-client-trace-id';
/** Force tracing of this request (honoured for requests from inside the mesh). */
export const X_ENVOY_FORCE_TRACE = 'x-envoy-force-trace';

/** Why a request is traced, as Envoy's `Tracing::Reason` restricted to what the UUID can carry. */
export type TraceReason = 'not_traceable' | 'sampling' | 'service_forced' | 'client_forced';

/** Index of the UUID version nibble that carries the reason (Envoy `TRACE_BYTE_POSITION`). */
export const TRACE_BYTE_POSITION = 14;
const UUID_LENGTH = 36;
const CHAR_SAMPLED = '9';
const CHAR_FORCED = 'a';
const CHAR_CLIENT = 'b';
const CHAR_NO_TRACE = '4';

/** Envoy's random_sampling runs over 10000 buckets (0.01 % steps). */
export const SAMPLING_BUCKETS = 10_000;

/** Random bytes drawn from the CSPRNG at once: 256 ids per draw. */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let poolOffset = POOL_BYTES;
/** One id being formatted, with its four dashes in place. */
const idBytes = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** Where the hex pair of each of the 16 random bytes goes in the 36-character form. */
const HEX_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/**
 * A fresh random UUIDv4 (RFC 9562 §5.4) from the CSPRNG, as Envoy's `Random::uuid()` draws it. Formatted by hand
 * into one latin1 buffer rather than with `crypto.randomUUID()`: on Node 20 that costs ~0.5 µs per call
 * (measured), and the sidecar generates an id for every request that arrives without one.
 */
export function generateRequestId(): string {
  if (poolOffset === POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const o = poolOffset;
  poolOffset += 16;
  for (let i = 0; i < 16; i++) {
    let v = pool[o + i] as number;
    // Version 4 in the high nibble of byte 6, variant 10xx in byte 8.
    if (i === 6) v = (v & 0x0f) | 0x40;
    else if (i === 8) v = (v & 0x3f) | 0x80;
    const at = HEX_AT[i] as number;
    idBytes[at] = HEX_DIGITS[v >> 4] as number;
    idBytes[at + 1] = HEX_DIGITS[v & 15] as number;
  }
  return idBytes.toString('latin1', 0, UUID_LENGTH);
}

/** The trace reason packed in a request id; anything that is not a 36-character id is not traceable. */
export function getTraceReason(requestId: string): TraceReason {
  if (requestId.length !== UUID_LENGTH) return 'not_traceable';
  switch (requestId[TRACE_BYTE_POSITION]) {
    case CHAR_SAMPLED:
      return 'sampling';
    case CHAR_FORCED:
      return 'service_forced';
    case CHAR_CLIENT:
      return 'client_forced';
    default:
      return 'not_traceable';
  }
}

/** Return `requestId` with `reason` packed into character 14; ids that are not 36 characters are returned unchanged. */
export function setTraceReason(requestId: string, reason: TraceReason): string {
  if (requestId.length !== UUID_LENGTH) return requestId;
  const c = reason === 'sampling' ? CHAR_SAMPLED : reason === 'service_forced' ? CHAR_FORCED : reason === 'client_forced' ? CHAR_CLIENT : CHAR_NO_TRACE;
  return requestId.slice(0, TRACE_BYTE_POSITION) + c + requestId.slice(TRACE_BYTE_POSITION + 1);
}

/**
 * The first 8 hex digits of the id as an integer (Envoy `UUIDRequestIDExtension::toInteger`), or -1
 * when they are not hex. The random-sampling draw is this value mod 10000, so every hop that sees the
 * same id makes the same draw.
 */
export function requestIdToInteger(requestId: string): number {
  if (requestId.length < 8) return -1;
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const c = requestId.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else return -1;
    value = value * 16 + d;
  }
  return value;
}

/**
 * Envoy's tracing decision for a request id (mutateTracingRequestHeader with client_sampling and
 * overall_sampling at 100 %, as Istio configures them). An id already marked keeps its mark ("do not
 * apply tracing transformations if we are currently tracing"); otherwise x-client-trace-id marks it
 * `b`, x-envoy-force-trace `a`, and a random draw below `numerator`/10000 marks it `9`.
 *
 * @returns the possibly re-marked id.
 */
export function applyTraceDecision(requestId: string, clientTraceId: boolean, forceTrace: boolean, numerator: number): string {
  const draw = requestIdToInteger(requestId);
  // Envoy skips the whole mutation when the id's prefix is not hex.
  if (draw < 0) return requestId;
  if (getTraceReason(requestId) !== 'not_traceable') return requestId;
  if (clientTraceId) return setTraceReason(requestId, 'client_forced');
  if (forceTrace) return setTraceReason(requestId, 'service_forced');
  if (draw % SAMPLING_BUCKETS < numerator) return setTraceReason(requestId, 'sampling');
  return requestId;
}

/**
 * Tracing switched off, and the pieces every tracer shares. Kept apart from tracer.ts so a proxy with tracing
 * off never loads the OpenTelemetry SDK: this module imports nothing from it.
 */
import { firstHeader } from '../core/headers.js';
import { X_REQUEST_ID, generateRequestId } from './request-id.js';
import type { HeaderBag, HopSpan, HopTracer } from './types.js';

/** First value of a header (core/headers.ts `firstHeader`). */
export function header(headers: HeaderBag, name: string): string | undefined {
  return firstHeader(headers[name]);
}

/** A span that records nothing and only carries the request id (tracing off, or an internal failure). */
export class PassthroughHopSpan implements HopSpan {
  readonly sampled = false;
  readonly traceId = '';
  constructor(private readonly requestId: string) {}
  inject(headers: HeaderBag): void {
    headers[X_REQUEST_ID] = this.requestId;
  }
  end(): void {}
}

/** Ensure the request carries an x-request-id; returns it. */
export function ensureRequestId(headers: HeaderBag): string {
  const existing = header(headers, X_REQUEST_ID);
  if (existing) return existing;
  const id = generateRequestId();
  headers[X_REQUEST_ID] = id;
  return id;
}

/** {@link ensureRequestId} that never throws (a frozen or exotic header object): `''` then. */
export function ensureRequestIdSafe(headers: HeaderBag): string {
  try {
    return ensureRequestId(headers);
  } catch {
    return '';
  }
}

/**
 * Tracing switched off: no spans, no trace headers read or written. Like Envoy's HTTP connection manager
 * without a tracer, it still generates `x-request-id` when the request has none (`generate_request_id`
 * defaults to true and is independent of tracing), but does not mark character 14 (that mutation runs
 * only with a tracing config). `traceId` is `''` and `sampled` false.
 */
export function createNoopTracing(): HopTracer {
  return {
    recording: false,
    startSpan(headers: HeaderBag): HopSpan {
      return new PassthroughHopSpan(ensureRequestIdSafe(headers));
    },
    shutdown: () => Promise.resolve(),
  };
}

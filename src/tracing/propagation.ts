/**
 * Trace-context propagation over plain header objects.
 *
 * Extraction parses untrusted input, so it uses the OpenTelemetry propagators (`W3CTraceContextPropagator`
 * from @opentelemetry/core, `B3Propagator` from @opentelemetry/propagator-b3). On top of them:
 * - The configured formats are tried in order and the first valid context wins (Envoy's tracers read one
 *   format; OTel's CompositePropagator would let a later format override an earlier one).
 * - A format whose headers are absent is not run at all (most requests carry one format or none).
 * - B3 lets a caller defer the sampling decision (no `x-b3-sampled`/`x-b3-flags`, or a two-part `b3`
 *   header). Envoy's Zipkin tracer then uses its own decision; OTel's B3 propagator reads "absent" as
 *   "not sampled", so we detect the deferred case here. `b3: 0` is an explicit "do not sample".
 *
 * Injection is written by hand: it only ever writes ids our own tracer generated, so the OTel propagators'
 * per-call regex validation of those ids (≈40 % of a sampled span's propagation cost, measured in
 * bench/tracing.bench.ts) buys nothing. Formats: W3C trace-context level 1 (`00-<trace>-<span>-<flags>`),
 * B3 (https://github.com/openzipkin/b3-propagation) including `x-b3-parentspanid` as Envoy's Zipkin tracer
 * writes it (envoy source/extensions/tracers/zipkin/zipkin_tracer_impl.cc `injectContext`). Before writing,
 * the stale fields of every format written are removed, so a request forwarded with the incoming headers
 * never carries two parents (an old `tracestate`, `x-b3-flags` or parent id).
 */
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import type { Context, SpanContext, TextMapGetter, TextMapPropagator } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { firstHeader } from '../core/headers.js';
import type { PropagationFormat } from './config.js';
import type { HeaderBag } from './types.js';

/** W3C trace context: `00-<trace id>-<span id>-<flags>`. */
export const TRACEPARENT = 'traceparent';
/** W3C vendor state, carried through unchanged. */
export const TRACESTATE = 'tracestate';
/** B3 single header: `<trace id>-<span id>[-<1|0|d>[-<parent span id>]]` (https://github.com/openzipkin/b3-propagation). */
export const B3_SINGLE = 'b3';
/** B3 multi: trace id (64 or 128 bit). */
export const X_B3_TRACE_ID = 'x-b3-traceid';
/** B3 multi: span id. */
export const X_B3_SPAN_ID = 'x-b3-spanid';
/** B3 multi: the parent's span id. */
export const X_B3_PARENT_SPAN_ID = 'x-b3-parentspanid';
/** B3 multi: `1` sampled, `0` not; absent means "deferred". */
export const X_B3_SAMPLED = 'x-b3-sampled';
/** B3 multi: `1` is debug (implies sampled). */
export const X_B3_FLAGS = 'x-b3-flags';

/** What came in: the parent context (when one was valid) and the caller's sampling decision, if it made one. */
export interface ExtractedParent {
  /** Context carrying the remote span context; `ROOT_CONTEXT` when none was found. */
  readonly context: Context;
  /** True when a valid remote span context was found. */
  readonly hasParent: boolean;
  /** The upstream decision (`undefined`: none made, the local decision applies). */
  readonly sampled: boolean | undefined;
  /** The caller's span id ('' without a parent), written as `x-b3-parentspanid` / the 4th `b3` field. */
  readonly parentSpanId: string;
  /** B3 debug (`x-b3-flags: 1`, `b3: …-d`): propagated as debug again. */
  readonly debug: boolean;
}

/** Extract and inject the configured formats. */
export interface TracePropagation {
  readonly formats: readonly PropagationFormat[];
  extract(headers: HeaderBag): ExtractedParent;
  /** Write `span` (a span of ours, started under `parent`) into `headers` in every configured format. */
  inject(span: SpanContext, parent: ExtractedParent, headers: HeaderBag): void;
}

const getter: TextMapGetter<HeaderBag> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

const NO_PARENT: ExtractedParent = Object.freeze({ context: ROOT_CONTEXT, hasParent: false, sampled: undefined, parentSpanId: '', debug: false });
const DENY_PARENT: ExtractedParent = Object.freeze({ context: ROOT_CONTEXT, hasParent: false, sampled: false, parentSpanId: '', debug: false });


/** Build the propagation for `formats` (decided once here, not per request). */
export function createTracePropagation(formats: readonly PropagationFormat[]): TracePropagation {
  // One B3 extractor reads both encodings (single header first, as the OTel B3Propagator does).
  const extractors: { kind: 'w3c' | 'b3'; p: TextMapPropagator }[] = [];
  const staleFields: string[] = [];
  const writeW3c = formats.includes('tracecontext');
  const writeB3Single = formats.includes('b3');
  const writeB3Multi = formats.includes('b3multi');
  for (const f of formats) {
    if (f === 'tracecontext') extractors.push({ kind: 'w3c', p: new W3CTraceContextPropagator() });
    else if (!extractors.some((e) => e.kind === 'b3')) extractors.push({ kind: 'b3', p: new B3Propagator() });
  }
  if (writeW3c) staleFields.push(TRACEPARENT, TRACESTATE);
  if (writeB3Single) staleFields.push(B3_SINGLE);
  if (writeB3Multi) staleFields.push(X_B3_TRACE_ID, X_B3_SPAN_ID, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_FLAGS);

  return {
    formats,
    extract(headers) {
      for (const { kind, p } of extractors) {
        const single = kind === 'b3' ? firstHeader(headers[B3_SINGLE]) : undefined;
        // Skip a format whose headers are absent: the common request carries none.
        if (kind === 'w3c' ? headers[TRACEPARENT] === undefined : single === undefined && headers[X_B3_TRACE_ID] === undefined) continue;
        const ctx = p.extract(ROOT_CONTEXT, headers, getter);
        const sc = trace.getSpanContext(ctx);
        if (sc === undefined) {
          if (single === '0') return DENY_PARENT;
          continue;
        }
        const flagged = (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
        let decided = true;
        let debug = false;
        if (kind === 'b3') {
          if (single !== undefined && single !== '') {
            // traceid-spanid[-sampling[-parentspanid]]: two parts means "deferred".
            const parts = single.split('-', 3);
            decided = parts.length > 2;
            debug = parts[2] === 'd';
          } else {
            debug = firstHeader(headers[X_B3_FLAGS]) === '1';
            decided = headers[X_B3_SAMPLED] !== undefined || debug;
          }
        }
        return { context: ctx, hasParent: true, sampled: decided ? flagged : undefined, parentSpanId: sc.spanId, debug };
      }
      return NO_PARENT;
    },
    inject(span, parent, headers) {
      for (const k of staleFields) if (headers[k] !== undefined) delete headers[k];
      const sampled = (span.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
      if (writeW3c) {
        headers[TRACEPARENT] = `00-${span.traceId}-${span.spanId}-${sampled ? '01' : '00'}`;
        const state = span.traceState?.serialize();
        if (state) headers[TRACESTATE] = state;
      }
      if (writeB3Single) {
        // Debug replaces the sampling state in the single header (B3 spec).
        let v = `${span.traceId}-${span.spanId}-${parent.debug ? 'd' : sampled ? '1' : '0'}`;
        if (parent.parentSpanId !== '') v += `-${parent.parentSpanId}`;
        headers[B3_SINGLE] = v;
      }
      if (writeB3Multi) {
        headers[X_B3_TRACE_ID] = span.traceId;
        headers[X_B3_SPAN_ID] = span.spanId;
        if (parent.parentSpanId !== '') headers[X_B3_PARENT_SPAN_ID] = parent.parentSpanId;
        // With debug, x-b3-flags implies sampled and x-b3-sampled is not sent (B3 spec).
        if (parent.debug) headers[X_B3_FLAGS] = '1';
        else headers[X_B3_SAMPLED] = sampled ? '1' : '0';
      }
    },
  };
}

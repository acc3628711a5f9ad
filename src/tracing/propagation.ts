/**
 * Trace-context propagation over plain header objects, built on the OpenTelemetry propagators
 * (`W3CTraceContextPropagator` from @opentelemetry/core, `B3Propagator` from @opentelemetry/propagator-b3).
 *
 * What we add on top, and why:
 * - Extraction tries the configured formats in order and the first valid context wins (Envoy's
 *   OpenTelemetry tracer reads one format; OTel's CompositePropagator would let a later format override).
 * - B3 lets a caller defer the sampling decision (no `x-b3-sampled`/`x-b3-flags`, or a two-part `b3`
 *   header). Envoy's Zipkin tracer then uses its own decision; OTel's B3 propagator reads "absent" as
 *   "not sampled", so we detect the deferred case here. `b3: 0` is an explicit "do not sample".
 * - Injection first removes the stale fields of every format it writes, so a request forwarded with
 *   the incoming headers never carries two parents (e.g. an old `tracestate` or `x-b3-flags`).
 */
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import type { Context, TextMapGetter, TextMapPropagator, TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import type { PropagationFormat } from './config.js';
import type { HeaderBag } from './types.js';

/** W3C trace context header names. */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';
/** B3 header names (https://github.com/openzipkin/b3-propagation). */
export const B3_SINGLE = 'b3';
export const X_B3_TRACE_ID = 'x-b3-traceid';
export const X_B3_SPAN_ID = 'x-b3-spanid';
export const X_B3_PARENT_SPAN_ID = 'x-b3-parentspanid';
export const X_B3_SAMPLED = 'x-b3-sampled';
export const X_B3_FLAGS = 'x-b3-flags';

/** What came in: the parent context (when one was valid) and the caller's sampling decision, if it made one. */
export interface ExtractedParent {
  /** Context carrying the remote span context; `ROOT_CONTEXT` when none was found. */
  readonly context: Context;
  /** True when a valid remote span context was found. */
  readonly hasParent: boolean;
  /** The upstream decision (`undefined`: none made, the local decision applies). */
  readonly sampled: boolean | undefined;
}

/** Extract and inject the configured formats. */
export interface TracePropagation {
  readonly formats: readonly PropagationFormat[];
  extract(headers: HeaderBag): ExtractedParent;
  /** Write the context of the active span in `context` into `headers`. */
  inject(context: Context, headers: HeaderBag): void;
}

const getter: TextMapGetter<HeaderBag> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

const setter: TextMapSetter<HeaderBag> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const NO_PARENT: ExtractedParent = Object.freeze({ context: ROOT_CONTEXT, hasParent: false, sampled: undefined });
const DENY_PARENT: ExtractedParent = Object.freeze({ context: ROOT_CONTEXT, hasParent: false, sampled: false });

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Build the propagation for `formats` (decided once here, not per request). */
export function createTracePropagation(formats: readonly PropagationFormat[]): TracePropagation {
  const w3c = new W3CTraceContextPropagator();
  // One B3 extractor reads both encodings (single header first, as the OTel B3Propagator does).
  const b3Extract = new B3Propagator();
  const extractors: { kind: 'w3c' | 'b3'; p: TextMapPropagator }[] = [];
  const injectors: TextMapPropagator[] = [];
  const staleFields: string[] = [];
  for (const f of formats) {
    if (f === 'tracecontext') {
      extractors.push({ kind: 'w3c', p: w3c });
      injectors.push(w3c);
      staleFields.push(TRACEPARENT, TRACESTATE);
    } else {
      if (!extractors.some((e) => e.kind === 'b3')) extractors.push({ kind: 'b3', p: b3Extract });
      if (f === 'b3') {
        injectors.push(new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }));
        staleFields.push(B3_SINGLE);
      } else {
        injectors.push(new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }));
        staleFields.push(X_B3_TRACE_ID, X_B3_SPAN_ID, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_FLAGS);
      }
    }
  }

  return {
    formats,
    extract(headers) {
      for (const { kind, p } of extractors) {
        const ctx = p.extract(ROOT_CONTEXT, headers, getter);
        const sc = trace.getSpanContext(ctx);
        if (sc === undefined) {
          if (kind === 'b3' && first(headers[B3_SINGLE]) === '0') return DENY_PARENT;
          continue;
        }
        const flagged = (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
        let decided = true;
        if (kind === 'b3') {
          const single = first(headers[B3_SINGLE]);
          if (single !== undefined && single !== '') {
            // traceid-spanid[-sampling[-parentspanid]]: two parts means "deferred".
            decided = single.split('-', 3).length > 2;
          } else {
            decided = headers[X_B3_SAMPLED] !== undefined || headers[X_B3_FLAGS] !== undefined;
          }
        }
        return { context: ctx, hasParent: true, sampled: decided ? flagged : undefined };
      }
      return NO_PARENT;
    },
    inject(context, headers) {
      for (const k of staleFields) if (headers[k] !== undefined) delete headers[k];
      for (const p of injectors) p.inject(context, headers, setter);
    },
  };
}

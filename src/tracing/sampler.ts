/**
 * The OTel sampler that carries Envoy's decision. `startSpan` (hop-tracer.ts) decides as Envoy does, from the
 * `x-request-id` mark or the caller's sampled flag, and puts the decision in the span's context; this sampler
 * only reads it, so OTel's sampler hook and Envoy's rules cannot disagree. Spans that carry no decision (an
 * app's own spans, when an app hands this sampler to its SDK) go to the fallback.
 */
import type { Attributes, Context, Link, SpanKind } from '@opentelemetry/api';
import { AlwaysOffSampler, SamplingDecision } from '@opentelemetry/sdk-trace';
import type { Sampler, SamplingResult } from '@opentelemetry/sdk-trace';
import { ENVOY_DECISION_KEY } from './hop-tracer.js';

const SAMPLE: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED });
const DROP: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD });

class EnvoyDecisionSampler implements Sampler {
  constructor(private readonly fallback: Sampler) {}
  shouldSample(context: Context, traceId: string, name: string, kind: SpanKind, attrs: Attributes, links: Link[]): SamplingResult {
    const decision = context.getValue(ENVOY_DECISION_KEY);
    if (decision === true) return SAMPLE;
    if (decision === false) return DROP;
    return this.fallback.shouldSample(context, traceId, name, kind, attrs, links);
  }
  toString(): string {
    return `EnvoyDecisionSampler{fallback=${this.fallback.toString()}}`;
  }
}

/**
 * A sampler for an SDK that should sample meshtel's spans by Istio's rules (the x-request-id decision, the
 * caller's flag, the configured percentage) and everything else by `fallback` (default: never; an app passes
 * its own, e.g. `new ParentBasedSampler({ root: new AlwaysOnSampler() })`).
 */
export function createEnvoySampler(fallback: Sampler = new AlwaysOffSampler()): Sampler {
  return new EnvoyDecisionSampler(fallback);
}

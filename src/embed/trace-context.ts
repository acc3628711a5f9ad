/**
 * Carries the inbound request's trace headers to outbound calls made while handling it
 * (node:async_hooks AsyncLocalStorage). Istio asks every app to copy x-request-id, traceparent and the
 * B3 headers by hand (istio.io FAQ "distributed-tracing"); inside the embedding the interceptor does it,
 * unless the app set them itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { firstHeader } from '../core/headers.js';

/** The headers Istio's FAQ lists for propagation. */
export const PROPAGATED_HEADERS = Object.freeze([
  'x-request-id',
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
]);

/** Trace headers of the request being handled in this async context. */
export const inboundTraceContext = new AsyncLocalStorage<Readonly<Record<string, string>>>();

let contextRead = false;
/**
 * Say that something reads {@link inboundTraceContext} (the undici interceptor, when it is created). Until then the
 * fastify plugin does not enter the context: on Node 20 an AsyncLocalStorage in use installs async hooks that run
 * for every promise, timer and socket the whole process creates, which was the larger part of the plugin's cost per
 * request (bench/proxyless.bench.ts) in an app that makes no outbound calls through the interceptor.
 */
export function readInboundTraceContext(): void {
  contextRead = true;
}
/** Whether anything reads the inbound trace context (see {@link readInboundTraceContext}). */
export function inboundTraceContextRead(): boolean {
  return contextRead;
}

/** Pick the propagated headers out of a Node header object (first value of arrays). */
export function pickTraceHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PROPAGATED_HEADERS) {
    const s = firstHeader(headers[name]);
    if (s !== undefined) out[name] = s;
  }
  return out;
}

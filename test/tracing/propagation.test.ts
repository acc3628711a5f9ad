/**
 * Propagation and sampling through createTracing(): what a hop reads from the incoming request and writes for the
 * next one (W3C traceparent/tracestate, B3 single and multi, x-request-id), and when it samples.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTracing } from '../../src/tracing/tracer.js';
import type { TracingOptions } from '../../src/tracing/config.js';
import type { HeaderBag, HopTracer } from '../../src/tracing/types.js';
import { INBOUND, NODE_ID, OK_END, workload } from './support/fixtures.js';
import { createRecordingExporter } from './support/recording-exporter.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const NOT_SAMPLED_DRAW = '00000064-1111-4222-8333-444455556666'; // draw 100: outside 1 %

const tracers: HopTracer[] = [];
afterEach(async () => {
  await Promise.all(tracers.splice(0).map((t) => t.shutdown()));
});

function tracing(options: Partial<TracingOptions> = {}): HopTracer {
  const t = createTracing({ local: workload(), nodeId: NODE_ID, exporter: createRecordingExporter(), ...options });
  tracers.push(t);
  return t;
}

/** Run one hop; returns the span and the headers it writes for the next hop. */
function hop(t: HopTracer, incoming: HeaderBag): { sampled: boolean; traceId: string; out: HeaderBag; incoming: HeaderBag } {
  const span = t.startSpan(incoming, INBOUND);
  const out: HeaderBag = { ...incoming };
  span.inject(out);
  span.end(OK_END);
  return { sampled: span.sampled, traceId: span.traceId, out, incoming };
}

function traceparent(h: HeaderBag): { traceId: string; spanId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(h.traceparent));
  if (!m) throw new Error(`bad traceparent ${String(h.traceparent)}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

describe('createTracing()', () => {
  describe('W3C trace context', () => {
    it.each([
      { flags: '01', sampled: true },
      { flags: '00', sampled: false },
    ])('continues traceparent …-$flags with a child span and the same flag', ({ flags, sampled }) => {
      // 0 % random sampling: only the upstream flag can sample.
      const r = hop(tracing({ samplingPercent: 0, propagation: ['tracecontext'] }), {
        traceparent: `00-${TRACE_ID}-${PARENT_ID}-${flags}`,
        'x-request-id': NOT_SAMPLED_DRAW,
      });
      expect(r.sampled).toBe(sampled);
      expect(r.traceId).toBe(TRACE_ID);
      const tp = traceparent(r.out);
      expect(tp.traceId).toBe(TRACE_ID);
      expect(tp.spanId).not.toBe(PARENT_ID);
      expect(tp.flags).toBe(flags);
    });

    it('honours an upstream "not sampled" flag even at 100 %', () => {
      const r = hop(tracing({ samplingPercent: 100 }), { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` });
      expect(r.sampled).toBe(false);
      expect(traceparent(r.out).flags).toBe('00');
    });

    it('carries tracestate through', () => {
      const r = hop(tracing({ propagation: ['tracecontext'] }), {
        traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
        tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
      });
      expect(r.out.tracestate).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    });

    it('starts a new trace when traceparent is malformed', () => {
      const r = hop(tracing({ samplingPercent: 100, propagation: ['tracecontext'] }), { traceparent: '00-nothex-00f067aa0ba902b7-01' });
      expect(r.traceId).not.toBe(TRACE_ID);
      expect(traceparent(r.out).traceId).toBe(r.traceId);
      expect(r.sampled).toBe(true);
    });
  });

  describe('B3', () => {
    it('continues multi headers and writes multi headers', () => {
      const r = hop(tracing({ samplingPercent: 0, propagation: ['b3multi'] }), {
        'x-b3-traceid': TRACE_ID,
        'x-b3-spanid': PARENT_ID,
        'x-b3-sampled': '1',
      });
      expect(r.sampled).toBe(true);
      expect(r.out['x-b3-traceid']).toBe(TRACE_ID);
      expect(r.out['x-b3-spanid']).toMatch(/^[0-9a-f]{16}$/);
      expect(r.out['x-b3-spanid']).not.toBe(PARENT_ID);
      expect(r.out['x-b3-sampled']).toBe('1');
      expect(r.out.traceparent).toBeUndefined();
    });

    it('continues a single b3 header and writes a single header', () => {
      const r = hop(tracing({ samplingPercent: 0, propagation: ['b3'] }), { b3: `${TRACE_ID}-${PARENT_ID}-1` });
      expect(r.sampled).toBe(true);
      // The caller's span becomes the parent field, as Envoy's Zipkin tracer writes it.
      expect(String(r.out.b3)).toMatch(new RegExp(`^${TRACE_ID}-[0-9a-f]{16}-1-${PARENT_ID}$`));
      expect(r.out['x-b3-traceid']).toBeUndefined();
    });

    it('widens a 64-bit B3 trace id to 128 bits', () => {
      const r = hop(tracing({ samplingPercent: 0, propagation: ['b3multi'] }), {
        'x-b3-traceid': 'a3ce929d0e0e4736',
        'x-b3-spanid': PARENT_ID,
        'x-b3-sampled': '1',
      });
      expect(r.traceId).toBe('0000000000000000a3ce929d0e0e4736');
    });

    it('treats x-b3-flags: 1 (debug) as sampled and passes debug on in both encodings', () => {
      const r = hop(tracing({ samplingPercent: 0, propagation: ['b3multi', 'b3'] }), {
        'x-b3-traceid': TRACE_ID,
        'x-b3-spanid': PARENT_ID,
        'x-b3-flags': '1',
      });
      expect(r.sampled).toBe(true);
      expect(r.out['x-b3-flags']).toBe('1');
      expect(r.out['x-b3-sampled']).toBeUndefined();
      expect(String(r.out.b3)).toMatch(new RegExp(`^${TRACE_ID}-[0-9a-f]{16}-d-${PARENT_ID}$`));
    });

    it('reads debug (d) from a single b3 header', () => {
      const r = hop(tracing({ samplingPercent: 0, propagation: ['b3'] }), { b3: `${TRACE_ID}-${PARENT_ID}-d` });
      expect(r.sampled).toBe(true);
      expect(String(r.out.b3)).toMatch(new RegExp(`^${TRACE_ID}-[0-9a-f]{16}-d-${PARENT_ID}$`));
    });

    it.each([
      { name: 'multi headers without x-b3-sampled', headers: { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID } },
      { name: 'a two-part b3 header', headers: { b3: `${TRACE_ID}-${PARENT_ID}` } },
    ])('lets the local decision sample when the caller deferred it ($name)', ({ headers }) => {
      const sampledHere = hop(tracing({ samplingPercent: 100, propagation: ['b3multi'] }), { ...headers });
      expect(sampledHere.sampled).toBe(true);
      expect(sampledHere.traceId).toBe(TRACE_ID);
      const notHere = hop(tracing({ samplingPercent: 0, propagation: ['b3multi'] }), { ...headers, 'x-request-id': NOT_SAMPLED_DRAW });
      expect(notHere.sampled).toBe(false);
      expect(notHere.traceId).toBe(TRACE_ID);
    });

    it('treats b3: 0 as an explicit "do not sample" on a new trace', () => {
      const r = hop(tracing({ samplingPercent: 100, propagation: ['b3'] }), { b3: '0' });
      expect(r.sampled).toBe(false);
      expect(String(r.out.b3)).toMatch(/^[0-9a-f]{32}-[0-9a-f]{16}-0$/);
    });
  });

  describe('several formats', () => {
    it('extracts the first configured format that is valid and injects all of them', () => {
      const OTHER = '11111111111111111111111111111111';
      const r = hop(tracing({ samplingPercent: 0, propagation: ['tracecontext', 'b3', 'b3multi'] }), {
        traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
        'x-b3-traceid': OTHER,
        'x-b3-spanid': PARENT_ID,
        'x-b3-sampled': '0',
      });
      expect(r.traceId).toBe(TRACE_ID);
      expect(r.sampled).toBe(true);
      const child = traceparent(r.out);
      expect(r.out.b3).toBe(`${TRACE_ID}-${child.spanId}-1-${PARENT_ID}`);
      expect(r.out['x-b3-traceid']).toBe(TRACE_ID);
      expect(r.out['x-b3-spanid']).toBe(child.spanId);
      expect(r.out['x-b3-parentspanid']).toBe(PARENT_ID);
      expect(r.out['x-b3-sampled']).toBe('1');
    });

    it('removes stale fields of the formats it writes (old parent id, debug flag)', () => {
      const r = hop(tracing({ samplingPercent: 100, propagation: ['b3multi'] }), {
        'x-b3-traceid': TRACE_ID,
        'x-b3-spanid': PARENT_ID,
        'x-b3-parentspanid': 'ffffffffffffffff',
        'x-b3-sampled': '1',
      });
      expect(r.out['x-b3-parentspanid']).toBe(PARENT_ID);
      expect(r.out['x-b3-sampled']).toBe('1');
    });

    it('drops a stale x-b3-parentspanid when starting a new trace', () => {
      const r = hop(tracing({ samplingPercent: 100, propagation: ['b3multi'] }), { 'x-b3-parentspanid': 'ffffffffffffffff' });
      expect(r.out['x-b3-parentspanid']).toBeUndefined();
      expect(r.out['x-b3-traceid']).toBe(r.traceId);
    });

    it('leaves headers of formats it does not handle alone', () => {
      const r = hop(tracing({ samplingPercent: 100, propagation: ['tracecontext'] }), { b3: `${TRACE_ID}-${PARENT_ID}-1` });
      expect(r.out.b3).toBe(`${TRACE_ID}-${PARENT_ID}-1`);
      expect(r.traceId).not.toBe(TRACE_ID);
    });
  });

  describe('x-request-id', () => {
    it('generates a UUIDv4 when absent, writes it into the request and forwards it', () => {
      const r = hop(tracing({ samplingPercent: 0 }), {});
      const id = String(r.incoming['x-request-id']);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(r.out['x-request-id']).toBe(id);
    });

    it('keeps an incoming id (sidecars are not edge proxies)', () => {
      const r = hop(tracing({ samplingPercent: 0 }), { 'x-request-id': NOT_SAMPLED_DRAW });
      expect(r.out['x-request-id']).toBe(NOT_SAMPLED_DRAW);
    });

    it.each([
      { name: 'random sampling at 100 %', percent: 100, headers: {}, c: '9', sampled: true },
      { name: 'no sampling at 0 %', percent: 0, headers: {}, c: '4', sampled: false },
      { name: 'x-client-trace-id at 0 %', percent: 0, headers: { 'x-client-trace-id': 'abc' }, c: 'b', sampled: true },
      { name: 'x-envoy-force-trace at 0 %', percent: 0, headers: { 'x-envoy-force-trace': 'true' }, c: 'a', sampled: true },
    ])('marks character 14 for $name', ({ percent, headers, c, sampled }) => {
      const r = hop(tracing({ samplingPercent: percent }), { ...headers });
      expect(String(r.out['x-request-id'])[14]).toBe(c);
      expect(r.sampled).toBe(sampled);
      expect(traceparent(r.out).flags).toBe(sampled ? '01' : '00');
    });

    it('samples a request already marked 9 upstream even at 0 %', () => {
      const r = hop(tracing({ samplingPercent: 0 }), { 'x-request-id': '00000064-1111-9222-8333-444455556666' });
      expect(r.sampled).toBe(true);
    });

    it('samples exactly the ids whose draw falls under the percentage (1 % of 10000 buckets)', () => {
      const t = tracing({ samplingPercent: 1 });
      let sampled = 0;
      for (let draw = 0; draw < 10000; draw++) {
        const id = `${draw.toString(16).padStart(8, '0')}-1111-4222-8333-444455556666`;
        if (hop(t, { 'x-request-id': id }).sampled) sampled++;
      }
      expect(sampled).toBe(100);
    });

    it('makes the same decision at every hop for the same id (no upstream trace headers)', () => {
      const a = tracing({ samplingPercent: 50 });
      const b = tracing({ samplingPercent: 50 });
      for (let i = 0; i < 200; i++) {
        const first = hop(a, {});
        const id = String(first.incoming['x-request-id']);
        expect(hop(b, { 'x-request-id': id }).sampled).toBe(first.sampled);
      }
    });
  });
});

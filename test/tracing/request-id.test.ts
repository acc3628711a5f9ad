/**
 * Envoy's x-request-id trace mark (source/extensions/request_id/uuid/config.cc) and decision
 * (source/common/http/conn_manager_utility.cc mutateTracingRequestHeader).
 */
import { describe, expect, it } from 'vitest';
import {
  TRACE_BYTE_POSITION,
  applyTraceDecision,
  generateRequestId,
  getTraceReason,
  requestIdToInteger,
  setTraceReason,
} from '../../src/tracing/request-id.js';

// First 8 hex digits 0x00000063 = 99 → draw 99 (inside 1 %); 0x00000064 = 100 → draw 100 (outside 1 %).
const DRAW_99 = '00000063-1111-4222-8333-444455556666';
const DRAW_100 = '00000064-1111-4222-8333-444455556666';

describe('request id', () => {
  describe('generateRequestId()', () => {
    it('returns a UUIDv4 whose character 14 is the version nibble 4 (not traced)', () => {
      const id = generateRequestId();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(id[TRACE_BYTE_POSITION]).toBe('4');
      expect(getTraceReason(id)).toBe('not_traceable');
    });

    it('stays a distinct, well-formed UUIDv4 across many draws of its random pool (1000 ids = 4 refills)', () => {
      const ids = Array.from({ length: 1000 }, () => generateRequestId());
      expect(new Set(ids).size).toBe(1000);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      // The sampling draw (first 8 hex digits mod 10000) must be spread out: a next hop samples on it.
      const draws = new Set(ids.map((id) => requestIdToInteger(id) % 10_000));
      expect(draws.size).toBeGreaterThan(900);
    });
  });

  describe('getTraceReason()', () => {
    it.each([
      ['4', 'not_traceable'],
      ['9', 'sampling'],
      ['a', 'service_forced'],
      ['b', 'client_forced'],
      ['c', 'not_traceable'],
    ])('reads character 14 %s as %s', (c, reason) => {
      expect(getTraceReason(`01234567-89ab-${c}def-8123-456789abcdef`)).toBe(reason);
    });

    it('treats an id that is not 36 characters long as not traceable', () => {
      expect(getTraceReason('my-own-request-id-9')).toBe('not_traceable');
      expect(getTraceReason('')).toBe('not_traceable');
    });
  });

  describe('setTraceReason()', () => {
    it.each([
      ['sampling', '9'],
      ['service_forced', 'a'],
      ['client_forced', 'b'],
      ['not_traceable', '4'],
    ] as const)('writes %s as %s and keeps the rest of the id', (reason, c) => {
      const out = setTraceReason(DRAW_99, reason);
      expect(out[TRACE_BYTE_POSITION]).toBe(c);
      expect(out.slice(0, 14) + out.slice(15)).toBe(DRAW_99.slice(0, 14) + DRAW_99.slice(15));
    });

    it('leaves ids that are not 36 characters unchanged', () => {
      expect(setTraceReason('short-id', 'sampling')).toBe('short-id');
    });
  });

  describe('requestIdToInteger()', () => {
    it.each([
      ['00000063-...', 99],
      ['ffffffff', 0xffffffff],
      ['ABCDEF01-x', 0xabcdef01],
      ['0000006g-1111', -1],
      ['1234567', -1],
    ])('reads %s as %d', (id, n) => {
      expect(requestIdToInteger(id)).toBe(n);
    });
  });

  describe('applyTraceDecision()', () => {
    it.each([
      { name: 'samples a draw below the numerator (99 < 100 at 1 %)', id: DRAW_99, client: false, force: false, numerator: 100, c: '9' },
      { name: 'does not sample a draw at the numerator (100 at 1 %)', id: DRAW_100, client: false, force: false, numerator: 100, c: '4' },
      { name: 'samples nothing at 0 %', id: '00000000-1111-4222-8333-444455556666', client: false, force: false, numerator: 0, c: '4' },
      { name: 'samples every draw at 100 %', id: '0000270f-1111-4222-8333-444455556666', client: false, force: false, numerator: 10000, c: '9' },
      { name: 'draws modulo 10000 (10099 → 99)', id: '00002773-1111-4222-8333-444455556666', client: false, force: false, numerator: 100, c: '9' },
      { name: 'marks x-client-trace-id as client-forced (b)', id: DRAW_100, client: true, force: false, numerator: 0, c: 'b' },
      { name: 'marks x-envoy-force-trace as forced (a)', id: DRAW_100, client: false, force: true, numerator: 0, c: 'a' },
      { name: 'prefers the client mark over force', id: DRAW_100, client: true, force: true, numerator: 0, c: 'b' },
      { name: 'keeps an existing sampled mark even at 0 %', id: '00000064-1111-9222-8333-444455556666', client: false, force: false, numerator: 0, c: '9' },
      { name: 'keeps an existing forced mark when the client asks', id: '00000064-1111-a222-8333-444455556666', client: true, force: false, numerator: 0, c: 'a' },
    ])('$name', ({ id, client, force, numerator, c }) => {
      expect(applyTraceDecision(id, client, force, numerator)[TRACE_BYTE_POSITION]).toBe(c);
    });

    it('leaves an id whose first 8 characters are not hex untouched, even when forced', () => {
      const id = 'req-0001-1111-4222-8333-444455556666';
      expect(applyTraceDecision(id, true, true, 10000)).toBe(id);
    });
  });
});

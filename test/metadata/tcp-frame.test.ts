import { describe, expect, it } from 'vitest';
import { createTcpFrameParser, encodeTcpFrame, MX_MAGIC } from '../../src/metadata/tcp-frame.js';
import type { TcpParseStep } from '../../src/metadata/tcp-frame.js';
import { encodeAnyStruct, encodeStruct } from '../../src/metadata/struct-codec.js';
import { ratings, RATINGS_NODE_ID } from './fixtures.js';

/** The ratings frame, byte-identical to fixture vector [11] (see vectors.test.ts). */
const FRAME = encodeTcpFrame(ratings(), RATINGS_NODE_ID, 'reduced');
const APP = Buffer.from('GET / HTTP/1.1\r\n\r\n');

function frameOf(payload: Buffer, magic = MX_MAGIC): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(magic, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

function done(step: TcpParseStep): Extract<TcpParseStep, { done: true }> {
  if (!step.done) throw new Error('parser still waiting');
  return step;
}

describe('createTcpFrameParser()', () => {
  describe('.push()', () => {
    it('parses the frame split at every possible boundary and returns the application bytes after it', () => {
      const stream = Buffer.concat([FRAME, APP]);
      for (let cut = 1; cut < FRAME.length; cut++) {
        const p = createTcpFrameParser();
        expect(p.push(stream.subarray(0, cut))).toEqual({ done: false });
        const step = done(p.push(stream.subarray(cut)));
        expect(step.result.ok).toBe(true);
        expect(step.peerId).toBe(RATINGS_NODE_ID);
        expect(step.rest.equals(APP)).toBe(true);
      }
    });

    it('parses the frame fed one byte at a time', () => {
      const p = createTcpFrameParser();
      let step: TcpParseStep = { done: false };
      for (let i = 0; i < FRAME.length; i++) {
        expect(step.done).toBe(false);
        step = p.push(FRAME.subarray(i, i + 1));
      }
      expect(done(step).result.ok).toBe(true);
      expect(done(step).rest.length).toBe(0);
    });

    it('passes later chunks straight through once the frame is done', () => {
      const p = createTcpFrameParser();
      done(p.push(FRAME));
      const next = done(p.push(APP));
      expect(next.rest).toBe(APP);
      expect(next.result.ok).toBe(true);
    });

    it('reports not_mx on a magic mismatch without consuming anything', () => {
      const p = createTcpFrameParser();
      const step = done(p.push(APP));
      expect(step.result).toMatchObject({ ok: false, reason: 'not_mx' });
      expect(step.rest.equals(APP)).toBe(true);
    });

    it('recognises a non-MX stream from its first byte, and returns every byte received', () => {
      const p = createTcpFrameParser();
      expect(p.push(FRAME.subarray(0, 2))).toEqual({ done: false });
      const bad = Buffer.from([0x04, 0x00, 0xff]);
      const step = done(p.push(bad));
      expect(step.result).toMatchObject({ ok: false, reason: 'not_mx' });
      expect(step.rest.equals(Buffer.concat([FRAME.subarray(0, 2), bad]))).toBe(true);
    });

    it('refuses a frame whose length exceeds maxBytes before buffering it', () => {
      const p = createTcpFrameParser({ maxBytes: 100 });
      const step = done(p.push(FRAME.subarray(0, 8)));
      expect(step.result).toMatchObject({ ok: false, reason: 'too_large' });
      expect(step.rest.length).toBe(8);
    });

    it.each([
      ['an Any that is not protobuf', frameOf(Buffer.from([0xff, 0xff, 0xff])), 'bad_frame'],
      ['an Any of another type', frameOf(Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63])), 'bad_frame'],
      ['a Struct without x-envoy-peer-metadata', frameOf(encodeAnyStruct(encodeStruct({ 'x-envoy-peer-metadata-id': 'id' }))), 'bad_frame'],
      ['x-envoy-peer-metadata that is a string', frameOf(encodeAnyStruct(encodeStruct({ 'x-envoy-peer-metadata': 'x' }))), 'not_struct'],
      ['an Any whose value is not a Struct', frameOf(encodeAnyStruct(Buffer.from([0x0f]))), 'not_struct'],
    ])('consumes a whole but malformed frame: %s → %s', (_n, frame, reason) => {
      const step = done(createTcpFrameParser().push(Buffer.concat([frame, APP])));
      expect(step.result).toMatchObject({ ok: false, reason });
      expect(step.rest.equals(APP)).toBe(true);
    });

    it('ignores empty chunks', () => {
      const p = createTcpFrameParser();
      expect(p.push(Buffer.alloc(0))).toEqual({ done: false });
      expect(done(p.push(FRAME)).result.ok).toBe(true);
    });
  });

  describe('.end()', () => {
    it.each([0, 3, 8, 100])('gives truncated with every byte received after %i bytes', (n) => {
      const p = createTcpFrameParser();
      if (n > 0) expect(p.push(FRAME.subarray(0, n))).toEqual({ done: false });
      const step = done(p.end());
      expect(step.result).toMatchObject({ ok: false, reason: 'truncated' });
      expect(step.rest.equals(FRAME.subarray(0, n))).toBe(true);
    });

    it('repeats the result once the frame is done', () => {
      const p = createTcpFrameParser();
      const first = done(p.push(FRAME));
      expect(done(p.end()).result).toBe(first.result);
    });
  });
});

describe('encodeTcpFrame()', () => {
  it('writes the magic and the big-endian payload length', () => {
    const f = encodeTcpFrame(ratings(), 'id', 'reduced-identity');
    expect(f.readUInt32BE(0)).toBe(0x3d230467);
    expect(f.readUInt32BE(4)).toBe(f.length - 8);
  });
});

/**
 * Property tests: random bytes and random mutations of the real vectors never make a decoder throw and
 * always terminate (the frame parser across random chunk splits), and valid metadata round-trips.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeMxHeader, encodeMxHeader } from '../../src/metadata/mx-header.js';
import { decodeBaggage, encodeBaggage } from '../../src/metadata/baggage.js';
import { createTcpFrameParser, encodeTcpFrame } from '../../src/metadata/tcp-frame.js';
import type { TcpParseStep } from '../../src/metadata/tcp-frame.js';
import { tryParseNodeId, formatNodeId } from '../../src/metadata/node-id.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { parseDownwardApi } from '../../src/metadata/downward-api.js';
import type { PeerResult, UnknownPeerReason } from '../../src/metadata/types.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { UNKNOWN_PEER_REASONS } from '../../src/metadata/types.js';
import { vector } from './fixtures.js';

const RUNS = { numRuns: 300 };
const REASONS: ReadonlySet<UnknownPeerReason> = new Set(UNKNOWN_PEER_REASONS);

/** A result is well-formed: a frozen peer of strings, or a known reason. */
function expectWellFormed(r: PeerResult): void {
  if (r.ok) {
    expect(Object.isFrozen(r.peer)).toBe(true);
    for (const k of ['name', 'namespace', 'cluster', 'workload', 'canonicalService', 'canonicalRevision', 'app', 'version', 'identity'] as const) {
      expect(typeof r.peer[k]).toBe('string');
    }
  } else {
    expect(REASONS.has(r.reason)).toBe(true);
  }
}

type Mutation = { pos: number; op: 'set' | 'insert' | 'delete'; byte: number };
const mutations = fc.array(
  fc.record({ pos: fc.nat(), op: fc.constantFrom<'set' | 'insert' | 'delete'>('set', 'insert', 'delete'), byte: fc.integer({ min: 0, max: 255 }) }),
  { minLength: 1, maxLength: 8 },
);

function mutate(base: Buffer, ms: Mutation[]): Buffer {
  const out = [...base];
  for (const m of ms) {
    const at = out.length === 0 ? 0 : m.pos % (out.length + (m.op === 'insert' ? 1 : 0));
    if (m.op === 'set' && out.length > 0) out[at] = m.byte;
    else if (m.op === 'insert') out.splice(at, 0, m.byte);
    else if (m.op === 'delete' && out.length > 0) out.splice(at, 1);
  }
  return Buffer.from(out);
}

/** Split `bytes` at the given cut points. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

/** Feed chunks then half-close; the parser must finish and never hand back more bytes than it got. */
function runParser(chunks: Buffer[], maxBytes?: number): Extract<TcpParseStep, { done: true }> {
  const p = createTcpFrameParser(maxBytes === undefined ? {} : { maxBytes });
  let first: Extract<TcpParseStep, { done: true }> | undefined;
  let passed = 0;
  const total = chunks.reduce((n, c) => n + c.length, 0);
  for (const c of chunks) {
    const step = p.push(c);
    if (step.done) {
      if (first) passed += step.rest.length;
      else {
        first = step;
        passed += step.rest.length;
      }
    }
  }
  const end = p.end();
  expect(end.done).toBe(true);
  const result = first ?? (end as Extract<TcpParseStep, { done: true }>);
  expect(passed + (first ? 0 : result.rest.length)).toBeLessThanOrEqual(total);
  return result;
}

describe('decoders under random input', () => {
  // The real vectors: the Go-ordered flat header [0], the 1.24 reduced header [9], the ≤1.23 flat header [10].
  const mxValues = [vector(0).value, vector(9).value, vector(10).value];

  it('decodeMxHeader never throws on arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 600 }), (s) => expectWellFormed(decodeMxHeader(s))), RUNS);
  });

  it('decodeMxHeader never throws on base64 of random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => expectWellFormed(decodeMxHeader(Buffer.from(b).toString('base64')))), RUNS);
  });

  it('decodeMxHeader never throws on mutations of the real vectors', () => {
    fc.assert(
      fc.property(fc.constantFrom(...mxValues), mutations, (v, ms) => {
        expectWellFormed(decodeMxHeader(mutate(Buffer.from(v, 'base64'), ms).toString('base64')));
        expectWellFormed(decodeMxHeader(mutate(Buffer.from(v), ms).toString('latin1')));
      }),
      RUNS,
    );
  });

  it('decodeBaggage never throws on arbitrary strings and mutations of the real vectors', () => {
    const baggage = [3, 4, 5, 6, 8].map((i) => vector(i).value);
    fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => expectWellFormed(decodeBaggage(s))), RUNS);
    fc.assert(
      fc.property(fc.constantFrom(...baggage), mutations, (v, ms) => expectWellFormed(decodeBaggage(mutate(Buffer.from(v), ms).toString('latin1')))),
      RUNS,
    );
  });

  it('the frame parser finishes on random bytes in random chunks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 6 }), (b, cuts) => {
        expectWellFormed(runParser(split(Buffer.from(b), cuts)).result);
      }),
      RUNS,
    );
  });

  it('the frame parser finishes on mutations of the real frame in random chunks', () => {
    const frame = Buffer.from(vector(11).value, 'hex');
    fc.assert(
      fc.property(mutations, fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom(undefined, 64, 100_000), (ms, cuts, maxBytes) => {
        expectWellFormed(runParser(split(mutate(frame, ms), cuts), maxBytes).result);
      }),
      RUNS,
    );
  });

  it('a frame with a random 4-byte header prefix still parses or fails with a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.uint8Array({ maxLength: 300 }), (header, body) => {
        expectWellFormed(runParser([Buffer.concat([Buffer.from([0x3d, 0x23, 0x04, 0x67]), header.subarray(4), body])]).result);
      }),
      RUNS,
    );
  });

  it('tryParseNodeId never throws and parseDownwardApi only throws ConfigErrors', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        tryParseNodeId(s);
        try {
          parseDownwardApi(s);
        } catch (err) {
          expect(isMeshtelError(err, 'MESHTEL_ERR_CONFIG_FILE')).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('round trips of valid metadata', () => {
  const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?$/);
  // Label text: any printable string (Unicode included), no control characters.
  // eslint-disable-next-line no-control-regex
  const text = fc.string({ unit: 'grapheme', maxLength: 20 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s));
  const workloadFields = fc.record({
    name: dnsLabel,
    namespace: dnsLabel,
    workload: dnsLabel,
    cluster: text,
    workloadType: fc.constantFrom('pod', 'deployment', 'job', 'cronjob', 'unknown' as const),
    labels: fc.dictionary(text.filter((s) => s !== ''), text, { maxKeys: 6 }),
    region: text,
    zone: text,
    serviceAccount: dnsLabel,
    instanceIps: fc.array(fc.ipV4(), { minLength: 1, maxLength: 2 }),
  });

  it('every profile decodes back to the fields it carries', () => {
    fc.assert(
      fc.property(workloadFields, fc.constantFrom('flat', 'reduced', 'reduced-identity' as const), (fields, profile) => {
        const meta = createWorkloadMetadata(fields);
        const r = decodeMxHeader(encodeMxHeader(meta, profile), { maxBytes: 1 << 20 });
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.peer).toMatchObject({ name: meta.name, namespace: meta.namespace, workload: meta.workload, cluster: meta.cluster, canonicalService: meta.canonicalService, canonicalRevision: meta.canonicalRevision });
        expect(r.peer.workloadType).toBe(meta.workloadType);
        expect(r.peer.identity).toBe(profile === 'reduced-identity' ? meta.identity : '');
      }),
      RUNS,
    );
  });

  it('the TCP frame decodes back to its peer and node id whatever the chunking', () => {
    fc.assert(
      fc.property(workloadFields, fc.array(fc.nat(), { maxLength: 5 }), (fields, cuts) => {
        const meta = createWorkloadMetadata(fields);
        const id = formatNodeId(meta);
        const step = runParser(split(encodeTcpFrame(meta, id, 'reduced-identity'), cuts), 1 << 20);
        expect(step.peerId).toBe(id);
        expect(step.result).toMatchObject({ ok: true, peer: { name: meta.name, identity: meta.identity } });
      }),
      RUNS,
    );
  });

  it('baggage decodes back to what it encodes when values avoid its separators', () => {
    const token = fc.stringMatching(/^[a-z0-9][-a-z0-9.]{0,12}$/);
    fc.assert(
      fc.property(fc.record({ namespace: dnsLabel, workload: token, cluster: token, canonicalService: token, canonicalRevision: token, region: token, zone: token }), (f) => {
        const meta = createWorkloadMetadata({ ...f, name: 'p', workloadType: 'deployment' });
        expect(meta.name).toBe('p');
        const r = decodeBaggage(encodeBaggage(meta));
        expect(r).toMatchObject({ ok: true, peer: { namespace: meta.namespace, workload: meta.workload, workloadType: 'deployment', cluster: meta.cluster, canonicalService: meta.canonicalService, canonicalRevision: meta.canonicalRevision, region: meta.region, zone: meta.zone } });
      }),
      RUNS,
    );
  });
});

import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { decodeMxHeader, encodeMxHeader, mxStruct } from '../../src/metadata/mx-header.js';
import { encodeStruct } from '../../src/metadata/struct-codec.js';
import type { EncodableStruct } from '../../src/metadata/struct-codec.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import type { PeerResult } from '../../src/metadata/types.js';
import { productpageReduced } from './fixtures.js';

/** The 1.24 header of the client workload (byte-identical to fixture vector [9], see vectors.test.ts). */
const REDUCED_HEADER = encodeMxHeader(productpageReduced(), 'reduced');

const b64 = (bytes: Uint8Array | number[]): string => Buffer.from(bytes).toString('base64');

/** A Struct nested `depth` levels deep through struct_value: {a:{a:{...}}}. */
function nested(depth: number): EncodableStruct {
  let s: EncodableStruct = { leaf: 'x' };
  for (let i = 1; i < depth; i++) s = { a: s };
  return s;
}

/** Serialize a Struct with arbitrary Value kinds through protobufjs' own encoder (what another implementation could send). */
function structWithValues(fields: Record<string, unknown>): string {
  const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto') as protobuf.INamespace);
  const S = root.lookupType('google.protobuf.Struct');
  return b64(S.encode(S.fromObject({ fields })).finish());
}

describe('decodeMxHeader()', () => {
  const reduced = REDUCED_HEADER;

  describe('bad input gives a typed "no peer", never an exception', () => {
    it.each([
      ['garbled base64', 'not base64 at all!', 'bad_base64'],
      ['URL-safe alphabet', reduced.replace(/\+/g, '-').replace(/\//g, '_') + '-_', 'bad_base64'],
      ['padding in the middle', 'Ch4K=Ch4K', 'bad_base64'],
      ['impossible length (4n+1)', 'Ch4KC', 'bad_base64'],
      ['unpadded then too much padding', 'Ch4===', 'bad_base64'],
      ['base64 of text, not a Struct', b64(Buffer.from('hello, world')), 'not_struct'],
      ['truncated value (cut in the middle of a field)', reduced.slice(0, 40), 'not_struct'],
      ['an invalid wire type (7)', b64([0x0f, 0x01]), 'not_struct'],
      ['a length running past the end', b64([0x0a, 0x10, 0x0a, 0x01]), 'not_struct'],
      ['empty value', '', 'not_struct'],
      ['oversized value', 'A'.repeat(8193), 'too_large'],
      ['deep nesting', b64(encodeStruct(nested(20))), 'too_deep'],
      ['protobufjs recursion limit (60 levels)', b64(encodeStruct(nested(60))), 'too_deep'],
      ['NAMESPACE that is a number', structWithValues({ NAMESPACE: { numberValue: 3 } }), 'not_struct'],
      ['LABELS that is a string', structWithValues({ LABELS: { stringValue: 'app=x' } }), 'not_struct'],
      ['a label value that is a bool', structWithValues({ LABELS: { structValue: { fields: { app: { boolValue: true } } } } }), 'not_struct'],
      ['invalid UTF-8 in a key', b64([0x0a, 0x06, 0x0a, 0x02, 0xc3, 0x28, 0x12, 0x00]), 'not_struct'],
    ])('%s → %s', (_name, value, reason) => {
      const r = decodeMxHeader(value);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toBe(reason);
    });

    it('returns bad_base64 for a value that is not a string at all', () => {
      expect(decodeMxHeader(42 as unknown as string)).toMatchObject({ ok: false, reason: 'bad_base64' });
    });
  });

  describe('options', () => {
    it('applies a custom maxBytes', () => {
      expect(decodeMxHeader(reduced, { maxBytes: 100 })).toMatchObject({ ok: false, reason: 'too_large' });
      expect(decodeMxHeader(reduced, { maxBytes: reduced.length }).ok).toBe(true);
    });

    it('applies a custom maxDepth (Istio payloads need 2)', () => {
      expect(decodeMxHeader(reduced, { maxDepth: 1 })).toMatchObject({ ok: false, reason: 'too_deep' });
      expect(decodeMxHeader(reduced, { maxDepth: 2 }).ok).toBe(true);
    });
  });

  describe('lenient where Istio is', () => {
    it('ignores unknown keys and non-string values under unknown keys (full node metadata)', () => {
      const value = structWithValues({
        NAMESPACE: { stringValue: 'ns' },
        PROXY_CONFIG: { structValue: { fields: { concurrency: { numberValue: 2 } } } },
        SOME_LIST: { listValue: { values: [{ stringValue: 'a' }, { nullValue: 0 }] } },
      });
      expect(decodeMxHeader(value)).toMatchObject({ ok: true, peer: { namespace: 'ns' } });
    });

    it('accepts an empty Struct as a peer with every field empty', () => {
      const r = decodeMxHeader(b64(encodeStruct({ LABELS: {} })));
      expect(r).toMatchObject({ ok: true, peer: { namespace: '', workloadType: 'unknown', app: '' } });
    });

    it('prefers app.kubernetes.io/name and /version over app and version, as 1.29 does', () => {
      const value = b64(encodeStruct({ LABELS: { app: 'plain', 'app.kubernetes.io/name': 'qualified', version: 'v1', 'app.kubernetes.io/version': 'v2' } }));
      expect(decodeMxHeader(value)).toMatchObject({ ok: true, peer: { app: 'qualified', version: 'v2' } });
    });

    it('keeps a __proto__ label as data without touching the prototype', () => {
      const labels = JSON.parse('{"__proto__":"x","app":"a"}') as EncodableStruct;
      const r = decodeMxHeader(b64(encodeStruct({ LABELS: labels })));
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(Object.keys(r.peer.labels)).toContain('__proto__');
        expect(({} as Record<string, unknown>).x).toBeUndefined();
      }
    });
  });
});

describe('encodeMxHeader()', () => {
  it('pads with = as Envoy Base64::encode does', () => {
    expect(REDUCED_HEADER.endsWith('==')).toBe(true);
    expect(encodeMxHeader(productpageReduced(), 'reduced')).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
  });

  it('always sends LABELS, even empty (2a 00)', () => {
    const meta = createWorkloadMetadata({ name: 'p', namespace: 'ns', workload: 'w', owner: '', canonicalService: '', canonicalRevision: '' });
    expect(mxStruct(meta, 'reduced').LABELS).toEqual({});
    expect(Buffer.from(encodeMxHeader(meta, 'reduced'), 'base64').includes(Buffer.from([0x2a, 0x00]))).toBe(true);
  });

  it.each([
    ['kubernetes://apis/apps/v1/namespaces/ns/statefulsets/db', 'db'],
    ['kubernetes://apis/apps/v1/namespaces/ns/daemonsets/agent', 'agent'],
    ['kubernetes://apis/apps/v1/namespaces/ns/replicasets/rs', 'rs'],
  ])('omits OWNER for an owner Istio does not recognise: %s', (owner, workload) => {
    const meta = createWorkloadMetadata({ name: `${workload}-0`, namespace: 'ns', workload, owner });
    expect(meta.workloadType).toBe('unknown');
    expect(mxStruct(meta, 'reduced')).not.toHaveProperty('OWNER');
    expect(mxStruct(meta, 'flat').OWNER).toBe(owner);
  });

  it('rebuilds OWNER from the parsed type (apps/v1 path even for a CronJob)', () => {
    const meta = createWorkloadMetadata({ name: 'j-1', namespace: 'ns', workload: 'nightly', owner: 'kubernetes://apis/batch/v1/namespaces/ns/cronjobs/nightly' });
    expect(meta.workloadType).toBe('cronjob');
    expect(mxStruct(meta, 'reduced').OWNER).toBe('kubernetes://apis/apps/v1/namespaces/ns/cronjobs/nightly');
  });

  it('sorts keys bytewise even when a label key looks like an integer', () => {
    const meta = createWorkloadMetadata({ name: 'p', namespace: 'ns', labels: { b: '1', '10': 'x', '9': 'y', a: '2' } });
    const bytes = Buffer.from(encodeMxHeader(meta, 'flat'), 'base64');
    const at = (k: string): number => bytes.indexOf(Buffer.from(k));
    // Bytewise: "10" < "9" < "a" < "b" (JS Object.keys would put 9 before 10 and both first).
    expect(at('\x0a\x02' + '10')).toBeLessThan(at('\x0a\x01' + '9'));
    expect(at('\x0a\x01' + '9')).toBeLessThan(at('\x0a\x01a'));
  });

  it('encodes with the 1.29 app rule under reduced-identity only', () => {
    const meta = createWorkloadMetadata({ name: 'p', namespace: 'ns', labels: { app: 'plain', 'app.kubernetes.io/name': 'qualified' } });
    expect(meta.app).toBe('plain');
    expect((mxStruct(meta, 'reduced').LABELS as Record<string, string>).app).toBe('plain');
    expect((mxStruct(meta, 'reduced-identity').LABELS as Record<string, string>).app).toBe('qualified');
  });
});

describe('additional labels (PILOT_MX_ADDITIONAL_LABELS, 1.25+)', () => {
  const meta = createWorkloadMetadata({
    name: 'p',
    namespace: 'ns',
    labels: { app: 'a', team: 'payments', tier: 'gold', 'app.kubernetes.io/name': 'q' },
  });

  it('adds the named pod labels to LABELS in reduced profiles and they decode back', () => {
    const opts = { additionalLabels: ['team', 'missing'] };
    expect(mxStruct(meta, 'reduced', opts).LABELS).toEqual({
      app: 'a',
      team: 'payments',
      'service.istio.io/canonical-name': 'q',
      'service.istio.io/canonical-revision': 'latest',
    });
    expect(decodeMxHeader(encodeMxHeader(meta, 'reduced-identity', opts))).toMatchObject({ ok: true, peer: { labels: { team: 'payments' } } });
  });

  it('never lets an additional label override a standard one', () => {
    expect((mxStruct(meta, 'reduced-identity', { additionalLabels: ['app', 'app.kubernetes.io/name'] }).LABELS as Record<string, string>).app).toBe('q');
    expect(mxStruct(meta, 'reduced-identity', { additionalLabels: ['app.kubernetes.io/name'] }).LABELS).not.toHaveProperty('app.kubernetes.io/name');
  });

  it('changes nothing without the option', () => {
    expect(encodeMxHeader(meta, 'reduced', { additionalLabels: [] })).toBe(encodeMxHeader(meta, 'reduced'));
  });
});

describe('1.29 profiles', () => {
  it('reduced-1.29 (the default) sends neither IDENTITY nor locality over HTTP; the TCP frame carries locality', () => {
    const meta = createWorkloadMetadata({ ...productpageReduced(), identity: undefined, serviceAccount: 'bookinfo-productpage', region: 'us-east4', zone: 'us-east4-b' });
    const s = mxStruct(meta, 'reduced-1.29');
    expect(Object.keys(s).sort()).toEqual(['CLUSTER_ID', 'LABELS', 'NAME', 'NAMESPACE', 'OWNER', 'WORKLOAD_NAME']);
    expect(mxStruct(meta, 'reduced-1.29', { locality: true })).toMatchObject({ REGION: 'us-east4', AVAILABILITY_ZONE: 'us-east4-b' });
    expect(mxStruct(meta, 'reduced-1.29', { locality: true })).not.toHaveProperty('IDENTITY');
    // Locality is a 1.29 addition: the 1.24 profile ignores it even when asked.
    expect(mxStruct(meta, 'reduced', { locality: true })).not.toHaveProperty('REGION');
  });

  it('reduced-identity adds IDENTITY to the HTTP header (locality only in the TCP frame) and decodes it back', () => {
    const meta = createWorkloadMetadata({ ...productpageReduced(), identity: undefined, serviceAccount: 'bookinfo-productpage', region: 'us-east4', zone: 'us-east4-b' });
    const r = decodeMxHeader(encodeMxHeader(meta, 'reduced-identity'));
    expect(r.ok && r.profile).toBe('reduced-identity');
    expect(peerOf(r)).toMatchObject({ identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage', region: '', zone: '' });
    expect(mxStruct(meta, 'reduced-identity', { locality: true })).toMatchObject({ REGION: 'us-east4', AVAILABILITY_ZONE: 'us-east4-b' });
    // The 1.24 profile carries neither.
    expect(peerOf(decodeMxHeader(encodeMxHeader(meta, 'reduced')))).toMatchObject({ identity: '', region: '' });
  });
});

function peerOf(r: PeerResult) {
  if (!r.ok) throw new Error(`expected a peer, got ${r.reason}`);
  return r.peer;
}

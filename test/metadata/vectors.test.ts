/**
 * Every metadata-exchange vector of test/fixtures/mx-vectors.json: decoding gives the documented
 * fields, and encoding those fields with the matching profile reproduces the value byte for byte.
 */
import { describe, expect, it } from 'vitest';
import { decodeMxHeader, encodeMxHeader, HEADER_PEER_METADATA, HEADER_PEER_METADATA_ID } from '../../src/metadata/mx-header.js';
import { decodeStruct } from '../../src/metadata/struct-codec.js';
import { decodeBaggage, encodeBaggage, HEADER_BAGGAGE } from '../../src/metadata/baggage.js';
import { createTcpFrameParser, encodeTcpFrame, MX_MAGIC } from '../../src/metadata/tcp-frame.js';
import { parseNodeId } from '../../src/metadata/node-id.js';
import { formatEndpointMetadata, parseEndpointMetadata, serializePeerAsString } from '../../src/metadata/endpoint-metadata.js';
import type { PeerResult } from '../../src/metadata/types.js';
import { productpageFlat, productpageReduced, ratings, RATINGS_NODE_ID, vector } from './fixtures.js';

function peerOf(r: PeerResult) {
  if (!r.ok) throw new Error(`expected a peer, got ${r.reason} (${r.detail ?? ''})`);
  return r.peer;
}

describe('mx-vectors.json', () => {
  describe('[0] real Go-ordered, unpadded SampleIstioHeader', () => {
    const v = vector(0);

    it('is the header the vector says it is, unpadded', () => {
      expect(v.header).toBe(HEADER_PEER_METADATA);
      expect(v.value.endsWith('=')).toBe(false);
      expect(v.value.length % 4).not.toBe(0);
    });

    it('decodes to the documented struct, keys in Go wire order', () => {
      const s = decodeStruct(Buffer.from(v.value, 'base64'), 8);
      expect(s.ok).toBe(true);
      if (!s.ok) return;
      const decoded = v.decoded as { struct: Record<string, unknown>; key_order_on_wire: string[] };
      expect(JSON.parse(JSON.stringify(s.fields))).toEqual(decoded.struct);
      expect(Object.keys(s.fields)).toEqual(decoded.key_order_on_wire);
    });

    it('decodes as a flat-node peer with the fields Envoy derives (namespace default)', () => {
      const r = decodeMxHeader(v.value);
      expect(r.ok && r.profile).toBe('flat');
      expect(peerOf(r)).toMatchObject({
        name: 'productpage-v1-84975bc778-pxz2w',
        namespace: 'default',
        workload: 'productpage-v1',
        workloadType: 'deployment',
        cluster: 'client-cluster',
        canonicalService: 'productpage-v1',
        canonicalRevision: 'version-1',
        app: 'productpage',
        version: 'v1',
        identity: '',
      });
    });

    it('decodes the same when padded', () => {
      const padded = v.value + '='.repeat((4 - (v.value.length % 4)) % 4);
      expect(decodeMxHeader(padded)).toEqual(decodeMxHeader(v.value));
    });
  });

  describe('[1] real peer id', () => {
    it('is an opaque id header value', () => {
      expect(vector(1).header).toBe(HEADER_PEER_METADATA_ID);
      expect(vector(1).value).toBe('client');
    });
  });

  describe('[2] real node id', () => {
    it('parses into the documented parts', () => {
      expect(parseNodeId(vector(2).value)).toEqual({
        type: 'sidecar',
        ip: '1.1.1.1',
        podName: 'test',
        namespace: 'default',
        dnsDomain: 'default.svc.cluster.local',
      });
    });
  });

  describe('[3] real clientBaggage', () => {
    const v = vector(3);
    it('is produced byte for byte from the client workload', () => {
      expect(v.header).toBe(HEADER_BAGGAGE);
      expect(encodeBaggage(productpageReduced())).toBe(v.value);
    });
    it('decodes to the documented fields', () => {
      expect(peerOf(decodeBaggage(v.value))).toMatchObject({
        workloadType: 'deployment',
        workload: 'productpage-v1',
        canonicalService: 'productpage-v1',
        app: 'productpage',
        canonicalRevision: 'version-1',
        version: 'v1',
        namespace: 'default',
        cluster: 'client-cluster',
        name: 'productpage-v1-84975bc778-pxz2w',
      });
    });
    it('re-encodes from its own decoding', () => {
      expect(encodeBaggage(peerOf(decodeBaggage(v.value)))).toBe(v.value);
    });
  });

  describe('[4] real testBaggage (app/version filled from service)', () => {
    it('gives the metric labels of client_request_total_baggage', () => {
      expect(peerOf(decodeBaggage(vector(4).value))).toMatchObject({
        workload: 'curl',
        canonicalService: 'curl',
        canonicalRevision: 'v1',
        namespace: 'default',
        app: 'curl',
        version: 'v1',
        cluster: 'curl-cluster',
        identity: '',
      });
    });
  });

  describe.each([
    [5, { canonicalService: 'foo-service', canonicalRevision: 'v1alpha3', workloadType: 'deployment', workload: 'foo', name: '', namespace: 'default', cluster: 'my-cluster', app: 'foo-app', version: 'latest' }],
    [6, { canonicalService: 'foo-service', canonicalRevision: 'v1beta2', workloadType: 'pod', workload: 'foo-pod-435', name: 'foo-instance-435', namespace: 'test', cluster: 'my-cluster', app: 'foo-service', version: 'v1beta2' }],
    [8, { cluster: 'Kubernetes', namespace: 'default', workloadType: 'deployment', workload: 'httpbin', canonicalService: 'httpbin', canonicalRevision: 'v1' }],
  ] as const)('[%i] baggage conversion vector', (i, fields) => {
    it('decodes to the documented fields', () => {
      expect(peerOf(decodeBaggage(vector(i).value))).toMatchObject(fields);
    });
  });

  describe('[9] derived 1.24+ reduced header', () => {
    const v = vector(9);
    it('is reproduced byte for byte with the reduced profile', () => {
      expect(encodeMxHeader(productpageReduced(), 'reduced')).toBe(v.value);
    });
    it('decodes to the documented struct', () => {
      const s = decodeStruct(Buffer.from(v.value, 'base64'), 8);
      expect(s.ok && JSON.parse(JSON.stringify(s.fields))).toEqual((v.decoded as { struct: unknown }).struct);
      const r = decodeMxHeader(v.value);
      expect(r.ok && r.profile).toBe('reduced');
      expect(peerOf(r)).toMatchObject({ workloadType: 'deployment', canonicalService: 'productpage-v1', app: 'productpage' });
    });
  });

  describe('[10] derived ≤1.23 flat header', () => {
    const v = vector(10);
    it('is reproduced byte for byte with the flat profile', () => {
      expect(encodeMxHeader(productpageFlat(), 'flat')).toBe(v.value);
    });
    it('decodes to the documented struct', () => {
      const s = decodeStruct(Buffer.from(v.value, 'base64'), 8);
      expect(s.ok && JSON.parse(JSON.stringify(s.fields))).toEqual((v.decoded as { struct: unknown }).struct);
      expect(peerOf(decodeMxHeader(v.value)).labels).toMatchObject({ role: 'client', 'pod-template-hash': '84975bc778' });
    });
  });

  describe('[11] derived TCP istio-peer-exchange frame', () => {
    const v = vector(11);
    const bytes = Buffer.from(v.value, 'hex');
    it('is reproduced byte for byte', () => {
      expect(encodeTcpFrame(ratings(), RATINGS_NODE_ID, 'reduced').toString('hex')).toBe(v.value);
    });
    it('has the documented header and parses to the server peer and its id', () => {
      expect(bytes.readUInt32BE(0)).toBe(MX_MAGIC);
      expect(bytes.readUInt32BE(4)).toBe(0x223);
      const step = createTcpFrameParser().push(bytes);
      expect(step.done).toBe(true);
      if (!step.done) return;
      expect(step.peerId).toBe(RATINGS_NODE_ID);
      expect(step.rest.length).toBe(0);
      expect(peerOf(step.result)).toMatchObject({ name: 'ratings-v1-84975bc778-pxz2w', workload: 'ratings-v1', cluster: 'server-cluster', canonicalService: 'ratings' });
    });
  });
});

describe('mx-vectors.json [7] endpoint metadata (client fallback)', () => {
  const v = vector(7);
  it('parses into the documented peer and serializes as Istio does', () => {
    const peer = parseEndpointMetadata(v.value);
    expect(peer).toMatchObject({ workload: 'foo-pod', namespace: 'default', canonicalService: 'foo-service', canonicalRevision: 'v1', cluster: 'my-cluster', app: '', workloadType: 'unknown' });
    expect(serializePeerAsString(peer!)).toBe((v.decoded as { serializeAsString: string }).serializeAsString);
    expect(formatEndpointMetadata(peer!)).toBe(v.value);
  });

  it('sends the revision latest as "" and ignores values with fewer than 5 parts', () => {
    const peer = parseEndpointMetadata('w;ns;svc;;c');
    expect(peer?.canonicalRevision).toBe('');
    expect(formatEndpointMetadata({ ...peer!, canonicalRevision: 'latest' })).toBe('w;ns;svc;;c');
    expect(parseEndpointMetadata('w;ns;svc;v1')).toBeUndefined();
  });
});

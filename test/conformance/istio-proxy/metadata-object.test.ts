/**
 * istio/proxy extensions/common/metadata_object_test.cc (release-1.29) data values replayed against meshtel's
 * codecs: every `convertBaggageToWorkloadMetadata` case (baggage → the fields `getField` returns) and the
 * `convertEndpointMetadata` cases (too few parts → none; five parts → serializeAsString), `SerializeAsString`,
 * `ConvertFromEmpty`, `ConversionWithLabels` and Conversion's first case (baggage plus the certificate's identity).
 * fixtures/metadata-object.json. Not compared: `checkStructConversion`'s object → Struct → object round trip, because
 * meshtel never turns a received peer back into a Struct (Envoy does so for filter state; meshtel's expressions read
 * the peer itself).
 */
import { describe, expect, it } from 'vitest';
import { decodeBaggage } from '../../../src/metadata/baggage.js';
import { parseEndpointMetadata, serializePeerAsString } from '../../../src/metadata/endpoint-metadata.js';
import { decodeMxHeader, encodeMxHeader, peerFromStruct } from '../../../src/metadata/mx-header.js';
import { createScope } from '../../../src/stats/attributes.js';
import { compileExpression } from '../../../src/stats/expression.js';
import { createWorkloadMetadata } from '../../../src/index.js';
import type { PeerMetadata } from '../../../src/index.js';
import { fixture } from './support.js';

/** A WorkloadMetadataObject's constructor arguments, as the C++ test writes them. */
interface ObjectArgs {
  instance_name: string;
  cluster_name: string;
  namespace_name: string;
  workload_name: string;
  canonical_name: string;
  canonical_revision: string;
  app_name: string;
  app_version: string;
  workload_type: PeerMetadata['workloadType'];
  identity: string;
  region: string;
  zone: string;
}
interface MetadataObjectFixture {
  commit: string;
  serializeAsString: Array<{ object: ObjectArgs; string: string }>;
  conversionWithLabels: { object: ObjectArgs; labels: Record<string, string>; cases: Array<{ additionalLabels: string[]; labels: number }> };
  convertFromEmpty: { struct: Record<string, never>; serializeAsString: string };
  conversionWithIdentity: { baggage: string; identity: string; fields: Record<string, string> };
  baggage: Array<{ baggage: string; fields: Record<string, string> }>;
  endpointMetadata: Array<{ value: string; valid: boolean; serializeAsString?: string }>;
}
const M = fixture<MetadataObjectFixture>('metadata-object.json');

/** WorkloadMetadataObject::getField names → PeerMetadata. */
function field(p: PeerMetadata, name: string): string {
  const map: Record<string, string> = {
    service: p.canonicalService,
    revision: p.canonicalRevision,
    app: p.app,
    version: p.version,
    workload: p.workload,
    name: p.name,
    namespace: p.namespace,
    cluster: p.cluster,
    type: p.workloadType,
  };
  const v = map[name];
  if (v === undefined) throw new Error(`no field ${name}`);
  return v;
}

/** The peer a WorkloadMetadataObject with these arguments stands for. */
function peerOf(o: ObjectArgs, labels: Record<string, string> = {}): PeerMetadata {
  return {
    name: o.instance_name,
    namespace: o.namespace_name,
    cluster: o.cluster_name,
    workload: o.workload_name,
    workloadType: o.workload_type,
    canonicalService: o.canonical_name,
    canonicalRevision: o.canonical_revision,
    app: o.app_name,
    version: o.app_version,
    identity: o.identity,
    region: o.region,
    zone: o.zone,
    labels,
    owner: '',
    meshId: '',
  } as PeerMetadata;
}

describe(`metadata_object_test.cc (release-1.29@${M.commit.slice(0, 8)})`, () => {
  it.each(M.baggage)('ConvertFromBaggage $baggage', ({ baggage, fields }) => {
    const r = decodeBaggage(baggage);
    if (!r.ok) throw new Error(`refused: ${r.reason}`);
    expect(Object.fromEntries(Object.keys(fields).map((k) => [k, field(r.peer, k)]))).toEqual(fields);
  });

  it.each(M.endpointMetadata)('ConvertFromEndpointMetadata "$value"', ({ value, valid, serializeAsString }) => {
    const p = parseEndpointMetadata(value);
    if (!valid) {
      expect(p).toBeUndefined();
      return;
    }
    expect(p).toBeDefined();
    expect(serializePeerAsString(p!)).toBe(serializeAsString);
  });

  it.each(M.serializeAsString)('SerializeAsString $string', ({ object, string }) => {
    expect(serializePeerAsString(peerOf(object))).toBe(string);
  });

  it('ConvertFromEmpty: an empty Struct is a peer whose serializeAsString is empty', () => {
    const r = peerFromStruct(M.convertFromEmpty.struct);
    if (!r.ok) throw new Error(`refused: ${r.reason}`);
    expect(serializePeerAsString(r.peer)).toBe(M.convertFromEmpty.serializeAsString);
  });

  it('Conversion with an identity: the baggage fields; the identity stays the certificate\'s (peerPrincipal)', () => {
    const { baggage, fields } = M.conversionWithIdentity;
    const r = decodeBaggage(baggage);
    if (!r.ok) throw new Error(`refused: ${r.reason}`);
    expect(Object.fromEntries(Object.keys(fields).map((k) => [k, field(r.peer, k)]))).toEqual(fields);
    // Envoy passes the certificate's SAN into the object; meshtel reports it from the connection, never from
    // baggage: the principal labels are the same (docs/compatibility.md, labels per Istio version).
    expect(r.peer.identity).toBe('');
  });

  describe('ConversionWithLabels', () => {
    const { object, labels, cases } = M.conversionWithLabels;
    const sender = createWorkloadMetadata({
      name: object.instance_name,
      namespace: object.namespace_name,
      cluster: object.cluster_name,
      workload: object.workload_name,
      workloadType: object.workload_type,
      canonicalService: object.canonical_name,
      canonicalRevision: object.canonical_revision,
      labels,
    });
    /** Labels the receiver holds besides the standard ones (Envoy's getLabels()), as tag expressions see them. */
    const labelCount = (additionalLabels: string[]): number => {
      const r = decodeMxHeader(encodeMxHeader(sender, 'reduced-1.29', { additionalLabels }));
      if (!r.ok) throw new Error(`refused: ${r.reason}`);
      const scope = createScope(sender, { reporter: 'destination', peer: r.peer, peerPrincipal: '', localPrincipal: '', service: null }, undefined, 'destination');
      const size = compileExpression('size(filter_state.downstream_peer.labels)').evaluate(scope);
      // No labels: the field is absent, as Envoy's serializeAsProto leaves it out, so size() is an error (unknown).
      return size === 'unknown' ? 0 : Number(size);
    };
    it('keeps every additional label when the set is mesh-wide (sender and receiver configured alike)', () => {
      const all = cases.find((c) => c.additionalLabels.length === Object.keys(labels).length)!;
      expect(labelCount(all.additionalLabels)).toBe(all.labels);
    });
    it.each(cases.filter((c) => c.additionalLabels.length < Object.keys(labels).length))(
      'receiver set $additionalLabels: deliberately different, meshtel keeps what the sender sent (Envoy keeps $labels)',
      ({ additionalLabels }) => {
        // The sender configured with the receiver's set sends only those, so the mesh-wide setting gives Envoy's count.
        expect(labelCount(additionalLabels)).toBe(additionalLabels.length);
        // A receiver cannot narrow a richer sender's set: every label sent is kept (docs/compatibility.md).
        expect(labelCount(Object.keys(labels))).toBe(Object.keys(labels).length);
      },
    );
  });
});

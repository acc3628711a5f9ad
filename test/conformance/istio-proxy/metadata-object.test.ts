/**
 * istio/proxy extensions/common/metadata_object_test.cc (release-1.29) data values replayed against meshtel's
 * codecs: every `convertBaggageToWorkloadMetadata` case (baggage → the fields `getField` returns) and the
 * `convertEndpointMetadata` cases (too few parts → none; five parts → serializeAsString). fixtures/metadata-object.json.
 */
import { describe, expect, it } from 'vitest';
import { decodeBaggage } from '../../../src/metadata/baggage.js';
import { parseEndpointMetadata, serializePeerAsString } from '../../../src/metadata/endpoint-metadata.js';
import type { PeerMetadata } from '../../../src/index.js';
import { fixture } from './support.js';

interface MetadataObjectFixture {
  commit: string;
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
});

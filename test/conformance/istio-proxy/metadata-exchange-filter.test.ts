/**
 * istio/proxy source/extensions/filters/network/metadata_exchange/metadata_exchange_test.cc (release-1.29) data
 * values replayed against meshtel's TCP exchange (fixtures/metadata-exchange-filter.json): the same frame (magic,
 * big-endian length, google.protobuf.Any of a Struct) followed by application bytes goes into the parser the sidecar
 * runs on an `istio-peer-exchange` connection, and the bytes left for the proxy and the peer must be Envoy's. The
 * frames are built here with protobufjs from the fixture's Struct, independently of meshtel's own codec. The peer
 * must also be what `filter_state.downstream_peer` evaluates to in tag expressions (the istio/istio#59183
 * regression: a TCP peer visible to CEL and to the stats alike).
 *
 * Not compared: Envoy's `metadata_exchange.*` counters (meshtel does not emit them; docs/compatibility.md), which is
 * all `MetadataExchangeNotFound` asserts.
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { createTcpMetadataExchange, createWorkloadMetadata } from '../../../src/index.js';
import type { TcpParseStep } from '../../../src/index.js';
import { createScope } from '../../../src/stats/attributes.js';
import { compileExpression } from '../../../src/stats/expression.js';
import { fixture } from './support.js';

type StructJson = { [key: string]: string | StructJson };
interface MetadataExchangeFixture {
  commit: string;
  cases: Array<{
    test: string;
    additionalLabels: string[];
    struct: StructJson;
    after: string;
    expect: { remaining: string; peer: Record<string, string> | null };
  }>;
  alpnMismatch: { test: string };
}
const F = fixture<MetadataExchangeFixture>('metadata-exchange-filter.json');

const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto')!);
root.addJSON(protobuf.common.get('google/protobuf/any.proto')!.nested!);
const Struct = root.lookupType('google.protobuf.Struct');
const Any = root.lookupType('google.protobuf.Any');

/** JSON → google.protobuf.Struct message object (strings and nested structs, all the test uses). */
function structOf(json: StructJson): { fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = typeof v === 'string' ? { stringValue: v } : { structValue: structOf(v) };
  return { fields };
}

/** The C++ test's ConstructProxyHeaderData: magic 0x3D230467 and length, both big-endian, then the Any. */
function frame(json: StructJson): Buffer {
  const value = Struct.encode(Struct.fromObject(structOf(json))).finish();
  const any = Buffer.from(Any.encode(Any.fromObject({ type_url: 'type.googleapis.com/google.protobuf.Struct', value })).finish());
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0x3d230467, 0);
  header.writeUInt32BE(any.length, 4);
  return Buffer.concat([header, any]);
}

const local = createWorkloadMetadata({ name: 'details-v1-abc', namespace: 'default', workload: 'details-v1', labels: { app: 'details' } });

describe(`metadata_exchange_test.cc (release-1.29@${F.commit.slice(0, 8)}) through the TCP exchange`, () => {
  it.each(F.cases)('$test', (c) => {
    const x = createTcpMetadataExchange({ local, additionalLabels: c.additionalLabels });
    const parser = x.createParser();
    // One onData call with the frame and the bytes after it, as the C++ test makes.
    const step: TcpParseStep = parser.push(Buffer.concat([frame(c.struct), Buffer.from(c.after)]));
    if (!step.done) throw new Error('the parser wants more bytes than one whole frame');
    // The frame is drained; what follows goes to the proxy untouched.
    expect(step.rest.toString()).toBe(c.expect.remaining);
    if (c.expect.peer === null) {
      // A well-formed frame whose Struct has no `x-envoy-peer-metadata`: Envoy drains it and stores no peer;
      // meshtel does the same and names the reason (docs/compatibility.md).
      expect(step.result).toMatchObject({ ok: false, reason: 'bad_frame', detail: 'no x-envoy-peer-metadata in frame' });
      return;
    }
    if (!step.result.ok) throw new Error(`no peer: ${step.result.reason} ${step.result.detail ?? ''}`);
    const p = step.result.peer;
    expect({ namespace: p.namespace, workload: p.workload, cluster: p.cluster, app: p.app }).toEqual(c.expect.peer);
    // filter_state.downstream_peer (the CelState key) holds the same peer for tag expressions.
    const scope = createScope(local, { reporter: 'destination', peer: p, peerPrincipal: '', localPrincipal: '', service: null }, undefined, 'destination');
    for (const [field, value] of Object.entries(c.expect.peer)) {
      expect(compileExpression(`filter_state.downstream_peer.${field}`).evaluate(scope), field).toBe(value);
    }
  });

  it(`${F.alpnMismatch.test} is not replayed: it asserts only alpn_protocol_not_found, an Envoy counter meshtel does not emit`, async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../../docs/compatibility.md', import.meta.url), 'utf8');
    expect(doc).toContain(`\`${F.alpnMismatch.test}\``);
  });
});

/**
 * Cost of the metadata-exchange codecs and of the id-keyed cache that lets a known peer skip them.
 * Baseline: a full decode of a 1.24 `x-envoy-peer-metadata` header (shared vector [9]); the headline
 * ratio is a cached lookup through the exchange against a full decode through the exchange, both with
 * fresh header strings each call as an HTTP parser would hand them over (goal ≤ 1/20).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { decodeMxHeader, encodeMxHeader } from '../src/metadata/mx-header.js';
import { decodeBaggage, encodeBaggage } from '../src/metadata/baggage.js';
import { createTcpFrameParser, encodeTcpFrame } from '../src/metadata/tcp-frame.js';
import { formatNodeId } from '../src/metadata/node-id.js';
import { createWorkloadMetadata } from '../src/metadata/workload.js';
import { createHttpMetadataExchange, nodeHeaderGetter, nodeHeaderRemover } from '../src/exchange/http-exchange.js';
import type { NodeHeaders } from '../src/exchange/http-exchange.js';
import type { HeaderGetter, HeaderRemover } from '../src/exchange/types.js';
import { createPeerCache } from '../src/exchange/peer-cache.js';

const local = createWorkloadMetadata({
  name: 'productpage-v1-84975bc778-pxz2w',
  namespace: 'default',
  workload: 'productpage-v1',
  cluster: 'client-cluster',
  owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
  instanceIps: ['10.52.0.34'],
  serviceAccount: 'bookinfo-productpage',
  labels: { app: 'productpage', version: 'v1', 'service.istio.io/canonical-name': 'productpage-v1', 'service.istio.io/canonical-revision': 'version-1' },
});
// Byte-identical to shared vectors [9] (1.24 header) and [3] (clientBaggage), as test/metadata/vectors.test.ts proves.
const HEADER_124 = encodeMxHeader(local, 'reduced');
const BAGGAGE = encodeBaggage(local);
const FRAME = encodeTcpFrame(local, formatNodeId(local), 'reduced-1.29');
// The real 1385-byte Go-ordered header (vector [0] of the test fixtures).
const vectorsPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/mx-vectors.json');
const HEADER_FLAT_REAL = (JSON.parse(readFileSync(vectorsPath, 'utf8')) as { value: string }[])[0]!.value;
const PEER_ID = 'sidecar~10.52.0.35~reviews-v1-545db77b95-2ps7q.default~default.svc.cluster.local';

const exchange = createHttpMetadataExchange({ local, inboundCache: createPeerCache() });
// Warm the cache with the peer, as the first request from it would.
exchange.extractRequest({ 'x-envoy-peer-metadata': HEADER_124, 'x-envoy-peer-metadata-id': PEER_ID }, nodeHeaderGetter, nodeHeaderRemover);
const cache = exchange.caches.inbound;

// A reused Map carrier isolates the exchange's own cost; the Node-object row adds what `delete` on a fresh
// header object costs (V8 turns it into a dictionary), which a real server pays whatever we do.
const carrier = new Map<string, string>();
const mapGet: HeaderGetter<Map<string, string>> = (c, name) => c.get(name);
const mapRemove: HeaderRemover<Map<string, string>> = (c, name) => {
  c.delete(name);
};

/** A copy of `s` that is a distinct string object, so V8 has no cached hash (as with a freshly parsed header). */
const fresh = (s: string): string => (' ' + s).slice(1);

let sink = 0;
const bench = new Bench({ time: 1500, warmupTime: 300 });
bench
  .add('decodeMxHeader, 1.24 header (740 chars)', () => {
    const r = decodeMxHeader(fresh(HEADER_124));
    sink += r.ok ? 1 : 0;
  })
  .add('decodeMxHeader, real flat header (vector [0])', () => {
    const r = decodeMxHeader(fresh(HEADER_FLAT_REAL));
    sink += r.ok ? 1 : 0;
  })
  .add('extractRequest, value only (full decode)', () => {
    carrier.set('x-envoy-peer-metadata', fresh(HEADER_124));
    sink += exchange.extractRequest(carrier, mapGet, mapRemove).result.ok ? 1 : 0;
  })
  .add('extractRequest, known id (cache hit)', () => {
    carrier.set('x-envoy-peer-metadata', fresh(HEADER_124));
    carrier.set('x-envoy-peer-metadata-id', fresh(PEER_ID));
    sink += exchange.extractRequest(carrier, mapGet, mapRemove).result.ok ? 1 : 0;
  })
  .add('extractRequest, cache hit, Node headers object', () => {
    const headers: NodeHeaders = { 'x-envoy-peer-metadata': fresh(HEADER_124), 'x-envoy-peer-metadata-id': fresh(PEER_ID) };
    sink += exchange.extractRequest(headers, nodeHeaderGetter, nodeHeaderRemover).result.ok ? 1 : 0;
  })
  .add('cache.get, fresh 83-char id', () => {
    sink += cache.get(fresh(PEER_ID)) ? 1 : 0;
  })
  .add('encodeMxHeader, reduced-1.29', () => {
    sink += encodeMxHeader(local, 'reduced-1.29').length;
  })
  .add('encodeBaggage', () => {
    sink += encodeBaggage(local).length;
  })
  .add('decodeBaggage, clientBaggage', () => {
    sink += decodeBaggage(fresh(BAGGAGE)).ok ? 1 : 0;
  })
  .add('TCP frame parse, one chunk', () => {
    const step = createTcpFrameParser().push(FRAME);
    sink += step.done ? 1 : 0;
  })
  .add('TCP frame parse, 3 chunks', () => {
    const p = createTcpFrameParser();
    p.push(FRAME.subarray(0, 5));
    p.push(FRAME.subarray(5, 300));
    sink += p.push(FRAME.subarray(300)).done ? 1 : 0;
  });

await bench.run();

// The median per-op latency is reported (and used for ratios) because the machine is shared: a mean is pulled
// up by whichever samples another process preempted, and the ratio of two means inherits both errors.
const rows = bench.tasks.map((t) => {
  const r = t.result as { latency?: { mean: number; p50: number; rme: number } } | undefined;
  const meanNs = (r?.latency?.p50 ?? Number.NaN) * 1e6;
  return { name: t.name, meanNs, rme: r?.latency?.rme ?? Number.NaN };
});
const byName = new Map(rows.map((r) => [r.name, r.meanNs]));
const baseline = rows[0]!.meanNs;
console.log(`metadata: MX codecs and the peer cache (node ${process.version})`);
for (const row of rows) {
  const ops = 1e9 / row.meanNs;
  console.log(
    `${row.name.padEnd(46)} ${ops.toFixed(0).padStart(10)} ops/s ${row.meanNs.toFixed(0).padStart(7)} ns/op (median)  mean ±${row.rme.toFixed(1)}%  ${(row.meanNs / baseline).toFixed(3)}x decode`,
  );
}
const hit = byName.get('extractRequest, known id (cache hit)')!;
const miss = byName.get('extractRequest, value only (full decode)')!;
const ratio = hit / miss;
console.log(`cached lookup / full decode (through the exchange): 1/${(1 / ratio).toFixed(1)} (goal ≤ 1/20: ${ratio <= 1 / 20 ? 'met' : 'NOT met'})`);
console.log(`same with a fresh Node headers object per request: 1/${(miss / byName.get('extractRequest, cache hit, Node headers object')!).toFixed(1)}`);
console.log(`cache.get alone / decodeMxHeader: 1/${(baseline / byName.get('cache.get, fresh 83-char id')!).toFixed(1)}`);
if (sink === -1) console.log(sink);

/**
 * istio/proxy test/envoye2e/http_metadata_exchange/exchange_test.go (release-1.29 184641e1) replayed against a real
 * meshtel sidecar on loopback: the server answers with its id only when the request carried an id, with its value
 * only when the request carried a value (`TestHTTPExchange`), and 1000 ids (`client{{ .N }}`, N = 0..999, enough to
 * evict from the 500-entry cache) all get both answers (`TestHTTPExchangeCache`-style repeat). The request value is
 * the Go test's `EncodeMetadata`: the whole client node metadata as a Struct, unpadded base64 (RawStdEncoding).
 * `TestHTTPExchangeBaggage`: the 1.29 baggage form in both directions (fixtures/http-exchange-baggage.json).
 * `TestHTTPExchangeAdditionalLabels` (mx_native_inbound_labels.yaml.tmpl: `additional_labels: [role]`): the same
 * 1000 ids through the HTTP exchange with the server's additional labels (the sidecar has no option for them yet),
 * each answered with the id `server` and a value that carries the server pod's `role` label.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpMetadataExchange, decodeMxHeader, nodeHeaderGetter, nodeHeaderRemover, nodeHeaderSetter } from '../../../src/index.js';
import type { NodeHeaders } from '../../../src/index.js';
import { encodeStruct } from '../../../src/metadata/struct-codec.js';
import type { EncodableStruct } from '../../../src/metadata/struct-codec.js';
import { eventually, get, httpApp, reviewsServer, send, series, sidecar } from '../../sidecar/helpers.js';
import type { Cleanups } from '../../sidecar/helpers.js';
import { expectExactStat, fixture, fromNodeMetadata } from './support.js';
import type { MetricFamily } from './support.js';

const F = fixture<{ branches: Record<string, { files: { clientNodeMetadata: { value: EncodableStruct } } }> }>('stats-default.json');
/** EncodeMetadata(t, params): proto.Marshal of the node metadata, base64.RawStdEncoding (no padding). */
const CLIENT_VALUE = encodeStruct(F.branches['release-1.29']!.files.clientNodeMetadata.value).toString('base64').replace(/=+$/, '');
const ID = 'x-envoy-peer-metadata-id';
const MX = 'x-envoy-peer-metadata';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('http_metadata_exchange TestHTTPExchange (real sidecar)', () => {
  it('answers nothing, the id only, or id and value, as the request carried them', async () => {
    const { server, app } = await reviewsServer(cleanups);
    const none = await send(server.ports.inbound, { body: 'hello, world!', method: 'POST' });
    expect(none.status).toBe(200);
    expect(none.headers[ID]).toBeUndefined();
    expect(none.headers[MX]).toBeUndefined();

    const idOnly = await send(server.ports.inbound, { body: 'hello, world!', method: 'POST', headers: { [ID]: 'client' } });
    expect(idOnly.headers[ID]).toBe(server.nodeId);
    expect(idOnly.headers[MX]).toBeUndefined();

    const both = await send(server.ports.inbound, { body: 'hello, world!', method: 'POST', headers: { [ID]: 'client', [MX]: CLIENT_VALUE } });
    expect(both.headers[ID]).toBe(server.nodeId);
    // driver.Any: present; we also check it decodes (a 1.29 payload of the server, no IDENTITY).
    const answer = decodeMxHeader(String(both.headers[MX]));
    expect(answer).toMatchObject({ ok: true, profile: 'reduced', peer: { workload: 'reviews-v1', identity: '' } });
    // The app never sees MX headers.
    for (const r of app.seen) expect(r.headers[ID] ?? r.headers[MX]).toBeUndefined();
    // The unpadded, Go-ordered flat value is decoded: the downstream peer is the productpage pod.
    await eventually(async () => {
      const lines = await series(server, 'istio_requests_total');
      expect(lines.some((l) => l.includes('source_workload="productpage-v1"') && l.includes('source_canonical_service="productpage-v1"'))).toBe(true);
    });
  });

  it('600 distinct ids (past the 500-entry cache; upstream sends 1000) each get id and value back', async () => {
    const { server } = await reviewsServer(cleanups);
    // 20 at a time: the upstream test runs them one by one; order does not matter to the cache rule checked.
    for (let n = 0; n < 600; n += 20) {
      const batch = Array.from({ length: 20 }, (_, i) =>
        send(server.ports.inbound, { body: 'hello, world!', method: 'POST', headers: { [ID]: `client${n + i}`, [MX]: CLIENT_VALUE } }),
      );
      for (const r of await Promise.all(batch)) expect([r.status, r.headers[ID], typeof r.headers[MX]]).toEqual([200, server.nodeId, 'string']);
    }
  }, 60_000);
});

interface BaggageFixture {
  commit: string;
  test: { requestBaggage: string; responseBaggage: string };
  files: { waypoint_downstream_baggage_request: { value: MetricFamily } };
}
const B = fixture<BaggageFixture>('http-exchange-baggage.json');
const SERVER_NODE = fixture<{ branches: Record<string, { files: { serverNodeMetadata: { value: Record<string, unknown> } } }> }>('stats-default.json')
  .branches['release-1.29']!.files.serverNodeMetadata.value;

describe(`http_metadata_exchange TestHTTPExchangeBaggage (real sidecar, release-1.29@${B.commit.slice(0, 8)})`, () => {
  it('reads the downstream peer from baggage and answers with its own baggage, byte for byte', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    // mx_native_inbound_baggage.yaml.tmpl: downstream discovery and propagation by baggage.
    const server = await sidecar({
      metadata: fromNodeMetadata(SERVER_NODE),
      app: { port: app.port },
      propagation: 'baggage',
      mesh: { services: [{ name: 'server', selector: { app: 'ratings' }, ports: [{ name: 'http', protocol: 'http', port: 8080 }] }] },
    });
    cleanups.push(server.close);
    const r = await send(server.ports.inbound, { body: 'hello, world!', method: 'POST', headers: { baggage: B.test.requestBaggage } });
    expect(r.status).toBe(200);
    expect(r.headers.baggage).toBe(B.test.responseBaggage);
    await eventually(async () => {
      const { body } = await get(`http://127.0.0.1:${server.ports.prometheus}/stats/prometheus`);
      expectExactStat(body, B.files.waypoint_downstream_baggage_request.value);
    });
  });
});

describe('http_metadata_exchange TestHTTPExchangeAdditionalLabels (HTTP exchange, additional_labels [role])', () => {
  it('1000 ids client{{ .N }} each get the id server and a value carrying the role label', () => {
    const server = createHttpMetadataExchange({ local: fromNodeMetadata(SERVER_NODE), nodeId: 'server', additionalLabels: ['role'] });
    let answered = 0;
    for (let n = 0; n < 1000; n++) {
      const req: NodeHeaders = { [ID]: `client${n}`, [MX]: CLIENT_VALUE };
      const ex = server.extractRequest(req, nodeHeaderGetter, nodeHeaderRemover);
      const res: NodeHeaders = {};
      server.injectResponse(res, nodeHeaderSetter, ex);
      if (ex.result.ok && res[ID] === 'server' && typeof res[MX] === 'string') answered++;
    }
    expect(answered).toBe(1000);
    const value = decodeMxHeader(server.headerValue);
    expect(value).toMatchObject({ ok: true, peer: { workload: 'ratings-v1', labels: { role: 'server' } } });
    // Without additional_labels the role label stays home (1.24+ reduced payload).
    const plain = decodeMxHeader(createHttpMetadataExchange({ local: fromNodeMetadata(SERVER_NODE), nodeId: 'server' }).headerValue);
    expect(plain.ok && plain.peer.labels.role).toBe(undefined);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import {
  createHttpMetadataExchange,
  nodeHeaderGetter as get,
  nodeHeaderRemover as remove,
  nodeHeaderSetter as set,
} from '../../src/exchange/http-exchange.js';
import type { NodeHeaders } from '../../src/exchange/http-exchange.js';
import { createPeerCache } from '../../src/exchange/peer-cache.js';
import { HEADER_PEER_METADATA as MX, HEADER_PEER_METADATA_ID as MX_ID, encodeMxHeader } from '../../src/metadata/mx-header.js';
import { HEADER_BAGGAGE, encodeBaggage } from '../../src/metadata/baggage.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import type { WorkloadMetadata } from '../../src/metadata/types.js';
import { CURL_BAGGAGE, productpageReduced } from '../metadata/fixtures.js';

const client = productpageReduced();
/** The client's baggage, byte-identical to Istio's clientBaggage (fixture vector [3], see vectors.test.ts). */
const CLIENT_BAGGAGE = encodeBaggage(client);
const server: WorkloadMetadata = createWorkloadMetadata({
  name: 'reviews-v1-7f9c-abcde',
  namespace: 'bookinfo',
  workload: 'reviews-v1',
  workloadType: 'deployment',
  instanceIps: ['10.0.0.2'],
  serviceAccount: 'bookinfo-reviews',
  labels: { app: 'reviews', version: 'v1' },
});
/** The client side, id `client` as in istio/proxy exchange_test.go. */
const c = createHttpMetadataExchange({ local: client, nodeId: 'client' });
const OTHER_VALUE = encodeMxHeader(createWorkloadMetadata({ name: 'x', namespace: 'elsewhere' }), 'reduced');

/** shared/compat mx-vectors.json "DERIVED 1.24–1.29 MX value" for testdata/client_node_metadata.json.tmpl. */
const REAL_129_VALUE =
  'Ch4KCkNMVVNURVJfSUQSEBoOY2xpZW50LWNsdXN0ZXIKngEKBkxBQkVMUxKTASqQAQoUCgNhcHASDRoLcHJvZHVjdHBhZ2UKMwofc2VydmljZS5pc3Rpby5pby9jYW5vbmljYWwtbmFtZRIQGg5wcm9kdWN0cGFnZS12MQoyCiNzZXJ2aWNlLmlzdGlvLmlvL2Nhbm9uaWNhbC1yZXZpc2lvbhILGgl2ZXJzaW9uLTEKDwoHdmVyc2lvbhIEGgJ2MQopCgROQU1FEiEaH3Byb2R1Y3RwYWdlLXYxLTg0OTc1YmM3NzgtcHh6MncKFgoJTkFNRVNQQUNFEgkaB2RlZmF1bHQKUgoFT1dORVISSRpHa3ViZXJuZXRlczovL2FwaXMvYXBwcy92MS9uYW1lc3BhY2VzL2RlZmF1bHQvZGVwbG95bWVudHMvcHJvZHVjdHBhZ2UtdjEKIQoNV09SS0xPQURfTkFNRRIQGg5wcm9kdWN0cGFnZS12MQ==';

describe('HttpMetadataExchange', () => {
  describe('construction', () => {
    it('encodes our value, id and baggage once', () => {
      const ex = createHttpMetadataExchange({ local: client });
      expect(ex.headerValue).toBe(encodeMxHeader(client, 'reduced-1.29'));
      // Issue 10.1: what a real 1.29 sidecar sends for this pod (no IDENTITY): the shared derived vector.
      expect(ex.headerValue).toBe(REAL_129_VALUE);
      expect(createHttpMetadataExchange({ local: client, profile: 'reduced-identity' }).headerValue).not.toBe(REAL_129_VALUE);
      expect(ex.headerId).toBe('sidecar~127.0.0.1~productpage-v1-84975bc778-pxz2w.default~default.svc.cluster.local');
      expect(ex.baggage).toBe(CLIENT_BAGGAGE);
      expect(createHttpMetadataExchange({ local: client, profile: 'reduced', nodeId: 'client' })).toMatchObject({ headerValue: encodeMxHeader(client, 'reduced'), headerId: 'client' });
    });

    it('refuses a local value over maxValueBytes with MESHTEL_ERR_ENCODE', () => {
      expect(() => createHttpMetadataExchange({ local: client, maxValueBytes: 100 })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_ENCODE' }));
    });

    it.each([
      [{ profile: 'v2' }],
      [{ propagation: 'b3' }],
      [{ maxValueBytes: 0 }],
    ])('rejects bad options %j with MESHTEL_ERR_INVALID_CONFIG', (opts) => {
      expect(() => createHttpMetadataExchange({ local: client, ...(opts as object) })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
    });

    it('.fields() lists the headers it touches', () => {
      expect(createHttpMetadataExchange({ local: client }).fields()).toEqual([MX, MX_ID]);
      expect(createHttpMetadataExchange({ local: client, propagation: 'baggage' }).fields()).toEqual([MX, MX_ID, HEADER_BAGGAGE]);
    });
  });

  describe('.injectRequest()', () => {
    it('sets both headers, overwriting what the app sent', () => {
      const ex = createHttpMetadataExchange({ local: client });
      const headers: NodeHeaders = { [MX]: 'forged', [MX_ID]: 'forged-id', accept: '*/*' };
      ex.injectRequest(headers, set);
      expect(headers).toEqual({ [MX]: ex.headerValue, [MX_ID]: ex.headerId, accept: '*/*' });
    });

    it('sets baggage instead when propagating baggage', () => {
      const ex = createHttpMetadataExchange({ local: client, propagation: 'baggage' });
      const headers: NodeHeaders = {};
      ex.injectRequest(headers, set);
      expect(headers).toEqual({ [HEADER_BAGGAGE]: CLIENT_BAGGAGE });
    });
  });

  describe('.extractRequest() and .injectResponse()', () => {

    it.each([
      ['both headers', { [MX]: c.headerValue, [MX_ID]: 'client' }, true, true, true],
      ['only the value', { [MX]: c.headerValue }, false, true, true],
      ['only the id', { [MX_ID]: 'never-seen' }, true, false, false],
      ['neither', {}, false, false, false],
      ['empty values (present counts as received)', { [MX]: '', [MX_ID]: '' }, true, true, false],
    ])('with %s: strips both, answers with id=%s value=%s', (_n, reqHeaders, answerId, answerValue, found) => {
      const s = createHttpMetadataExchange({ local: server });
      const headers: NodeHeaders = { ...reqHeaders, 'x-app': 'kept' };
      const ex = s.extractRequest(headers, get, remove);
      expect(headers).toEqual({ 'x-app': 'kept' });
      expect(ex.result.ok).toBe(found);
      const res: NodeHeaders = {};
      s.injectResponse(res, set, ex);
      expect(MX_ID in res).toBe(answerId);
      expect(MX in res).toBe(answerValue);
      if (answerId) expect(res[MX_ID]).toBe(s.headerId);
      if (answerValue) expect(res[MX]).toBe(s.headerValue);
    });

    it('finds the client with its documented fields', () => {
      const s = createHttpMetadataExchange({ local: server });
      const headers: NodeHeaders = {};
      c.injectRequest(headers, set);
      const ex = s.extractRequest(headers, get, remove);
      expect(ex).toMatchObject({ idReceived: true, valueReceived: true, cacheHit: false, result: { ok: true, profile: 'reduced', peer: { workload: 'productpage-v1', namespace: 'default', identity: '' } } });
    });

    it.each([
      ['garbled base64', '!!!', 'bad_base64'],
      ['base64 that is not a Struct', Buffer.from('hello').toString('base64'), 'not_struct'],
      ['an oversized value', 'A'.repeat(9000), 'too_large'],
    ])('returns a reason for %s, strips the headers and counts the decode', (_n, value, reason) => {
      const s = createHttpMetadataExchange({ local: server });
      const headers: NodeHeaders = { [MX]: value, [MX_ID]: 'bad-peer' };
      const ex = s.extractRequest(headers, get, remove);
      expect(ex.result).toMatchObject({ ok: false, reason });
      expect(headers).toEqual({});
      expect(s.counters.decodes).toBe(1);
      // A failure is not cached: the same id is decoded again.
      s.extractRequest({ [MX]: value, [MX_ID]: 'bad-peer' }, get, remove);
      expect(s.counters.decodes).toBe(2);
      expect(s.caches.inbound.size).toBe(0);
    });

    it('reports id_only for an unknown id without a value, no_header for nothing, and decodes neither', () => {
      const s = createHttpMetadataExchange({ local: server });
      expect(s.extractRequest({ [MX_ID]: 'x' }, get, remove).result).toMatchObject({ ok: false, reason: 'id_only' });
      expect(s.extractRequest({}, get, remove).result).toMatchObject({ ok: false, reason: 'no_header' });
      expect(s.counters.decodes).toBe(0);
    });

    it('reads the first value of a repeated header', () => {
      const s = createHttpMetadataExchange({ local: server });
      const ex = s.extractRequest({ [MX]: [c.headerValue, 'junk'] }, get, remove);
      expect(ex.result.ok).toBe(true);
    });
  });

  describe('cache', () => {
    it('a hit with the same value does not decode; a different value is decoded for that request only and counted', () => {
      const s = createHttpMetadataExchange({ local: server });
      const first = s.extractRequest({ [MX]: c.headerValue, [MX_ID]: 'client' }, get, remove);
      expect(first.cacheHit).toBe(false);
      const same = s.extractRequest({ [MX]: c.headerValue, [MX_ID]: 'client' }, get, remove);
      expect(same).toMatchObject({ cacheHit: true });
      expect(same.result).toBe(first.result);
      // Istio would serve the cached peer here; meshtel decodes the conflicting value for this request only.
      const other = s.extractRequest({ [MX]: OTHER_VALUE, [MX_ID]: 'client' }, get, remove);
      expect(other).toMatchObject({ cacheHit: false, result: { ok: true, peer: { namespace: 'elsewhere' } } });
      expect(s.extractRequest({ [MX]: '!!!', [MX_ID]: 'client' }, get, remove).result).toMatchObject({ ok: false, reason: 'bad_base64' });
      // ... and the entry is untouched.
      expect(s.extractRequest({ [MX]: c.headerValue, [MX_ID]: 'client' }, get, remove).result).toBe(first.result);
      expect(s.counters).toEqual({ decodes: 3, cacheConflicts: 2 });
      expect(s.caches.inbound).toMatchObject({ hits: 4, misses: 1, size: 1 });
    });

    it('an id alone finds a cached peer (metadata sent once per peer)', () => {
      const s = createHttpMetadataExchange({ local: server });
      s.extractRequest({ [MX]: c.headerValue, [MX_ID]: 'client' }, get, remove);
      const ex = s.extractRequest({ [MX_ID]: 'client' }, get, remove);
      expect(ex).toMatchObject({ cacheHit: true, valueReceived: false, result: { ok: true } });
    });

    it('an empty id is never used as a cache key', () => {
      const s = createHttpMetadataExchange({ local: server });
      s.extractRequest({ [MX]: c.headerValue, [MX_ID]: '' }, get, remove);
      expect(s.caches.inbound.size).toBe(0);
    });

    it('counts evictions of a given cache', () => {
      const cache = createPeerCache({ maxEntries: 4 });
      const s = createHttpMetadataExchange({ local: server, inboundCache: cache });
      for (let i = 0; i < 5; i++) s.extractRequest({ [MX]: c.headerValue, [MX_ID]: `client${i}` }, get, remove);
      expect(cache.evictions).toBe(1);
      expect(cache.size).toBe(4);
    });

    it('refuses one cache for both directions with MESHTEL_ERR_INVALID_CONFIG', () => {
      const cache = createPeerCache();
      expect(() => createHttpMetadataExchange({ local: server, inboundCache: cache, outboundCache: cache })).toThrow(
        expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }),
      );
    });
  });

  describe('cache poisoning (issue 11.4)', () => {
    const FORGED = encodeMxHeader(createWorkloadMetadata({ name: 'forged-0', namespace: 'attacker', workload: 'forged' }), 'reduced-1.29');
    const real = { [MX]: c.headerValue, [MX_ID]: 'client' };

    it('a 600-id flood and one forged request under the real id move none of the real peer\'s later traffic', () => {
      const s = createHttpMetadataExchange({ local: server });
      expect(s.extractRequest({ ...real }, get, remove).result).toMatchObject({ peer: { workload: 'productpage-v1' } });
      for (let i = 0; i < 600; i++) s.extractRequest({ [MX]: FORGED, [MX_ID]: `flood-${i}` }, get, remove);
      // The flood evicted the real entry; the forged request under the real id is cached now...
      expect(s.extractRequest({ [MX]: FORGED, [MX_ID]: 'client' }, get, remove).result).toMatchObject({ peer: { workload: 'forged' } });
      // ...but the real peer keeps sending its own value, which wins for every one of its requests.
      for (let i = 0; i < 50; i++) {
        expect(s.extractRequest({ ...real }, get, remove).result).toMatchObject({ ok: true, peer: { workload: 'productpage-v1', namespace: 'default' } });
      }
      expect(s.counters.cacheConflicts).toBe(50);
    });

    it('a response cannot poison requests: the directions have their own caches', () => {
      const s = createHttpMetadataExchange({ local: server });
      s.extractResponse({ [MX]: FORGED, [MX_ID]: 'client' }, get, remove);
      expect(s.extractRequest({ [MX_ID]: 'client' }, get, remove)).toMatchObject({ cacheHit: false, result: { ok: false, reason: 'id_only' } });
      expect(s.caches).toMatchObject({ inbound: { size: 0 }, outbound: { size: 1 } });
    });

    it('under mTLS the entry is bound to the principal: a plain-text request under the same id never reaches it', () => {
      const s = createHttpMetadataExchange({ local: server });
      const PP = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';
      s.extractRequest({ ...real }, get, remove, PP);
      // Plain text, same id, id only: no peer (the mTLS entry is not visible without the principal).
      expect(s.extractRequest({ [MX_ID]: 'client' }, get, remove).result).toMatchObject({ ok: false, reason: 'id_only' });
      // Plain text, same id, forged value: cached under the plain key only.
      s.extractRequest({ [MX]: FORGED, [MX_ID]: 'client' }, get, remove);
      const later = s.extractRequest({ [MX_ID]: 'client' }, get, remove, PP);
      expect(later).toMatchObject({ cacheHit: true, result: { peer: { workload: 'productpage-v1' } } });
      // Another principal does not see it either.
      expect(s.extractRequest({ [MX_ID]: 'client' }, get, remove, 'spiffe://cluster.local/ns/x/sa/y').result).toMatchObject({ ok: false, reason: 'id_only' });
    });
  });

  describe('baggage discovery', () => {
    it('falls back to baggage after the MX headers and leaves the baggage header in place', () => {
      const s = createHttpMetadataExchange({ local: server, propagation: 'baggage' });
      const headers: NodeHeaders = { [HEADER_BAGGAGE]: CURL_BAGGAGE };
      const ex = s.extractRequest(headers, get, remove);
      expect(ex.result).toMatchObject({ ok: true, profile: 'baggage', peer: { workload: 'curl' } });
      expect(headers[HEADER_BAGGAGE]).toBe(CURL_BAGGAGE);
      // The baggage parse is the one decode (meshtel_peer_decodes_total counts MX, baggage and TCP frames).
      expect(s.counters.decodes).toBe(1);
    });

    it('prefers MX headers, and keeps their failure reason when baggage is useless', () => {
      const s = createHttpMetadataExchange({ local: server, baggageDiscovery: true });
      expect(s.extractRequest({ [MX]: c.headerValue, [HEADER_BAGGAGE]: CURL_BAGGAGE }, get, remove).result).toMatchObject({ profile: 'reduced' });
      expect(s.extractRequest({ [MX]: '!!!', [HEADER_BAGGAGE]: 'userId=1' }, get, remove).result).toMatchObject({ ok: false, reason: 'bad_base64' });
      expect(s.extractRequest({ [HEADER_BAGGAGE]: 'userId=1' }, get, remove).result).toMatchObject({ ok: false, reason: 'bad_baggage' });
    });

    it('is off by default and never used on responses', () => {
      const s = createHttpMetadataExchange({ local: server });
      expect(s.extractRequest({ [HEADER_BAGGAGE]: CURL_BAGGAGE }, get, remove).result).toMatchObject({ ok: false, reason: 'no_header' });
      const b = createHttpMetadataExchange({ local: server, propagation: 'baggage' });
      expect(b.extractResponse({ [HEADER_BAGGAGE]: CURL_BAGGAGE }, get, remove).result).toMatchObject({ ok: false, reason: 'no_header' });
    });
  });

  describe('.extractResponse()', () => {
    it('finds the server and strips both headers from the response', () => {
      const s = createHttpMetadataExchange({ local: server });
      const headers: NodeHeaders = { [MX]: s.headerValue, [MX_ID]: s.headerId, 'content-type': 'text/plain' };
      const ex = c.extractResponse(headers, get, remove);
      // A 1.29 sidecar sends no IDENTITY: over plain text the principal comes from TLS only (Istio: unknown).
      expect(ex.result).toMatchObject({ ok: true, peer: { workload: 'reviews-v1', identity: '' } });
      expect(headers).toEqual({ 'content-type': 'text/plain' });
    });
  });

  describe('over real HTTP on loopback', () => {
    let httpServer: Server;
    let url = '';
    const inbound = createHttpMetadataExchange({ local: server });
    const seenByApp: NodeHeaders[] = [];

    beforeAll(async () => {
      httpServer = createServer((req, res) => {
        const ex = inbound.extractRequest(req.headers, get, remove);
        seenByApp.push({ ...req.headers });
        inbound.injectResponse(res, (r, name, value) => r.setHeader(name, value), ex);
        res.end(ex.result.ok ? ex.result.peer.workload : ex.result.reason);
      });
      await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/`;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    });

    it('exchanges metadata both ways and the app never sees MX headers', async () => {
      const outbound = createHttpMetadataExchange({ local: client });
      const headers: NodeHeaders = { [MX]: 'app-forged' };
      outbound.injectRequest(headers, set);
      const res = await request(url, { headers: headers as Record<string, string> });
      expect(await res.body.text()).toBe('productpage-v1');
      const resHeaders = { ...res.headers } as NodeHeaders;
      const ex = outbound.extractResponse(resHeaders, get, remove);
      expect(ex.result).toMatchObject({ ok: true, peer: { workload: 'reviews-v1' } });
      expect(resHeaders[MX]).toBeUndefined();
      expect(seenByApp.at(-1)).not.toHaveProperty(MX);
      expect(seenByApp.at(-1)).not.toHaveProperty(MX_ID);
    });

    it('answers a request without MX headers with none', async () => {
      const res = await request(url);
      expect(await res.body.text()).toBe('no_header');
      expect(res.headers[MX]).toBeUndefined();
      expect(res.headers[MX_ID]).toBeUndefined();
    });
  });
});

/**
 * istio/proxy source/extensions/filters/http/peer_metadata/filter_test.cc (release-1.29) data values replayed
 * against meshtel (fixtures/peer-metadata-filter.json). Each upstream case configures discovery and/or propagation
 * with `istio_headers`, puts MX headers on the request or response, and checks how many headers are left and the
 * namespace of the peer stored in filter state. Here the same headers go through meshtel's HTTP exchange (the
 * filter the sidecar and the embedding share) and, for upstream propagation with `skip_external_clusters`, through
 * a real sidecar to a recording upstream.
 *
 * What maps how: meshtel always discovers and propagates together (istiod configures sidecars that way), so a
 * discovery-only case compares the discovery side (headers stripped, peer found) and a propagation-only case the
 * propagation side; `skip_external_clusters: true` is the sidecar's `mxMode: 'IN_MESH'` (istiod writes it from
 * ProxyConfig `metadataExchangeHeaders.mode: IN_MESH`), `false` is `ALWAYS`. The workload-discovery cases are not
 * replayed (meshtel has no workload discovery service; docs/compatibility.md).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpMetadataExchange, createWorkloadMetadata, nodeHeaderGetter, nodeHeaderRemover, nodeHeaderSetter } from '../../../src/index.js';
import type { ExchangeExtract, NodeHeaders } from '../../../src/index.js';
import { httpApp, productpageClient, send } from '../../sidecar/helpers.js';
import type { Cleanups } from '../../sidecar/helpers.js';
import { fixture } from './support.js';

type Headers = { id?: string; value?: string };
interface FilterCase {
  test: string;
  config: {
    downstream_discovery?: string[];
    upstream_discovery?: string[];
    downstream_propagation?: Array<string | { istio_headers: { skip_external_clusters: boolean } }>;
    upstream_propagation?: Array<{ istio_headers: { skip_external_clusters: boolean } }>;
    additional_labels?: string[];
  };
  cluster?: { name?: string; metadata?: { filter_metadata: { istio: { external: boolean } } } };
  request: Headers;
  response: Headers;
  workloadDiscoveryCalls?: number;
  expect: { requestHeaders: number; responseHeaders: number; downstreamPeerNamespace: string | null; upstreamPeerNamespace: string | null };
}
interface PeerMetadataFixture {
  commit: string;
  sampleIstioHeader: string;
  cases: FilterCase[];
  cache: { runs: number; ids: number; idPrefix: string };
  workloadDiscoveryCases: Array<{ test: string }>;
}
const F = fixture<PeerMetadataFixture>('peer-metadata-filter.json');
const ID = 'x-envoy-peer-metadata-id';
const MX = 'x-envoy-peer-metadata';

/** The headers a case puts on a carrier (`sampleIstioHeader` names the fixture's header value). */
function carrier(h: Headers): NodeHeaders {
  const out: NodeHeaders = {};
  if (h.id !== undefined) out[ID] = h.id;
  if (h.value !== undefined) out[MX] = h.value === 'sampleIstioHeader' ? F.sampleIstioHeader : h.value;
  return out;
}

const namespaceOf = (ex: ExchangeExtract | undefined): string | null => (ex?.result.ok === true ? ex.result.peer.namespace : null);

// The filter under test is a local workload of its own; which one does not matter to these cases.
const local = createWorkloadMetadata({ name: 'ratings-v1-abc', namespace: 'default', workload: 'ratings-v1', labels: { app: 'ratings', version: 'v1' } });

const exchangeCases = F.cases.filter((c) => c.config.upstream_propagation === undefined);
const propagationCases = F.cases.filter((c) => c.config.upstream_propagation !== undefined);

describe(`peer_metadata filter_test.cc (release-1.29@${F.commit.slice(0, 8)}) through the HTTP exchange`, () => {
  it.each(exchangeCases)('$test', (c) => {
    const x = createHttpMetadataExchange({ local, nodeId: 'local', additionalLabels: c.config.additional_labels ?? [] });
    const propagatesDown = (c.config.downstream_propagation?.length ?? 0) > 0;
    const requestCarriesMx = c.request.id !== undefined || c.request.value !== undefined;

    // One stream, as in the C++ test: one request map (the downstream's request, MX stripped by discovery) and one
    // response map (the upstream's response, MX stripped by discovery, then our answer to the downstream added).
    const request = carrier(c.request);
    const downstream = x.extractRequest(request, nodeHeaderGetter, nodeHeaderRemover);
    const response = carrier(c.response);
    const upstream = x.extractResponse(response, nodeHeaderGetter, nodeHeaderRemover);
    x.injectResponse(response, nodeHeaderSetter, downstream);

    expect(Object.keys(request)).toHaveLength(c.expect.requestHeaders);
    expect(namespaceOf(downstream)).toBe(c.expect.downstreamPeerNamespace);
    expect(namespaceOf(upstream)).toBe(c.expect.upstreamPeerNamespace);
    // Downstream propagation answers with our id and value only when the request carried them. A discovery-only
    // case whose request carried MX is not compared here: meshtel's inbound side always answers, as every sidecar
    // istiod configures has downstream_propagation beside downstream_discovery.
    if (propagatesDown || !requestCarriesMx) {
      expect(Object.keys(response)).toHaveLength(c.expect.responseHeaders);
      if (c.expect.responseHeaders === 2) expect(response).toEqual({ [ID]: 'local', [MX]: x.headerValue });
    }
  });

  it(`MXMethod.Cache: ${F.cache.runs} runs of ${F.cache.ids} ids with the sample header all find the peer (the 500-entry cache evicts in between)`, () => {
    const x = createHttpMetadataExchange({ local });
    let found = 0;
    for (let run = 0; run < F.cache.runs; run++) {
      for (let i = 0; i < F.cache.ids; i++) {
        const ex = x.extractRequest({ [ID]: `${F.cache.idPrefix}${i}`, [MX]: F.sampleIstioHeader }, nodeHeaderGetter, nodeHeaderRemover);
        if (ex.result.ok && ex.result.peer.namespace === 'default') found++;
      }
    }
    expect(found).toBe(F.cache.runs * F.cache.ids);
    expect(x.caches.inbound.size).toBeLessThanOrEqual(500);
  });
});

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe(`peer_metadata filter_test.cc (release-1.29@${F.commit.slice(0, 8)}) upstream propagation through a sidecar`, () => {
  it.each(propagationCases)('$test', async (c) => {
    const upstream = await httpApp();
    cleanups.push(upstream.close);
    const skip = c.config.upstream_propagation![0]!.istio_headers.skip_external_clusters;
    const passthrough = c.cluster?.name === 'PassthroughCluster';
    const external = c.cluster?.metadata?.filter_metadata.istio.external === true;
    const client = await productpageClient(
      cleanups,
      {
        services: [
          {
            name: 'upstream',
            hostnames: ['upstream.example'],
            external,
            ports: [{ name: 'http', protocol: 'http', port: 80 }],
            endpoints: [{ address: '127.0.0.1', ports: { http: upstream.port }, sidecar: !external }],
          },
        ],
      },
      { mxMode: skip ? 'IN_MESH' : 'ALWAYS' },
    );
    // PassthroughCluster: a host the registry does not know, reached by its address.
    const r = passthrough
      ? await send(client.ports.outbound, { host: `127.0.0.1:${upstream.port}` })
      : await send(client.ports.outbound, { path: 'http://upstream.example/' });
    expect(r.status).toBe(200);
    const seen = upstream.seen[0]!.headers;
    // The filter adds exactly the two MX headers, or none.
    const added = [ID, MX].filter((h) => seen[h] !== undefined);
    expect(added).toHaveLength(c.expect.requestHeaders);
    if (added.length === 2) expect(seen[ID]).toBe(client.nodeId);
  });
});

describe('peer_metadata filter_test.cc cases not replayed', () => {
  it('are the workload-discovery ones, each listed in docs/compatibility.md', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../../docs/compatibility.md', import.meta.url), 'utf8');
    for (const c of F.workloadDiscoveryCases) expect(doc, c.test).toContain(`\`${c.test}\``);
    expect(F.cases.length + 1 + F.workloadDiscoveryCases.length).toBe(23);
  });
});

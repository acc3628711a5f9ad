/**
 * Golden exposition lines against real Istio output (test/fixtures/mx-vectors.json #12–#17).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import { HTTP_LABELS, TCP_LABELS } from '../../src/stats/definitions.js';
import { mxVector } from '../support/fixtures.js';
import { WEBAPP, inboundFromGateway, outboundToCatalog, samples } from './fixtures.js';

const vector = (i: number): string => mxVector(i).value;

describe('istio_* exposition against real Istio 1.17.8 output', () => {
  let stats: IstioStats | undefined;
  afterEach(() => stats?.close());

  it('reproduces the reporter=destination line of mx-vectors #12 byte for byte (310 requests)', async () => {
    stats = createIstioStats({ local: WEBAPP });
    for (let i = 0; i < 310; i++) stats.recordHttp(inboundFromGateway());
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_requests_total').map((s) => s.line)).toEqual([vector(12)]);
  });

  it('reproduces the reporter=source line of mx-vectors #13 byte for byte (310 requests)', async () => {
    stats = createIstioStats({ local: WEBAPP });
    for (let i = 0; i < 310; i++) stats.recordHttp(outboundToCatalog());
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_requests_total').map((s) => s.line)).toEqual([vector(13)]);
  });

  it('reproduces the Telemetry override of mx-vectors #14: request_protocol removed, two tags appended sorted, eval error → unknown', async () => {
    const telemetry = parseTelemetry(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: istio-system }
spec:
  metrics:
  - providers: [{ name: prometheus }]
    overrides:
    - match: { metric: REQUEST_COUNT, mode: SERVER }
      tagOverrides:
        upstream_proxy_version: { value: upstream_peer.istio_version }
        source_mesh_id: { value: "node.metadata['MESH_ID']" }
        request_protocol: { operation: REMOVE }
`);
    stats = createIstioStats({ local: WEBAPP, telemetry });
    for (let i = 0; i < 116; i++) stats.recordHttp(inboundFromGateway());
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_requests_total').map((s) => s.line)).toEqual([vector(14)]);
  });

  it('reproduces the custom metric of mx-vectors #15 (istio_get_calls{} 22)', async () => {
    stats = createIstioStats({
      local: WEBAPP,
      definitions: [{ name: 'get_calls', value: "(request.method.startsWith('GET') ? 1 : 0)", type: 'COUNTER' }],
    });
    for (let i = 0; i < 30; i++) stats.recordHttp(inboundFromGateway({ method: i < 22 ? 'GET' : 'POST' }));
    const text = await renderMetricsToString(stats, 'text');
    const at = text.indexOf('# TYPE istio_get_calls counter\n');
    expect(at).toBeGreaterThan(0);
    expect(text.slice(at, at + vector(15).length + 1)).toBe(`${vector(15)}\n`);
  });

  it('emits labels in the order of the flat Envoy stat name of mx-vectors #16', () => {
    const flat = vector(16);
    const order = HTTP_LABELS.map((l) => flat.indexOf(`.${l}.`));
    expect(order.every((p) => p > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('reproduces istio_build of mx-vectors #17', async () => {
    stats = createIstioStats({ local: { ...WEBAPP, istioVersion: '1.5-dev' } });
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_build').map((s) => s.line)).toEqual([vector(17)]);
  });

  it('prints tag="unknown" in istio_build when ISTIO_VERSION is empty', async () => {
    stats = createIstioStats({ local: { ...WEBAPP, istioVersion: '' } });
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_build')[0]?.labels).toEqual({ component: 'proxy', tag: 'unknown' });
  });

  it('uses the 23 TCP tags in Envoy order for istio_tcp_* metrics', async () => {
    stats = createIstioStats({ local: WEBAPP });
    const c = stats.openTcp(inboundFromGateway());
    c.addReceived(10);
    c.close();
    const text = await renderMetricsToString(stats, 'text');
    const s = samples(text, 'istio_tcp_connections_opened_total');
    expect(Object.keys(s[0]?.labels ?? {})).toEqual([...TCP_LABELS]);
    expect(s[0]?.labels.request_protocol).toBe('tcp');
  });
});

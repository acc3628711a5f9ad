/**
 * Custom metric definitions (istio/proxy stats config `definitions[]`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import { simpleAtoiUnsigned, type CustomMetricDefinition } from '../../src/stats/custom-metrics.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { WEBAPP, inboundFromGateway, samples } from './fixtures.js';

let stats: IstioStats | undefined;
afterEach(() => stats?.close());

describe('custom metric definitions', () => {
  it('records counters, gauges and histograms from their value expressions', async () => {
    stats = createIstioStats({
      local: WEBAPP,
      tcpReportingIntervalMs: 0,
      definitions: [
        { name: 'bytes_sum', value: 'request.total_size' },
        { name: 'last_code', value: 'response.code', type: 'GAUGE' },
        { name: 'resp_size', value: 'response.total_size', type: 'HISTOGRAM' },
        { name: 'broken', value: 'upstream_peer.app' },
      ],
    });
    stats.recordHttp(inboundFromGateway({ requestBytes: 100, responseCode: 200, responseBytes: 7 }));
    stats.recordHttp(inboundFromGateway({ requestBytes: 50, responseCode: 404, responseBytes: 7000 }));
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_bytes_sum').map((x) => x.line)).toEqual(['istio_bytes_sum{} 150']);
    expect(samples(text, 'istio_last_code').map((x) => x.line)).toEqual(['istio_last_code{} 404']);
    expect(samples(text, 'istio_resp_size_count').map((x) => x.value)).toEqual(['2']);
    expect(samples(text, 'istio_resp_size_bucket').find((x) => x.labels.le === '10')?.value).toBe('1');
    expect(samples(text, 'istio_broken').map((x) => x.value)).toEqual(['0']);
  });

  it('records at TCP close and carries ALL_METRICS dimensions as sorted tags', async () => {
    const telemetry = parseTelemetry({
      spec: { metrics: [{ overrides: [{ tagOverrides: { zz: { value: "'z'" }, mesh: { value: "node.metadata['MESH_ID']" } } }] }] },
    });
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, telemetry, definitions: [{ name: 'conns', value: '1' }] });
    const c = stats.openTcp(inboundFromGateway());
    const before = await renderMetricsToString(stats, 'text');
    expect(samples(before, 'istio_conns')).toHaveLength(0);
    c.close();
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_conns').map((x) => x.line)).toEqual(['istio_conns{mesh="cluster.local",zz="z"} 1']);
  });

  it('writes custom counters as <name>_total samples in OpenMetrics', async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, definitions: [{ name: 'get_calls', value: '1' }] });
    stats.recordHttp(inboundFromGateway());
    const om = await renderMetricsToString(stats, 'openmetrics');
    expect(om).toContain('# TYPE istio_get_calls counter\nistio_get_calls_total{} 1\n');
  });

  it.each([
    [[{ name: 'requests_total', value: '1' }], 'MESHTEL_ERR_METRIC_CONFLICT'],
    [[{ name: 'build', value: '1' }], 'MESHTEL_ERR_METRIC_CONFLICT'],
    [[{ name: 'a', value: '1' }, { name: 'a', value: '2' }], 'MESHTEL_ERR_METRIC_CONFLICT'],
    [[{ name: 'a-b', value: '1' }], 'MESHTEL_ERR_INVALID_CONFIG'],
    [[{ name: 'a', value: '1', type: 'SUMMARY' }], 'MESHTEL_ERR_INVALID_CONFIG'],
    [[{ name: 'a', value: 'request.' }], 'MESHTEL_ERR_INVALID_EXPRESSION'],
  ])('rejects %j with %s', (defs, code) => {
    try {
      stats = createIstioStats({ local: WEBAPP, definitions: defs as CustomMetricDefinition[] });
      expect.unreachable();
    } catch (e) {
      expect(isMeshtelError(e, code as 'MESHTEL_ERR_METRIC_CONFLICT')).toBe(true);
    }
  });
});

describe('simpleAtoiUnsigned()', () => {
  it.each([
    ['22', 22],
    [' 7 ', 7],
    ['+3', 3],
    ['-1', 0],
    ['1.5', 0],
    ['true', 0],
    ['', 0],
  ])('%j → %i', (s, n) => {
    expect(simpleAtoiUnsigned(s)).toBe(n);
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeProtobufPage, encodeProtobufFamilies } from '../../src/stats/exposition-protobuf.js';
import { METRIC_TYPE, type PbMetricFamily } from '../../src/stats/client-model.js';
import { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE } from '../../src/stats/media-types.js';
import { sidecar, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

// What Prometheus 2.42 sends with --enable-feature=native-histograms (scrape/scrape.go).
const NATIVE_ACCEPT =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/** A native histogram as client_golang writes one: schema 3, 2 observations of 1 and 1 of 2, plus classic buckets. */
const APP_NATIVE: PbMetricFamily = {
  name: 'app_latency_seconds',
  help: 'App latency.',
  type: METRIC_TYPE.HISTOGRAM,
  metric: [
    {
      label: [{ name: 'path', value: '/x' }],
      histogram: {
        sampleCount: 3,
        sampleSum: 4,
        bucket: [{ cumulativeCount: 2, upperBound: 1 }],
        schema: 3,
        zeroThreshold: 2 ** -128,
        zeroCount: 0,
        positiveSpan: [{ offset: 0, length: 1 }, { offset: 7, length: 1 }],
        positiveDelta: [2, -1],
      },
    },
  ],
};
const APP_COUNTER: PbMetricFamily = {
  name: 'app_hits_total',
  help: 'Hits.',
  type: METRIC_TYPE.COUNTER,
  metric: [{ label: [], counter: { value: 7, exemplar: { label: [{ name: 'trace_id', value: 'abc' }], value: 1, timestamp: { seconds: 1_700_000_000, nanos: 500_000_000 } } } }],
};

async function metricsApp(contentType: string, body: Buffer | string): Promise<number> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

async function start(contentType: string, body: Buffer | string): Promise<{ status: number; prometheus: number }> {
  const port = await metricsApp(contentType, body);
  const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), prometheusAnnotations: JSON.stringify({ port: String(port) }) });
  cleanups.push(sc.close);
  return sc.ports;
}

async function scrape(url: string, accept: string): Promise<{ type: string; body: Buffer }> {
  const res = await fetch(url, { headers: { accept } });
  return { type: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()) };
}

function families(body: Buffer): PbMetricFamily[] {
  const page = decodeProtobufPage(body);
  if (!page.ok) throw new Error(`${page.offset}: ${page.reason}`);
  return page.families;
}

describe('protobuf on the sidecar endpoints', () => {
  it('serves :15090 in protobuf when Prometheus asks for it', async () => {
    const ports = await start('text/plain', '');
    const res = await scrape(`http://127.0.0.1:${ports.prometheus}/stats/prometheus`, NATIVE_ACCEPT);
    expect(res.type).toBe(PROTOBUF_CONTENT_TYPE);
    const build = families(res.body).find((f) => f.name === 'istio_build');
    expect(build?.metric[0]?.gauge?.value).toBe(1);
  });

  it.each([
    ['text 0.0.4', PROMETHEUS_TEXT_CONTENT_TYPE, '# HELP app_hits_total Hits.\n# TYPE app_hits_total counter\napp_hits_total 7\n'],
    ['OpenMetrics', OPENMETRICS_CONTENT_TYPE, '# HELP app_hits Hits.\n# TYPE app_hits counter\napp_hits_total 7 # {trace_id="abc"} 1 1700000000.5\n# EOF\n'],
    ['protobuf', PROTOBUF_CONTENT_TYPE, encodeProtobufFamilies([APP_COUNTER])],
  ])('merges a %s app into one protobuf page on :15020 with agent and proxy metrics', async (_name, type, body) => {
    const ports = await start(type, body);
    const res = await scrape(`http://127.0.0.1:${ports.status}/stats/prometheus`, NATIVE_ACCEPT);
    expect(res.type).toBe(PROTOBUF_CONTENT_TYPE);
    const all = families(res.body);
    const names = all.map((f) => f.name);
    // server.go order: agent, proxy, app.
    expect(names.indexOf('istio_agent_scrapes_total')).toBeGreaterThanOrEqual(0);
    expect(names.indexOf('istio_agent_scrapes_total')).toBeLessThan(names.indexOf('istio_build'));
    expect(names.indexOf('istio_build')).toBeLessThan(names.indexOf('app_hits_total'));
    const hits = all.find((f) => f.name === 'app_hits_total');
    expect(hits).toMatchObject({ type: METRIC_TYPE.COUNTER, help: 'Hits.' });
    expect(hits?.metric[0]?.counter?.value).toBe(7);
    if (type !== PROMETHEUS_TEXT_CONTENT_TYPE) expect(hits?.metric[0]?.counter?.exemplar?.label).toEqual([{ name: 'trace_id', value: 'abc' }]);
  });

  it('passes a protobuf app native histogram through unchanged, and writes its classic part in text', async () => {
    const ports = await start(PROTOBUF_CONTENT_TYPE, encodeProtobufFamilies([APP_NATIVE]));
    const pb = families((await scrape(`http://127.0.0.1:${ports.status}/stats/prometheus`, NATIVE_ACCEPT)).body);
    const h = pb.find((f) => f.name === 'app_latency_seconds')?.metric[0]?.histogram;
    expect(h).toMatchObject({ schema: 3, zeroThreshold: 2 ** -128, positiveSpan: [{ offset: 0, length: 1 }, { offset: 7, length: 1 }], positiveDelta: [2, -1] });
    const text = await scrape(`http://127.0.0.1:${ports.status}/stats/prometheus`, 'text/plain;version=0.0.4');
    expect(text.type).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    const body = text.body.toString();
    expect(body).toContain('# HELP app_latency_seconds App latency.\n# TYPE app_latency_seconds histogram\n');
    expect(body).toContain('app_latency_seconds_bucket{path="/x",le="1"} 2\napp_latency_seconds_bucket{path="/x",le="+Inf"} 3\napp_latency_seconds_sum{path="/x"} 4\napp_latency_seconds_count{path="/x"} 3\n');
    const om = (await scrape(`http://127.0.0.1:${ports.status}/stats/prometheus`, 'application/openmetrics-text')).body.toString();
    expect(om.endsWith('app_latency_seconds_count{path="/x"} 3\n# EOF\n')).toBe(true);
  });

  it.each([
    ['bytes that are no MetricFamily', PROTOBUF_CONTENT_TYPE, Buffer.from('# TYPE a gauge\na 1\n')],
    ['a page cut short', PROTOBUF_CONTENT_TYPE, encodeProtobufFamilies([APP_COUNTER]).subarray(0, 10)],
    ['the protobuf text encoding', 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text', 'name: "x"'],
  ])('leaves out an invalid protobuf app page (%s) and counts it, keeping agent and proxy metrics', async (_name, type, body) => {
    const ports = await start(type, body);
    await scrape(`http://127.0.0.1:${ports.status}/stats/prometheus`, NATIVE_ACCEPT);
    const all = families((await scrape(`http://127.0.0.1:${ports.status}/stats/prometheus`, NATIVE_ACCEPT)).body);
    expect(all.some((f) => f.name.startsWith('app_'))).toBe(false);
    expect(all.find((f) => f.name === 'istio_build')).toBeDefined();
    const rejected = all.find((f) => f.name === 'meshtel_app_scrape_rejected_total')?.metric.find((m) => m.label.some((l) => l.value === 'invalid'));
    expect(rejected?.counter?.value).toBe(1);
  });
});

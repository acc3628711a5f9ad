import { afterEach, describe, expect, it } from 'vitest';
import { resolveSidecarOptions, type SidecarOptions } from '../../src/sidecar/options.js';
import { sidecarOptionsFromFlags } from '../../src/cli/commands/sidecar.js';
import { decodeProtobufPage } from '../../src/stats/exposition-protobuf.js';
import { httpApp, send, sidecar, workload, type Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const PROTOBUF_ACCEPT = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';
const resolve = (options: SidecarOptions, env: Record<string, string>): ReturnType<typeof resolveSidecarOptions> => resolveSidecarOptions({ ...options, env });
const FLAGS = { inbound: [] as string[], serviceListener: [] as string[], telemetry: true };

describe('sidecar native-histogram settings', () => {
  it('are off by default, on from MESHTEL_NATIVE_HISTOGRAMS with the schema and bucket variables, and options win', () => {
    expect(resolve({}, {}).nativeHistograms).toBeUndefined();
    expect(resolve({}, { MESHTEL_NATIVE_HISTOGRAM_SCHEMA: '2' }).nativeHistograms).toBeUndefined();
    expect(resolve({}, { MESHTEL_NATIVE_HISTOGRAMS: 'true', MESHTEL_NATIVE_HISTOGRAM_SCHEMA: '2', MESHTEL_NATIVE_HISTOGRAM_MAX_BUCKETS: '40' }).nativeHistograms).toEqual({
      schema: 2,
      zeroThreshold: 2 ** -128,
      maxBuckets: 40,
      maxExemplars: 10,
      exemplarTtlMs: 300_000,
    });
    expect(resolve({ nativeHistograms: false }, { MESHTEL_NATIVE_HISTOGRAMS: 'true' }).nativeHistograms).toBeUndefined();
    expect(resolve({ nativeHistograms: { schema: -1 } }, {}).nativeHistograms).toMatchObject({ schema: -1, maxBuckets: 160 });
  });

  it.each([
    [{}, { MESHTEL_NATIVE_HISTOGRAMS: 'yes please' }, 'MESHTEL_NATIVE_HISTOGRAMS'],
    [{}, { MESHTEL_NATIVE_HISTOGRAMS: 'true', MESHTEL_NATIVE_HISTOGRAM_SCHEMA: '9' }, 'MESHTEL_NATIVE_HISTOGRAM_SCHEMA'],
    [{}, { MESHTEL_NATIVE_HISTOGRAMS: 'true', MESHTEL_NATIVE_HISTOGRAM_MAX_BUCKETS: '-1' }, 'MESHTEL_NATIVE_HISTOGRAM_MAX_BUCKETS'],
    [{ nativeHistograms: { zeroThreshold: -1 } }, {}, 'nativeHistograms.zeroThreshold'],
  ])('refuses %j %j with MESHTEL_ERR_INVALID_CONFIG naming %s', (options, env, field) => {
    expect(() => resolve(options, env)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG', details: expect.objectContaining({ field }) }));
  });

  it('come from --native-histograms and its two settings, which need it', () => {
    expect(sidecarOptionsFromFlags({ ...FLAGS }, {}).nativeHistograms).toBeUndefined();
    expect(sidecarOptionsFromFlags({ ...FLAGS, nativeHistograms: true, nativeHistogramSchema: '1', nativeHistogramMaxBuckets: '0' }, {}).nativeHistograms).toEqual({ schema: 1, maxBuckets: 0 });
    expect(() => sidecarOptionsFromFlags({ ...FLAGS, nativeHistogramSchema: '1' }, {})).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_CLI_USAGE' }));
  });

  it('put native buckets on :15090 in protobuf, beside the classic ones, and nothing in text', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, nativeHistograms: true });
    cleanups.push(sc.close);
    expect((await send(sc.ports.inbound, {})).status).toBe(200);
    let duration;
    for (let i = 0; i < 50 && duration === undefined; i++) {
      const res = await fetch(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`, { headers: { accept: PROTOBUF_ACCEPT } });
      const page = decodeProtobufPage(Buffer.from(await res.arrayBuffer()));
      if (!page.ok) throw new Error(page.reason);
      duration = page.families.find((f) => f.name === 'istio_request_duration_milliseconds')?.metric[0]?.histogram;
      if (duration === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect(duration).toMatchObject({ sampleCount: 1, schema: 3, zeroThreshold: 2 ** -128 });
    expect(duration?.bucket?.length).toBeGreaterThan(0);
    // One observation: in the zero bucket (0 ms) or in exactly one positive bucket.
    expect((duration?.zeroCount ?? 0) + (duration?.positiveDelta ?? []).reduce((a, b) => a + b, 0)).toBe(1);
    const text = await (await fetch(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`)).text();
    expect(text).toContain('istio_request_duration_milliseconds_bucket{');
    expect(text).not.toMatch(/schema|zero_threshold/);
  });
});

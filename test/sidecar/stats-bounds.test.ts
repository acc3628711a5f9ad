/**
 * The stats recorder's bounds as sidecar settings (issue 12.3): options, MESHTEL_* variables and
 * `meshtel sidecar` flags, validated once at start by the stats stage's own resolver, errors naming
 * what the user wrote; and a running sidecar that applies them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { resolveSidecarOptions, STATS_ENV, type SidecarOptions } from '../../src/sidecar/options.js';
import { sidecarOptionsFromFlags } from '../../src/cli/commands/sidecar.js';
import { httpApp, send, series, sidecar, workload, type Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const resolve = (options: SidecarOptions, env: Record<string, string>): ReturnType<typeof resolveSidecarOptions> => resolveSidecarOptions({ ...options, env });
const FLAGS = { inbound: [] as string[], serviceListener: [] as string[], telemetry: true };

describe('sidecar stats bounds', () => {
  it('default to the recorder defaults', () => {
    expect(resolve({}, {}).stats).toEqual({
      maxSeriesPerMetric: 10_000,
      maxLabelValueLength: 600,
      maxExpositionBytes: 64 * 2 ** 20,
      maxPlainTextExpositionBytes: 16 * 2 ** 20,
      maxPlainTextSeriesPerMetric: 2500,
      seriesTtlMs: 0,
      labelAllowList: undefined,
      buckets: {},
      definitions: undefined,
    });
  });

  it('come from the MESHTEL_* variables (numbers, durations, JSON) and options win', () => {
    const env = {
      MESHTEL_MAX_SERIES_PER_METRIC: '400',
      MESHTEL_MAX_LABEL_VALUE_LENGTH: '100',
      MESHTEL_MAX_EXPOSITION_BYTES: '8388608',
      MESHTEL_MAX_PLAINTEXT_EXPOSITION_BYTES: '1048576',
      MESHTEL_MAX_PLAINTEXT_SERIES_PER_METRIC: '50',
      MESHTEL_SERIES_TTL: '10m',
      MESHTEL_LABEL_ALLOW_LIST: '{"destination_workload":["reviews-v1"]}',
      MESHTEL_HISTOGRAM_BUCKETS: '{"istio_request_duration_milliseconds":[1,5,10]}',
      MESHTEL_STATS_DEFINITIONS: '[{"name":"get_calls","value":"request.method == \'GET\' ? 1 : 0"}]',
    };
    expect(Object.keys(env).sort()).toEqual(Object.values(STATS_ENV).sort());
    expect(resolve({}, env).stats).toEqual({
      maxSeriesPerMetric: 400,
      maxLabelValueLength: 100,
      maxExpositionBytes: 8 * 2 ** 20,
      maxPlainTextExpositionBytes: 2 ** 20,
      maxPlainTextSeriesPerMetric: 50,
      seriesTtlMs: 600_000,
      labelAllowList: { destination_workload: ['reviews-v1'] },
      buckets: { istio_request_duration_milliseconds: [1, 5, 10] },
      definitions: [{ name: 'get_calls', value: "request.method == 'GET' ? 1 : 0" }],
    });
    expect(resolve({ stats: { maxSeriesPerMetric: 7, maxPlainTextSeriesPerMetric: 2 } }, env).stats).toMatchObject({ maxSeriesPerMetric: 7, maxPlainTextSeriesPerMetric: 2, maxLabelValueLength: 100 });
  });

  it.each([
    [{}, { MESHTEL_MAX_EXPOSITION_BYTES: 'lots' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_MAX_EXPOSITION_BYTES'],
    [{}, { MESHTEL_MAX_SERIES_PER_METRIC: '0' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_MAX_SERIES_PER_METRIC'],
    [{}, { MESHTEL_MAX_LABEL_VALUE_LENGTH: '-1' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_MAX_LABEL_VALUE_LENGTH'],
    [{}, { MESHTEL_MAX_EXPOSITION_BYTES: '1048576', MESHTEL_MAX_PLAINTEXT_EXPOSITION_BYTES: '2097152' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_MAX_PLAINTEXT_EXPOSITION_BYTES'],
    [{}, { MESHTEL_SERIES_TTL: 'soon' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_SERIES_TTL'],
    [{}, { MESHTEL_LABEL_ALLOW_LIST: '{' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_LABEL_ALLOW_LIST'],
    [{}, { MESHTEL_LABEL_ALLOW_LIST: '{"reporter":"source"}' }, 'MESHTEL_ERR_INVALID_CONFIG', 'MESHTEL_LABEL_ALLOW_LIST.reporter'],
    [{}, { MESHTEL_HISTOGRAM_BUCKETS: '{"istio_requests_total":[1]}' }, 'MESHTEL_ERR_INVALID_BUCKETS', 'MESHTEL_HISTOGRAM_BUCKETS.istio_requests_total'],
    [{}, { MESHTEL_HISTOGRAM_BUCKETS: '{"istio_request_bytes":[5,1]}' }, 'MESHTEL_ERR_INVALID_BUCKETS', 'buckets.istio_request_bytes[1]'],
    [{}, { MESHTEL_STATS_DEFINITIONS: '[{"name":"requests_total","value":"1"}]' }, 'MESHTEL_ERR_METRIC_CONFLICT', 'definitions[0].name'],
    [{ stats: { maxExpositionBytes: Number.NaN } }, {}, 'MESHTEL_ERR_INVALID_CONFIG', 'stats.maxExpositionBytes'],
  ])('refuses %j %j with %s naming %s', (options, env, code, field) => {
    expect(() => resolve(options, env)).toThrow(expect.objectContaining({ code, details: expect.objectContaining({ field }) }));
  });

  it('come from the flags, validated with the flag named, and flags win over the environment', () => {
    const o = sidecarOptionsFromFlags({ ...FLAGS, maxSeriesPerMetric: '300', seriesTtl: '30s', labelAllowList: '{"source_app":["a"]}' }, {});
    expect(o.stats).toEqual({ maxSeriesPerMetric: 300, seriesTtlMs: 30_000, labelAllowList: { source_app: ['a'] } });
    expect(resolve(o, { MESHTEL_MAX_SERIES_PER_METRIC: '9', MESHTEL_MAX_LABEL_VALUE_LENGTH: '50' }).stats).toMatchObject({ maxSeriesPerMetric: 300, maxLabelValueLength: 50 });
    expect(() => sidecarOptionsFromFlags({ ...FLAGS, maxExpositionBytes: '1k' }, {})).toThrow(
      expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG', details: expect.objectContaining({ field: '--max-exposition-bytes' }) }),
    );
    expect(() => sidecarOptionsFromFlags({ ...FLAGS, histogramBuckets: '[1,2]' }, {})).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_BUCKETS' }));
  });

  it('are applied by a running sidecar: an allow-list and the label length cap from the environment', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const sc = await sidecar({
      metadata: workload('ratings-and-reviews', 'bookinfo-reviews'),
      app: { port: app.port },
      env: { MESHTEL_LABEL_ALLOW_LIST: '{"request_protocol":["grpc"]}', MESHTEL_MAX_LABEL_VALUE_LENGTH: '16' },
    });
    cleanups.push(sc.close);
    expect((await send(sc.ports.inbound, {})).status).toBe(200);
    const lines = await series(sc, 'istio_requests_total');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('request_protocol="overflow"');
    // destination_workload `ratings-and-reviews-v1` (22) is cut to 16: 7 characters, `~` and the tag of the rest.
    expect(lines[0]).toMatch(/destination_workload="ratings~[0-9a-f]{8}"/);
    const truncated = await series(sc, 'meshtel_label_value_truncated_total');
    expect(truncated.some((l) => l.startsWith('meshtel_label_value_truncated_total{label="destination_workload"} '))).toBe(true);
  });
});

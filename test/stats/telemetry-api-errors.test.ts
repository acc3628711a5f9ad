/**
 * Issue 10.3: one tag expression that does not compile drops only its tag, as istio/proxy
 * `source/extensions/filters/http/istio_stats/istio_stats.cc` (`Config`: no expression id → a standard
 * tag is skipped in `overrideTags`, an added tag is not added); counted and logged once. Also
 * `match.customMetric` overrides (istio/api `MetricSelector.custom_metric`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import { lintTelemetry } from '../../src/cli/lint.js';
import { WEBAPP, inboundFromGateway, samples } from './fixtures.js';

let stats: IstioStats | undefined;
afterEach(() => stats?.close());

const BAD = {
  spec: {
    metrics: [
      {
        overrides: [
          {
            match: { metric: 'REQUEST_COUNT' },
            tagOverrides: {
              source_app: { value: "request.headers['x'" },
              added_bad: { value: 'request.method ==' },
              added_good: { value: 'request.method' },
            },
          },
        ],
      },
    ],
  },
};

describe('Telemetry expression failures', () => {
  it('drops only the failing tags, applies the rest, counts and logs each once', async () => {
    const warned: unknown[] = [];
    const noop = (): void => undefined;
    const logger = { debug: noop, info: noop, error: noop, warn: (...a: unknown[]) => warned.push(a), warnOnce: noop } as never;
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, telemetry: parseTelemetry(BAD), logger });
    stats.recordHttp(inboundFromGateway({ method: 'GET' }));
    stats.recordHttp(inboundFromGateway({ method: 'GET' }));
    const text = await renderMetricsToString(stats, 'text');
    const req = samples(text, 'istio_requests_total');
    expect(req).toHaveLength(1);
    expect(req[0]?.labels).not.toHaveProperty('source_app');
    expect(req[0]?.labels).not.toHaveProperty('added_bad');
    expect(req[0]?.labels.added_good).toBe('GET');
    expect(req[0]?.value).toBe('2');
    // Other metrics keep their standard tags.
    expect(samples(text, 'istio_request_bytes_count')[0]?.labels).toHaveProperty('source_app');
    const errs = samples(text, 'meshtel_telemetry_expression_errors_total');
    expect(errs.map((e) => [e.labels.metric, e.labels.tag, e.value])).toEqual([
      ['REQUEST_COUNT', 'source_app', '1'],
      ['REQUEST_COUNT', 'added_bad', '1'],
    ]);
    expect(warned).toHaveLength(2);
  });

  it('meshtel lint reports the failing tag as a warning, not an error', async () => {
    const yaml = `spec:\n  metrics:\n  - overrides:\n    - tagOverrides: { x: { value: "request.headers['a'" } }\n`;
    const result = await lintTelemetry(yaml);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain('spec.metrics[0].overrides[0].tagOverrides.x.value');
  });

  it('applies match.customMetric overrides to that custom metric only', async () => {
    const telemetry = parseTelemetry({
      spec: {
        metrics: [
          {
            overrides: [
              { match: { customMetric: 'istio_calls' }, tagOverrides: { method: { value: 'request.method' } } },
              { tagOverrides: { everywhere: { value: "'e'" } } },
            ],
          },
        ],
      },
    });
    expect(telemetry.overrides[0]?.customMetric).toBe('calls');
    stats = createIstioStats({
      local: WEBAPP,
      tcpReportingIntervalMs: 0,
      telemetry,
      definitions: [
        { name: 'calls', value: '1' },
        { name: 'other', value: '1' },
      ],
    });
    stats.recordHttp(inboundFromGateway({ method: 'POST' }));
    const text = await renderMetricsToString(stats, 'text');
    expect(samples(text, 'istio_calls').map((x) => x.labels)).toEqual([{ everywhere: 'e', method: 'POST' }]);
    expect(samples(text, 'istio_other').map((x) => x.labels)).toEqual([{ everywhere: 'e' }]);
    // Standard metrics do not get the customMetric tag.
    expect(samples(text, 'istio_requests_total')[0]?.labels).not.toHaveProperty('method');
    expect(samples(text, 'istio_requests_total')[0]?.labels.everywhere).toBe('e');
  });
});

/**
 * Telemetry API (telemetry.istio.io/v1) parsing and its effect on the recorded metrics.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseTelemetry } from '../../src/stats/telemetry-api.js';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import { renderMetricsToString } from '../../src/stats/exposition.js';
import { HTTP_LABELS } from '../../src/stats/definitions.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { WEBAPP, inboundFromGateway, outboundToCatalog, samples } from './fixtures.js';

function telemetry(overrides: string): string {
  return `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: t, namespace: istio-system }
spec:
  metrics:
  - providers: [{ name: prometheus }]
    overrides:
${overrides}`;
}

describe('parseTelemetry()', () => {
  it.each([
    ['bad mode', telemetry('    - match: { metric: REQUEST_COUNT, mode: BOTH }'), 'spec.metrics[0].overrides[0].match.mode'],
    ['bad metric', telemetry('    - match: { metric: REQUESTS }'), 'spec.metrics[0].overrides[0].match.metric'],
    ['disabled not a bool', telemetry('    - disabled: "yes"'), 'spec.metrics[0].overrides[0].disabled'],
    ['bad operation', telemetry('    - tagOverrides: { a: { operation: DELETE } }'), 'spec.metrics[0].overrides[0].tagOverrides.a.operation'],
    ['UPSERT without value', telemetry('    - tagOverrides: { a: { operation: UPSERT } }'), 'spec.metrics[0].overrides[0].tagOverrides.a.value'],
    ['bad tag name', telemetry('    - tagOverrides: { "a-b": { value: "1" } }'), 'spec.metrics[0].overrides[0].tagOverrides.a-b'],
    ['overrides not a list', 'spec: { metrics: [ { overrides: 3 } ] }', 'spec.metrics[0].overrides'],
    ['second override', telemetry('    - disabled: true\n    - match: { mode: NONE }'), 'spec.metrics[0].overrides[1].match.mode'],
    ['wrong kind', 'apiVersion: telemetry.istio.io/v1\nkind: Sidecar', 'kind'],
    ['wrong apiVersion', 'apiVersion: networking.istio.io/v1\nkind: Telemetry', 'apiVersion'],
    ['bad reportingInterval', 'spec: { metrics: [ { reportingInterval: soon } ] }', 'spec.metrics[0].reportingInterval'],
  ])('rejects %s naming %s', (_n, yaml, field) => {
    try {
      parseTelemetry(yaml);
      expect.unreachable();
    } catch (e) {
      expect(isMeshtelError(e, 'MESHTEL_ERR_INVALID_TELEMETRY')).toBe(true);
      expect((e as { details: { field: string } }).details.field).toBe(field);
      expect((e as Error).message).toContain(field);
    }
  });

  it('keeps the rest of the configuration when a tag expression does not parse (issue 10.3)', () => {
    const cfg = parseTelemetry(telemetry("    - tagOverrides: { x: { value: \"request.headers['a'\" }, y: { value: \"request.method\" } }"));
    expect(cfg.expressionErrors).toHaveLength(1);
    expect(cfg.expressionErrors[0]).toMatchObject({ field: 'spec.metrics[0].overrides[0].tagOverrides.x.value', metric: 'ALL_METRICS', tag: 'x' });
    expect(cfg.overrides[0]?.tagOverrides.x?.operation).toBe('INVALID');
    expect(cfg.overrides[0]?.tagOverrides.y?.operation).toBe('UPSERT');
  });

  it('rejects broken YAML with MESHTEL_ERR_INVALID_TELEMETRY', () => {
    expect(() => parseTelemetry('spec: [unclosed')).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_TELEMETRY' }));
  });

  it('reads multi-document YAML in order, the reporting interval and ignores non-prometheus providers', () => {
    const c = parseTelemetry(`${telemetry('    - disabled: true')}
---
spec:
  metrics:
  - providers: [{ name: stackdriver }]
    overrides: [ { disabled: false } ]
  - reportingInterval: 15s
    overrides: [ { match: { metric: TCP_SENT_BYTES, mode: CLIENT }, disabled: false } ]
`);
    expect(c.overrides.map((o) => [o.metric, o.mode, o.disabled])).toEqual([
      ['ALL_METRICS', 'CLIENT_AND_SERVER', true],
      ['TCP_SENT_BYTES', 'CLIENT', false],
    ]);
    expect(c.reportingIntervalMs).toBe(15000);
  });

  it('accepts an already parsed object', () => {
    const c = parseTelemetry({ spec: { metrics: [{ overrides: [{ tagOverrides: { a: { operation: 'REMOVE' } } }] }] } });
    expect(c.overrides[0]?.tagOverrides).toEqual({ a: { operation: 'REMOVE' } });
  });
});

describe('Telemetry API semantics in the recorder', () => {
  let stats: IstioStats | undefined;
  afterEach(() => stats?.close());

  async function run(yaml: string, record: (s: IstioStats) => void): Promise<string> {
    stats = createIstioStats({ local: WEBAPP, telemetry: parseTelemetry(yaml) });
    record(stats);
    return renderMetricsToString(stats, 'text');
  }

  it('disables a metric for one mode only', async () => {
    const text = await run(telemetry('    - match: { metric: REQUEST_COUNT, mode: CLIENT }\n      disabled: true'), (s) => {
      s.recordHttp(outboundToCatalog());
      s.recordHttp(inboundFromGateway());
    });
    expect(samples(text, 'istio_requests_total').map((x) => x.labels.reporter)).toEqual(['destination']);
    expect(samples(text, 'istio_request_duration_milliseconds_count').map((x) => x.labels.reporter).sort()).toEqual(['destination', 'source']);
  });

  it('lets a later override re-enable what an earlier one disabled', async () => {
    const text = await run(telemetry('    - disabled: true\n    - match: { metric: REQUEST_COUNT }\n      disabled: false'), (s) => s.recordHttp(inboundFromGateway()));
    expect(samples(text, 'istio_requests_total')).toHaveLength(1);
    expect(samples(text, 'istio_request_bytes_count')).toHaveLength(0);
  });

  it('replaces a standard tag in place and appends new tags sorted by name', async () => {
    const text = await run(
      telemetry(`    - match: { metric: ALL_METRICS }
      tagOverrides:
        zeta: { value: "'z'" }
        alpha: { value: "request.headers['x-user']" }
        response_code: { value: "response.code >= 500 ? '5xx' : 'ok'" }
        source_app: { operation: REMOVE }`),
      (s) => s.recordHttp(inboundFromGateway({ requestHeaders: { 'x-user': 'bob' }, responseCode: 503 })),
    );
    const [line] = samples(text, 'istio_requests_total');
    const expected = [...HTTP_LABELS.filter((l) => l !== 'source_app'), 'alpha', 'zeta'];
    expect(Object.keys(line?.labels ?? {})).toEqual(expected);
    expect(line?.labels).toMatchObject({ response_code: '5xx', alpha: 'bob', zeta: 'z' });
  });

  it('gives unknown when an expression fails and still counts each request in its own series', async () => {
    const text = await run(telemetry("    - tagOverrides: { user: { value: \"request.headers['x-user']\" } }"), (s) => {
      s.recordHttp(inboundFromGateway({ requestHeaders: { 'x-user': 'a' } }));
      s.recordHttp(inboundFromGateway({ requestHeaders: {} }));
      s.recordHttp(inboundFromGateway({ requestHeaders: { 'x-user': 'a' } }));
    });
    const got = Object.fromEntries(samples(text, 'istio_requests_total').map((x) => [x.labels.user, x.value]));
    expect(got).toEqual({ a: '2', unknown: '1' });
  });

  it('evaluates TCP expressions once, at open', async () => {
    const text = await run(telemetry('    - match: { metric: TCP_OPENED_CONNECTIONS }\n      tagOverrides: { mesh: { value: "node.metadata[\'MESH_ID\']" } }'), (s) => {
      const c = s.openTcp(inboundFromGateway());
      c.close();
    });
    expect(samples(text, 'istio_tcp_connections_opened_total')[0]?.labels.mesh).toBe('cluster.local');
    expect(samples(text, 'istio_tcp_connections_closed_total')[0]?.labels.mesh).toBeUndefined();
  });

  it('ignores REMOVE of a tag that is not standard and not added', async () => {
    const text = await run(telemetry('    - tagOverrides: { nope: { operation: REMOVE } }'), (s) => s.recordHttp(inboundFromGateway()));
    expect(Object.keys(samples(text, 'istio_requests_total')[0]?.labels ?? {})).toEqual([...HTTP_LABELS]);
  });
});

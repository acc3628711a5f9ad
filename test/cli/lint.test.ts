import { describe, expect, it } from 'vitest';
import { lintTelemetry } from '../../src/cli/lint.js';
import type { LintMetric } from '../../src/cli/lint.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { runMeshtel } from './support.js';

const TELEMETRY = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        request_protocol: {operation: REMOVE}
        source_mesh_id: {value: "node.metadata['MESH_ID']"}
        destination_app: {value: "'fixed'"}
    - match: {metric: TCP_SENT_BYTES}
      disabled: true
`;

const find = (ms: readonly LintMetric[], metric: string, mode: string) => ms.find((m) => m.metric === metric && m.mode === mode) as LintMetric;

describe('lintTelemetry()', () => {
  it('shows a removed tag gone, a replaced standard tag in place and an added tag after the standard ones', async () => {
    const { metrics } = await lintTelemetry(TELEMETRY);
    const server = find(metrics, 'istio_requests_total', 'SERVER');
    expect(server.labels).not.toContain('request_protocol');
    expect(server.labels.indexOf('destination_app')).toBe(server.standard.indexOf('destination_app'));
    expect(server.labels.at(-1)).toBe('source_mesh_id');
    expect(server.labels).toHaveLength(25);
    expect(server.expressions).toEqual({ source_mesh_id: "node.metadata['MESH_ID']", destination_app: "'fixed'" });
    expect(server.removed).toEqual(['request_protocol']);
  });

  it('leaves the other mode and metrics with their standard labels', async () => {
    const { metrics } = await lintTelemetry(TELEMETRY);
    expect(find(metrics, 'istio_requests_total', 'CLIENT').labels).toEqual(find(metrics, 'istio_requests_total', 'CLIENT').standard);
    expect(find(metrics, 'istio_request_duration_milliseconds', 'SERVER').labels).toHaveLength(25);
    expect(find(metrics, 'istio_tcp_connections_opened_total', 'SERVER').labels).toHaveLength(23);
    expect(find(metrics, 'istio_request_messages_total', 'CLIENT').labels).toHaveLength(20);
  });

  it('marks a metric disabled in both modes when the override has no mode', async () => {
    const { metrics } = await lintTelemetry(TELEMETRY);
    expect(metrics.filter((m) => m.metric === 'istio_tcp_sent_bytes_total').map((m) => [m.mode, m.enabled])).toEqual([
      ['CLIENT', false],
      ['SERVER', false],
    ]);
  });

  it.each([
    ['a bad mode', 'mode: BOTH', 'MESHTEL_ERR_INVALID_TELEMETRY', 'spec.metrics[0].overrides[0].match.mode'],
    ['a bad metric', 'metric: REQUESTS', 'MESHTEL_ERR_INVALID_TELEMETRY', 'spec.metrics[0].overrides[0].match.metric'],
  ])('rejects %s naming the field', async (_name, match, code, field) => {
    const yaml = `apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nspec:\n  metrics:\n  - overrides:\n    - match: {${match}}\n`;
    const err = await lintTelemetry(yaml).catch((e: unknown) => e);
    expect(isMeshtelError(err, code as 'MESHTEL_ERR_INVALID_TELEMETRY')).toBe(true);
    expect((err as Error).message).toContain(field);
  });

  it('numbers documents from 1 in its errors, as inject does', async () => {
    const good = 'apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nspec: {}\n';
    const bad = 'apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nspec:\n  metrics:\n  - overrides:\n    - match: {mode: BOTH}\n';
    const err = await lintTelemetry(`${good}---\n${bad}`).catch((e: unknown) => e);
    expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_TELEMETRY')).toBe(true);
    expect((err as Error).message).toContain('document 2: spec.metrics[0].overrides[0].match.mode');
    const yamlErr = await lintTelemetry(`${good}---\nspec: [unclosed\n`).catch((e: unknown) => e);
    expect(isMeshtelError(yamlErr, 'MESHTEL_ERR_INVALID_TELEMETRY')).toBe(true);
    expect((yamlErr as Error).message).toMatch(/^document 2: YAML error/);
  });

  it('warns about a tag expression that does not parse and drops that tag only (issue 10.3, as Envoy)', async () => {
    const yaml = `apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nspec:\n  metrics:\n  - overrides:\n    - tagOverrides:\n        x: {value: "request.headers['a' +"}\n`;
    const result = await lintTelemetry(yaml);
    expect(result.warnings).toEqual([expect.stringContaining('spec.metrics[0].overrides[0].tagOverrides.x.value')]);
    expect(result.metrics.every((m) => !m.labels.includes('x'))).toBe(true);
  });
});

describe('meshtel lint (CLI)', () => {
  it('prints the per-mode table from stdin', async () => {
    const run = await runMeshtel(['lint', '-'], { stdin: TELEMETRY });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('-: valid, 2 override(s)');
    expect(run.stdout).toMatch(/SERVER \(reporter=destination/);
    expect(run.stdout).toMatch(/istio_requests_total\s+on\s+25: standard -request_protocol \+source_mesh_id/);
    expect(run.stdout).toMatch(/istio_tcp_sent_bytes_total\s+disabled/);
  });

  it('exits 1 with the code for an invalid resource', async () => {
    const run = await runMeshtel(['lint', '-'], { stdin: 'apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nspec:\n  metrics:\n  - overrides:\n    - match: {mode: BOTH}\n' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('MESHTEL_ERR_INVALID_TELEMETRY');
  });
});

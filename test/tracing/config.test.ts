/** Tracing configuration: explicit options, the few OTEL_* variables the SDK cannot apply, Istio's defaults; bad values are typed errors. */
import { describe, expect, it } from 'vitest';
import { isMeshtelError } from '../../src/core/errors.js';
import { resolveTracingConfig } from '../../src/tracing/config.js';
import type { TracingOptions } from '../../src/tracing/config.js';
import { createRecordingExporter } from './support/recording-exporter.js';
import { NODE_ID, withEnv, workload } from './support/fixtures.js';

function resolve(options: Partial<TracingOptions> = {}, env: Record<string, string> = {}): ReturnType<typeof resolveTracingConfig> {
  return withEnv(env, () => resolveTracingConfig({ local: workload(), nodeId: NODE_ID, ...options }));
}

describe('resolveTracingConfig()', () => {
  it("defaults to Istio's 1 % sampling, OTLP, W3C + B3 multi, Istio tags on, and leaves the rest to the SDK", () => {
    const c = resolve();
    expect(c).toMatchObject({
      samplingPercent: 1,
      samplingNumerator: 100,
      exporter: 'otlp',
      // The exporter resolves OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT itself; the BatchSpanProcessor reads OTEL_BSP_*.
      endpoint: '',
      propagation: ['tracecontext', 'b3multi'],
      istioTags: true,
      serviceName: undefined,
      maxQueueSize: undefined,
      maxExportBatchSize: undefined,
      scheduledDelayMillis: undefined,
      exportTimeoutMillis: undefined,
      shutdownTimeoutMillis: 2000,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('rounds the percentage to Envoy’s 10000 buckets', () => {
    expect(resolve({ samplingPercent: 0.015 }).samplingNumerator).toBe(2);
    expect(resolve({ samplingPercent: 100 }).samplingNumerator).toBe(10000);
  });

  it('appends /v1/traces to an endpoint option given as a bare origin, keeps a full URL', () => {
    expect(resolve({ endpoint: 'http://jaeger:4318' }).endpoint).toBe('http://jaeger:4318/v1/traces');
    expect(resolve({ endpoint: 'http://jaeger:4318/v1/traces' }).endpoint).toBe('http://jaeger:4318/v1/traces');
  });

  it('caps the default batch size at a smaller queue', () => {
    expect(resolve({ maxQueueSize: 64 }).maxExportBatchSize).toBe(64);
  });

  it('accepts a SpanExporter instance', () => {
    const e = createRecordingExporter();
    expect(resolve({ exporter: e }).exporter).toBe(e);
  });

  describe('the variables the SDK cannot apply for meshtel', () => {
    it.each([
      [{ OTEL_TRACES_SAMPLER: 'always_on' }, 100],
      [{ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, 0],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, 25],
      [{ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' }, 100],
    ])('maps %o to Envoy random sampling of %d %%', (env, percent) => {
      expect(resolve({}, env).samplingPercent).toBe(percent);
    });

    it('lets samplingPercent override OTEL_TRACES_SAMPLER', () => {
      expect(resolve({ samplingPercent: 5 }, { OTEL_TRACES_SAMPLER: 'always_on' }).samplingPercent).toBe(5);
    });

    it('reads the propagators in order (baggage is the exchange’s) and the exporter name', () => {
      expect(resolve({}, { OTEL_PROPAGATORS: 'b3,tracecontext,baggage', OTEL_TRACES_EXPORTER: 'console' })).toMatchObject({
        propagation: ['b3', 'tracecontext'],
        exporter: 'console',
      });
    });
  });

  describe('invalid values', () => {
    it.each([
      { name: 'samplingPercent above 100', options: { samplingPercent: 101 }, field: 'samplingPercent' },
      { name: 'samplingPercent NaN', options: { samplingPercent: Number.NaN }, field: 'samplingPercent' },
      { name: 'an unknown exporter', options: { exporter: 'zipkin' as never }, field: 'exporter' },
      { name: 'an unknown OTEL_TRACES_EXPORTER', options: {}, env: { OTEL_TRACES_EXPORTER: 'zipkin' }, field: 'OTEL_TRACES_EXPORTER' },
      { name: 'two exporters', options: {}, env: { OTEL_TRACES_EXPORTER: 'otlp,console' }, field: 'OTEL_TRACES_EXPORTER' },
      { name: 'a grpc OTLP transport for traces', options: {}, env: { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }, field: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' },
      { name: 'an unknown sampler', options: {}, env: { OTEL_TRACES_SAMPLER: 'jaeger_remote' }, field: 'OTEL_TRACES_SAMPLER' },
      { name: 'a sampler ratio above 1', options: {}, env: { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, field: 'OTEL_TRACES_SAMPLER_ARG' },
      { name: 'an OTLP transport we do not ship', options: {}, env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, field: 'OTEL_EXPORTER_OTLP_PROTOCOL' },
      { name: 'a relative endpoint', options: { endpoint: 'jaeger:4318' }, field: 'endpoint' },
      { name: 'a non-http endpoint', options: { endpoint: 'ftp://jaeger/' }, field: 'endpoint' },
      { name: 'an endpoint with the console exporter', options: { exporter: 'console' as const, endpoint: 'http://x/' }, field: 'endpoint' },
      { name: 'an unknown propagation format', options: { propagation: ['jaeger' as never] }, field: 'propagation' },
      { name: 'an unknown OTEL_PROPAGATORS entry', options: {}, env: { OTEL_PROPAGATORS: 'tracecontext,xray' }, field: 'OTEL_PROPAGATORS' },
      { name: 'a zero queue', options: { maxQueueSize: 0 }, field: 'maxQueueSize' },
      { name: 'a batch larger than the queue', options: { maxQueueSize: 10, maxExportBatchSize: 20 }, field: 'maxExportBatchSize' },
      { name: 'an empty node id', options: { nodeId: '' }, field: 'nodeId' },
      { name: 'a non-boolean istioTags', options: { istioTags: 'yes' as never }, field: 'istioTags' },
    ])('rejects $name with MESHTEL_ERR_INVALID_TRACING naming $field', ({ options, env, field }) => {
      let caught: unknown;
      try {
        resolve(options, (env ?? {}) as Record<string, string>);
      } catch (err) {
        caught = err;
      }
      expect(isMeshtelError(caught, 'MESHTEL_ERR_INVALID_TRACING')).toBe(true);
      expect((caught as { details: { field: string } }).details.field).toBe(field);
      expect((caught as Error).message).toContain(field);
    });
  });
});

/** Tracing configuration: explicit options, then OTEL_* variables, then Istio's defaults; bad values are typed errors. */
import { describe, expect, it } from 'vitest';
import { isMeshtelError } from '../../src/core/errors.js';
import { resolveTracingConfig } from '../../src/tracing/config.js';
import type { TracingOptions } from '../../src/tracing/config.js';
import { createRecordingExporter } from './support/recording-exporter.js';
import { NODE_ID, workload } from './support/fixtures.js';

function resolve(options: Partial<TracingOptions> = {}, env: Record<string, string | undefined> = {}): ReturnType<typeof resolveTracingConfig> {
  return resolveTracingConfig({ local: workload(), nodeId: NODE_ID, env, ...options });
}

describe('resolveTracingConfig()', () => {
  it("defaults to Istio's 1 % sampling, OTLP to localhost:4318/v1/traces, W3C + B3 multi, Istio tags on", () => {
    const c = resolve();
    expect(c).toMatchObject({
      samplingPercent: 1,
      samplingNumerator: 100,
      exporter: 'otlp',
      endpoint: 'http://localhost:4318/v1/traces',
      propagation: ['tracecontext', 'b3multi'],
      istioTags: true,
      serviceName: 'productpage.default',
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 5000,
      exportTimeoutMillis: 30000,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('rounds the percentage to Envoy’s 10000 buckets', () => {
    expect(resolve({ samplingPercent: 0.015 }).samplingNumerator).toBe(2);
    expect(resolve({ samplingPercent: 100 }).samplingNumerator).toBe(10000);
  });

  describe('environment', () => {
    it.each([
      [{ OTEL_TRACES_SAMPLER: 'always_on' }, 100],
      [{ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, 0],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, 25],
      [{ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' }, 100],
    ])('maps %o to %d %%', (env, percent) => {
      expect(resolve({}, env).samplingPercent).toBe(percent);
    });

    it('lets samplingPercent override OTEL_TRACES_SAMPLER', () => {
      expect(resolve({ samplingPercent: 5 }, { OTEL_TRACES_SAMPLER: 'always_on' }).samplingPercent).toBe(5);
    });

    it.each([
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger-collector.istio-system:4318' }, 'http://jaeger-collector.istio-system:4318/v1/traces'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/otlp/' }, 'http://collector:4318/otlp/v1/traces'],
      [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318' }, 'http://collector:4318/custom'],
    ])('resolves the OTLP endpoint from %o', (env, url) => {
      expect(resolve({}, env).endpoint).toBe(url);
    });

    it('appends /v1/traces to an endpoint option given as a bare origin, keeps a full URL', () => {
      expect(resolve({ endpoint: 'http://jaeger:4318' }).endpoint).toBe('http://jaeger:4318/v1/traces');
      expect(resolve({ endpoint: 'http://jaeger:4318/v1/traces' }).endpoint).toBe('http://jaeger:4318/v1/traces');
    });

    it('reads the Jaeger collector endpoint or falls back to the UDP agent', () => {
      expect(resolve({}, { OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_ENDPOINT: 'http://jaeger:14268/api/traces' }).endpoint).toBe(
        'http://jaeger:14268/api/traces',
      );
      expect(resolve({}, { OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_AGENT_HOST: 'agent', OTEL_EXPORTER_JAEGER_AGENT_PORT: '6831' })).toMatchObject({
        endpoint: '',
        jaegerAgentHost: 'agent',
        jaegerAgentPort: 6831,
      });
    });

    it('reads propagators, service name, OTLP headers/timeout and BSP limits', () => {
      const c = resolve(
        {},
        {
          OTEL_PROPAGATORS: 'b3,tracecontext,baggage',
          OTEL_SERVICE_NAME: 'productpage-custom',
          OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20x,tenant=a',
          OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'tenant=b',
          OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '2500',
          OTEL_BSP_MAX_QUEUE_SIZE: '100',
          OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
          OTEL_BSP_SCHEDULE_DELAY: '200',
          OTEL_BSP_EXPORT_TIMEOUT: '1000',
        },
      );
      expect(c).toMatchObject({
        propagation: ['b3', 'tracecontext'],
        serviceName: 'productpage-custom',
        otlpHeaders: { authorization: 'Bearer x', tenant: 'b' },
        otlpTimeoutMillis: 2500,
        maxQueueSize: 100,
        maxExportBatchSize: 10,
        scheduledDelayMillis: 200,
        exportTimeoutMillis: 1000,
      });
    });

    it('caps the default batch size at a smaller queue', () => {
      expect(resolve({ maxQueueSize: 64 }).maxExportBatchSize).toBe(64);
    });

    it('accepts a SpanExporter instance', () => {
      const e = createRecordingExporter();
      expect(resolve({ exporter: e }).exporter).toBe(e);
    });
  });

  describe('invalid values', () => {
    it.each([
      { name: 'samplingPercent above 100', options: { samplingPercent: 101 }, env: {}, field: 'samplingPercent' },
      { name: 'samplingPercent NaN', options: { samplingPercent: Number.NaN }, env: {}, field: 'samplingPercent' },
      { name: 'an unknown exporter', options: { exporter: 'zipkin' as never }, env: {}, field: 'exporter' },
      { name: 'an unknown OTEL_TRACES_EXPORTER', options: {}, env: { OTEL_TRACES_EXPORTER: 'zipkin' }, field: 'OTEL_TRACES_EXPORTER' },
      { name: 'two exporters', options: {}, env: { OTEL_TRACES_EXPORTER: 'otlp,console' }, field: 'OTEL_TRACES_EXPORTER' },
      { name: 'an unknown sampler', options: {}, env: { OTEL_TRACES_SAMPLER: 'jaeger_remote' }, field: 'OTEL_TRACES_SAMPLER' },
      { name: 'a sampler ratio above 1', options: {}, env: { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }, field: 'OTEL_TRACES_SAMPLER_ARG' },
      { name: 'an OTLP transport we do not ship', options: {}, env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, field: 'OTEL_EXPORTER_OTLP_PROTOCOL' },
      { name: 'a relative endpoint', options: { endpoint: 'jaeger:4318' }, env: {}, field: 'endpoint' },
      { name: 'a non-http endpoint', options: { endpoint: 'ftp://jaeger/' }, env: {}, field: 'endpoint' },
      { name: 'an endpoint with the console exporter', options: { exporter: 'console' as const, endpoint: 'http://x/' }, env: {}, field: 'endpoint' },
      { name: 'a bad OTEL_EXPORTER_OTLP_ENDPOINT', options: {}, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, field: 'OTEL_EXPORTER_OTLP_ENDPOINT' },
      { name: 'an unknown propagation format', options: { propagation: ['jaeger' as never] }, env: {}, field: 'propagation' },
      { name: 'an unknown OTEL_PROPAGATORS entry', options: {}, env: { OTEL_PROPAGATORS: 'tracecontext,xray' }, field: 'OTEL_PROPAGATORS' },
      { name: 'a zero queue', options: { maxQueueSize: 0 }, env: {}, field: 'maxQueueSize' },
      { name: 'a fractional queue from the env', options: {}, env: { OTEL_BSP_MAX_QUEUE_SIZE: '10.5' }, field: 'OTEL_BSP_MAX_QUEUE_SIZE' },
      { name: 'a batch larger than the queue', options: { maxQueueSize: 10, maxExportBatchSize: 20 }, env: {}, field: 'maxExportBatchSize' },
      { name: 'a malformed OTLP header list', options: {}, env: { OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, field: 'OTEL_EXPORTER_OTLP_HEADERS' },
      { name: 'an empty node id', options: { nodeId: '' }, env: {}, field: 'nodeId' },
      { name: 'a non-boolean istioTags', options: { istioTags: 'yes' as never }, env: {}, field: 'istioTags' },
    ])('rejects $name with MESHTEL_ERR_INVALID_TRACING naming $field', ({ options, env, field }) => {
      let caught: unknown;
      try {
        resolve(options, env);
      } catch (err) {
        caught = err;
      }
      expect(isMeshtelError(caught, 'MESHTEL_ERR_INVALID_TRACING')).toBe(true);
      expect((caught as { details: { field: string } }).details.field).toBe(field);
      expect((caught as Error).message).toContain(field);
    });
  });
});

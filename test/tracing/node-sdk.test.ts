/**
 * The sidecar's tracing through NodeSDK: the SDK reads the standard OTEL_* variables itself (endpoint, service
 * name, resource attributes), registers the process's provider, and meshtel's counters and drain bound still hold.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyTracerProvider} from '@opentelemetry/api';
import { context, propagation, trace } from '@opentelemetry/api';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startNodeSdkTracing } from '../../src/tracing/node-sdk.js';
import { METRIC_SPANS_DROPPED, METRIC_SPANS_EXPORTED } from '../../src/tracing/span-metrics.js';
import type { HopTracer } from '../../src/tracing/types.js';
import { INBOUND, NODE_ID, OK_END, OUTBOUND, workload } from './support/fixtures.js';
import { startOtlpReceiver } from './support/receivers.js';
import type { TraceReceiver } from './support/receivers.js';

let receiver: TraceReceiver | undefined;
let tracer: HopTracer | undefined;
afterEach(async () => {
  await tracer?.shutdown();
  tracer = undefined;
  await receiver?.close();
  receiver = undefined;
  vi.unstubAllEnvs();
  trace.disable();
  context.disable();
  propagation.disable();
});

async function value(registry: Registry, name: string, reason?: string): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.find((v) => reason === undefined || v.labels.reason === reason)?.value ?? 0;
}

describe('startNodeSdkTracing()', () => {
  it('exports through the NodeSDK it registers, configured by OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME', async () => {
    receiver = await startOtlpReceiver();
    vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', new URL(receiver.url).origin);
    vi.stubEnv('OTEL_SERVICE_NAME', 'productpage-from-env');
    const registry = new Registry();
    tracer = startNodeSdkTracing({ local: workload(), nodeId: NODE_ID, exporter: 'otlp', samplingPercent: 100, scheduledDelayMillis: 20, registry });
    // NodeSDK registered the process's tracer provider (the sidecar is the application).
    expect((trace.getTracerProvider() as ProxyTracerProvider).getDelegate().constructor.name).not.toBe('NoopTracerProvider');
    const server = tracer.startSpan({}, INBOUND);
    const out = {};
    server.inject(out);
    tracer.startSpan(out, OUTBOUND).end(OK_END);
    server.end(OK_END);
    const spans = await receiver.waitForSpans(2);
    expect(spans.map((s) => s.serviceName)).toEqual(['productpage-from-env', 'productpage-from-env']);
    const client = spans.find((s) => s.kind === 'client')!;
    expect(client.parentSpanId).toBe(spans.find((s) => s.kind === 'server')!.spanId);
    expect(client.tags).toMatchObject({ component: 'proxy', node_id: NODE_ID, 'istio.canonical_service': 'productpage' });
    await tracer.shutdown();
    expect(await value(registry, METRIC_SPANS_EXPORTED)).toBe(2);
  });

  it('bounds the shutdown drain against a backend that never answers and counts what was left', async () => {
    // Accepts and never responds.
    const hang = createServer(() => {});
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    try {
      const registry = new Registry();
      tracer = startNodeSdkTracing({
        local: workload(),
        nodeId: NODE_ID,
        exporter: 'otlp',
        endpoint: `http://127.0.0.1:${(hang.address() as AddressInfo).port}`,
        samplingPercent: 100,
        scheduledDelayMillis: 10_000,
        shutdownTimeoutMillis: 300,
        registry,
      });
      for (let i = 0; i < 5; i++) tracer.startSpan({}, INBOUND).end(OK_END);
      const started = Date.now();
      await tracer.shutdown();
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await value(registry, METRIC_SPANS_DROPPED, 'shutdown_timeout')).toBe(5);
    } finally {
      hang.closeAllConnections();
      await new Promise((r) => hang.close(r));
    }
  });

  it('starts no SDK when OTEL_SDK_DISABLED is true', () => {
    vi.stubEnv('OTEL_SDK_DISABLED', 'true');
    tracer = startNodeSdkTracing({ local: workload(), nodeId: NODE_ID, exporter: 'otlp', samplingPercent: 100 });
    expect((trace.getTracerProvider() as ProxyTracerProvider).getDelegate().constructor.name).toBe('NoopTracerProvider');
    const headers = {};
    expect(tracer.startSpan(headers, INBOUND).sampled).toBe(false);
  });
});

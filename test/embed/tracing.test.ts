import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { Agent, request } from 'undici';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { SpanKind } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { createMeshtelEmbedding, createMeshtelInterceptor, meshtelFastify } from '../../src/embed/index.js';
import { createTracing } from '../../src/tracing/tracer.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { formatNodeId } from '../../src/metadata/node-id.js';

function recorder(): SpanExporter & { spans: ReadableSpan[] } {
  const spans: ReadableSpan[] = [];
  return { spans, export: (batch, done) => (spans.push(...batch), done({ code: 0 })), shutdown: () => Promise.resolve() };
}

function embedding(workload: string, exporter: SpanExporter) {
  const metadata = createWorkloadMetadata({ name: `${workload}-0`, namespace: 'default', workload, labels: { app: workload }, instanceIps: ['127.0.0.1'] });
  const tracer = createTracing({ local: metadata, nodeId: formatNodeId(metadata), exporter, samplingPercent: 100, scheduledDelayMillis: 10 });
  return createMeshtelEmbedding({ metadata, tracer });
}

describe('proxyless embedding: spans', () => {
  it('makes one server span per inbound request and a client span per outbound call, in one trace', async () => {
    const frontSpans = recorder();
    const backSpans = recorder();
    const front = embedding('front', frontSpans);
    const back = embedding('back', backSpans);
    const backApp = Fastify();
    await backApp.register(meshtelFastify, { embedding: back });
    backApp.get('/x', async () => 'ok');
    await backApp.listen({ port: 0, host: '127.0.0.1' });
    const agent = new Agent().compose(createMeshtelInterceptor(front));
    const frontApp = Fastify();
    await frontApp.register(meshtelFastify, { embedding: front });
    frontApp.get('/y', async () => {
      const r = await request(`http://127.0.0.1:${(backApp.server.address() as AddressInfo).port}/x`, { dispatcher: agent, headers: { host: 'back:80' } });
      return r.body.text();
    });
    await frontApp.listen({ port: 0, host: '127.0.0.1' });
    try {
      const res = await request(`http://127.0.0.1:${(frontApp.server.address() as AddressInfo).port}/y`);
      expect(await res.body.text()).toBe('ok');
    } finally {
      await frontApp.close();
      await backApp.close();
      await agent.close();
      // close() flushes the tracers.
      await front.close();
      await back.close();
    }
    const frontServer = frontSpans.spans.find((s) => s.kind === SpanKind.SERVER);
    const frontClient = frontSpans.spans.find((s) => s.kind === SpanKind.CLIENT);
    const backServer = backSpans.spans.find((s) => s.kind === SpanKind.SERVER);
    expect(frontSpans.spans).toHaveLength(2);
    expect(backSpans.spans).toHaveLength(1);
    const traceId = frontServer?.spanContext().traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(frontClient?.spanContext().traceId).toBe(traceId);
    expect(backServer?.spanContext().traceId).toBe(traceId);
    // The client span continues the server span (propagated without app code), the next hop continues the client span.
    expect(frontClient?.parentSpanContext?.spanId).toBe(frontServer?.spanContext().spanId);
    expect(backServer?.parentSpanContext?.spanId).toBe(frontClient?.spanContext().spanId);
  });
});

/** The export-path counters: exposed under meshtel_* names, shared by pipelines on one registry, fed exactly. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { withExportDeadline } from '../../src/tracing/exporters.js';
import { createSpanCountingMeterProvider, createSpanMetrics } from '../../src/tracing/span-metrics.js';
import { createTracing } from '../../src/tracing/tracer.js';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { INBOUND, NODE_ID, OK_END, workload } from './support/fixtures.js';
import { createRecordingExporter } from './support/recording-exporter.js';

describe('createSpanMetrics()', () => {
  it('exposes meshtel_spans_exported_total and meshtel_spans_dropped_total{reason}', async () => {
    const registry = new Registry();
    const m = createSpanMetrics(registry, silentLogger);
    m.exported(3);
    m.dropped('queue_full', 2);
    m.dropped('export_failed', 1);
    const text = await registry.metrics();
    expect(text).toContain('meshtel_spans_exported_total 3');
    expect(text).toContain('meshtel_spans_dropped_total{reason="queue_full"} 2');
    expect(text).toContain('meshtel_spans_dropped_total{reason="export_failed"} 1');
    expect(text).toContain('meshtel_spans_dropped_total{reason="internal_error"} 0');
  });

  it('lets two tracers share one registry (the series add up)', async () => {
    const registry = new Registry();
    const a = createTracing({ local: workload(), nodeId: NODE_ID, exporter: createRecordingExporter(), samplingPercent: 100, registry });
    const b = createTracing({ local: workload(), nodeId: NODE_ID, exporter: createRecordingExporter(), samplingPercent: 100, registry });
    a.startSpan({}, INBOUND).end(OK_END);
    b.startSpan({}, INBOUND).end(OK_END);
    await Promise.all([a.shutdown(), b.shutdown()]);
    expect(await registry.metrics()).toContain('meshtel_spans_exported_total 2');
  });
});

describe('createSpanCountingMeterProvider()', () => {
  it.each([
    { attrs: { 'otel.component.type': 'batching_span_processor' }, field: 'exported' },
    { attrs: { 'error.type': 'queue_full' }, field: 'queue_full' },
    { attrs: { 'error.type': 'Error' }, field: 'export_failed' },
  ])('routes the processor counter with $attrs to $field', ({ attrs, field }) => {
    const seen: string[] = [];
    const meter = createSpanCountingMeterProvider({
      exported: (n) => seen.push(`exported:${n}`),
      dropped: (reason, n) => seen.push(`${reason}:${n}`),
    }).getMeter('x');
    meter.createCounter('otel.sdk.processor.span.processed').add(4, attrs);
    // Any other instrument is a no-op.
    meter.createCounter('otel.sdk.span.started').add(1);
    expect(seen).toEqual([`${field}:4`]);
  });
});

describe('withExportDeadline()', () => {
  function exporter(behaviour: 'never' | 'late' | 'throw'): SpanExporter {
    return {
      export(_spans, done) {
        if (behaviour === 'throw') throw new Error('sync failure');
        if (behaviour === 'late') setTimeout(() => done({ code: 0 }), 80);
      },
      shutdown: () => Promise.resolve(),
    };
  }

  it.each(['never', 'late', 'throw'] as const)('reports FAILED exactly once when the exporter answers %s', async (behaviour) => {
    const results: number[] = [];
    withExportDeadline(exporter(behaviour), 20).export([], (r) => results.push(r.code));
    await new Promise((r) => setTimeout(r, 150));
    expect(results).toEqual([1]);
  });

  it('passes a timely result through once', async () => {
    const results: number[] = [];
    withExportDeadline({ export: (_s, done) => done({ code: 0 }), shutdown: () => Promise.resolve() }, 20).export([], (r) => results.push(r.code));
    await new Promise((r) => setTimeout(r, 50));
    expect(results).toEqual([0]);
  });
});

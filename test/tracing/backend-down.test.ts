/**
 * The export path is bounded: with the tracing backend down or hanging, spans are dropped and counted in
 * meshtel_spans_dropped_total, memory stays flat and the request path (startSpan/inject/end) costs the same.
 * Every sampled span is accounted for exactly once: exported + dropped(queue_full) + dropped(export_failed).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { METRIC_SPANS_DROPPED, METRIC_SPANS_EXPORTED } from '../../src/tracing/span-metrics.js';
import { createTracing } from '../../src/tracing/tracer.js';
import type { HeaderBag, HopTracer } from '../../src/tracing/types.js';
import { INBOUND, NODE_ID, OK_END, withEnv, workload } from './support/fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
// The Jaeger exporter is imported only when selected (exporters.ts); load it once up front so the first batch's
// 300 ms export deadline measures the backend, not the module load under vitest's transform.
beforeAll(async () => {
  await import('@opentelemetry/exporter-jaeger');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A URL on 127.0.0.1 where nothing listens (bound, then closed). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}/v1/traces`;
}

/** A backend that accepts requests and never answers. */
async function hangingUrl(): Promise<string> {
  const s = createServer(() => {});
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  const { port } = s.address() as AddressInfo;
  return `http://127.0.0.1:${port}/v1/traces`;
}

async function counts(registry: Registry): Promise<{ exported: number; queueFull: number; exportFailed: number; shutdownTimeout?: number }> {
  const exported = (await registry.getSingleMetric(METRIC_SPANS_EXPORTED)!.get()).values[0]?.value ?? 0;
  const dropped = (await registry.getSingleMetric(METRIC_SPANS_DROPPED)!.get()).values;
  const by = (reason: string): number => dropped.find((v) => v.labels.reason === reason)?.value ?? 0;
  const c = { exported, queueFull: by('queue_full'), exportFailed: by('export_failed') };
  const shutdownTimeout = by('shutdown_timeout');
  return shutdownTimeout > 0 ? { ...c, shutdownTimeout } : c;
}

function tracer(url: string, registry: Registry, maxQueueSize = 100, exporter: 'otlp' | 'jaeger' = 'otlp'): HopTracer {
  // A short OTLP timeout (read by the exporter at construction) so retries against a dead or hanging backend end within the test.
  const t = withEnv({ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '200' }, () => createTracing({
    local: workload(),
    nodeId: NODE_ID,
    exporter,
    endpoint: url,
    // Bounds one export, so a backend that never answers cannot hold a batch (or the count of it) forever.
    exportTimeoutMillis: 300,
    samplingPercent: 100,
    maxQueueSize,
    maxExportBatchSize: 50,
    scheduledDelayMillis: 5,
    registry,
  }));
  cleanups.push(() => t.shutdown());
  return t;
}

function requests(t: HopTracer, n: number): void {
  for (let i = 0; i < n; i++) {
    const headers: HeaderBag = {};
    const span = t.startSpan(headers, INBOUND);
    span.inject({});
    span.end(OK_END);
  }
}

async function settle(registry: Registry, total: number): Promise<{ exported: number; queueFull: number; exportFailed: number }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const c = await counts(registry);
    if (c.exported + c.queueFull + c.exportFailed >= total || Date.now() > deadline) return c;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('createTracing() with the backend unavailable', () => {
  it.each([
    { backend: 'OTLP down (connection refused)', url: deadUrl, exporter: 'otlp' as const },
    { backend: 'OTLP hanging (never answers)', url: hangingUrl, exporter: 'otlp' as const },
    { backend: 'Jaeger collector down', url: deadUrl, exporter: 'jaeger' as const },
    { backend: 'Jaeger collector hanging', url: hangingUrl, exporter: 'jaeger' as const },
  ])('drops beyond the queue bound and accounts for every span exactly: $backend', async ({ url, exporter }) => {
    const registry = new Registry();
    const t = tracer(await url(), registry, 100, exporter);
    // Let the exporter's module load complete (already cached, see beforeAll): a few microtasks.
    await new Promise((r) => setImmediate(r));
    requests(t, 2000);
    // Synchronously, nothing could be exported yet: at most the queue (100) plus the one batch in flight (50)
    // were kept, the rest dropped as queue_full.
    const now = await counts(registry);
    expect(now.queueFull).toBeGreaterThanOrEqual(2000 - 100 - 50);
    await t.shutdown();
    const c = await settle(registry, 2000);
    expect(c.exported).toBe(0);
    expect(c.exported + c.queueFull + c.exportFailed).toBe(2000);
    expect(c.exportFailed).toBeGreaterThan(0);
    expect(c.exportFailed).toBeLessThanOrEqual(150);
  });

  it.each([
    { backend: 'OTLP down (connection refused)', url: deadUrl, exporter: 'otlp' as const },
    { backend: 'OTLP hanging (never answers)', url: hangingUrl, exporter: 'otlp' as const },
  ])('bounds the shutdown drain with the default export timeouts and counts what it drops: $backend', async ({ url, exporter }) => {
    const registry = new Registry();
    // The sidecar's defaults (30 s export timeout, 10 s OTLP timeout with retries): only the drain bound is short.
    const t = createTracing({
      local: workload(),
      nodeId: NODE_ID,
      exporter,
      endpoint: await url(),
      samplingPercent: 100,
      scheduledDelayMillis: 5,
      maxExportBatchSize: 50,
      shutdownTimeoutMillis: 400,
      registry,
    });
    requests(t, 300);
    // Let the first batch go out, so one export is in flight and the rest is queued.
    await new Promise((r) => setTimeout(r, 50));
    const start = Date.now();
    await t.shutdown();
    const took = Date.now() - start;
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(1500);
    const c = await counts(registry);
    expect(c.exported).toBe(0);
    expect(c.shutdownTimeout).toBeGreaterThan(0);
    expect(c.exported + c.queueFull + c.exportFailed + (c.shutdownTimeout ?? 0)).toBe(300);
    // Late answers for abandoned spans are not counted twice.
    await new Promise((r) => setTimeout(r, 300));
    const later = await counts(registry);
    expect(later).toEqual(c);
  });

  it('counts exported spans when the backend is up (the same accounting, no drops)', async () => {
    const registry = new Registry();
    const received: number[] = [];
    const s = createServer((req, res) => {
      req.on('data', () => {});
      req.on('end', () => {
        received.push(1);
        res.end();
      });
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    // Generous timeouts: with the backend up nothing should fail, even on a loaded machine (the first export
    // also loads the OTLP encoder).
    const t = createTracing({
      local: workload(),
      nodeId: NODE_ID,
      exporter: 'otlp',
      endpoint: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/traces`,
      exportTimeoutMillis: 10_000,
      shutdownTimeoutMillis: 10_000,
      samplingPercent: 100,
      maxQueueSize: 1000,
      maxExportBatchSize: 50,
      scheduledDelayMillis: 5,
      registry,
    });
    cleanups.push(() => t.shutdown());
    requests(t, 300);
    await t.shutdown();
    expect(await settle(registry, 300)).toEqual({ exported: 300, queueFull: 0, exportFailed: 0 });
    expect(received.length).toBeGreaterThan(0);
  });

  it('keeps the request path as fast as with a healthy no-op exporter', async () => {
    const down = tracer(await hangingUrl(), new Registry(), 256);
    const healthy = createTracing({ local: workload(), nodeId: NODE_ID, exporter: 'none', samplingPercent: 100 });
    cleanups.push(() => healthy.shutdown());
    const time = (t: HopTracer): number => {
      const start = process.hrtime.bigint();
      requests(t, 5000);
      return Number(process.hrtime.bigint() - start);
    };
    // Warm both paths, then interleave measurements so machine noise hits both alike.
    time(down);
    time(healthy);
    let downNs = 0;
    let healthyNs = 0;
    for (let i = 0; i < 3; i++) {
      downNs += time(down);
      healthyNs += time(healthy);
    }
    // The only extra work when the backend is down is the queue-full check; export never runs on this path.
    expect(downNs / healthyNs).toBeLessThan(2.5);
  });

  it('keeps memory flat after many spans with the backend down', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const t = tracer(await hangingUrl(), new Registry(), 256);
    requests(t, 5000);
    gc();
    const before = process.memoryUsage().heapUsed;
    requests(t, 50_000);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // 50k sampled spans held unbounded take ~90 MB (measured with maxQueueSize 1e6); the bounded queue holds at most 256.
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  });
});

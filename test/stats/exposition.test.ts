/**
 * Exposition: format negotiation, OpenMetrics, escaping, gzip over a real socket, streaming of
 * large outputs, and a real `promtool check metrics`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Histogram, Registry, Summary } from 'prom-client';
import { createIstioStats, type IstioStats } from '../../src/stats/istio-stats.js';
import {
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  acceptsGzip,
  createMetricsHandler,
  negotiateFormat,
  renderMetrics,
  renderMetricsToString,
} from '../../src/stats/exposition.js';
import { CATALOG, WEBAPP, inboundFromGateway, outboundToCatalog, peer, samples } from './fixtures.js';

let stats: IstioStats | undefined;
let server: Server | undefined;
afterEach(async () => {
  stats?.close();
  stats = undefined;
  if (server) await new Promise((r) => server?.close(r));
  server = undefined;
});

const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

describe('negotiateFormat()', () => {
  it.each([
    [undefined, 'text'],
    ['', 'text'],
    ['*/*', 'text'],
    ['text/plain; version=0.0.4', 'text'],
    [PROMETHEUS_ACCEPT, 'openmetrics'],
    ['application/openmetrics-text; version=1.0.0', 'openmetrics'],
    ['application/openmetrics-text;q=0.2,text/plain;q=0.9', 'text'],
    ['application/openmetrics-text;q=0', 'text'],
    ['garbage;;;', 'text'],
  ])('%j → %s', (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });
});

describe('acceptsGzip()', () => {
  it.each([
    ['gzip', true],
    ['br, gzip;q=0.5', true],
    ['gzip;q=0', false],
    ['identity', false],
    [undefined, false],
  ])('%j → %s', (h, ok) => {
    expect(acceptsGzip(h)).toBe(ok);
  });
});

describe('renderMetrics()', () => {
  it('writes OpenMetrics with family names without _total, exemplars and a final # EOF', async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    stats.recordHttp(inboundFromGateway());
    const om = await renderMetricsToString(stats, 'openmetrics');
    expect(om).toContain('# TYPE istio_requests counter\n');
    expect(om).toContain('# TYPE istio_request_duration_milliseconds histogram\n');
    expect(om).toContain('# TYPE istio_build gauge\n');
    expect(om.endsWith('# EOF\n')).toBe(true);
    const text = await renderMetricsToString(stats, 'text');
    expect(text).toContain('# TYPE istio_requests_total counter\n');
    expect(text).not.toContain('# EOF');
  });

  it('appends the metrics of the given registries only, once per name', async () => {
    const appRegistry = new Registry();
    new Histogram({ name: 'app_seconds', help: 'h', registers: [appRegistry] }).observe(1);
    stats = createIstioStats({ local: WEBAPP, registry: appRegistry, tcpReportingIntervalMs: 0 });
    const other = new Registry();
    new Summary({ name: 'other_bytes', help: 's', registers: [other] }).observe(1);
    expect(await renderMetricsToString(stats, 'text')).toContain('app_seconds_bucket{le="1"} 1');
    const onlyOther = await renderMetricsToString(stats, 'text', { registries: [other, other] });
    expect(onlyOther).not.toContain('app_seconds');
    expect(onlyOther.split('# TYPE other_bytes summary').length).toBe(2);
    expect(await renderMetricsToString(stats, 'text', { registries: [] })).not.toContain('other_bytes');
  });

  it('escapes backslash, double quote and newline in label values', async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    stats.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'a\\b"c\nd' }) }));
    const text = await renderMetricsToString(stats, 'text');
    expect(text).toContain('destination_workload="a\\\\b\\"c\\nd"');
    expect(samples(text, 'istio_requests_total')[0]?.labels.destination_workload).toBe('a\\b"c\nd');
  });

  it('streams 10,000 label sets in bounded chunks and lets the event loop run in between', async () => {
    // A page past V8's string limit needs budgets raised far above their defaults (64 MiB, 16 MiB plain text).
    const budgets = { maxExpositionBytes: 2 ** 31, maxPlainTextExpositionBytes: 2 ** 31, maxPlainTextSeriesPerMetric: 10_000 };
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0, ...budgets });
    for (let i = 0; i < 10_000; i++) stats.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: `catalog-${i}` }) }));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let chunks = 0;
    let maxChunk = 0;
    let total = 0;
    let last: Buffer = Buffer.alloc(0);
    for await (const chunk of renderMetrics(stats, 'text', { chunkSize: 1 << 20 })) {
      chunks++;
      maxChunk = Math.max(maxChunk, chunk.length);
      total += chunk.length;
      last = chunk;
    }
    clearInterval(timer);
    // 10k × (1 counter + 3 × (20 buckets + sum + count)) lines of ~900 bytes: beyond V8's
    // ~512 MiB string limit if it were one string.
    expect(total).toBeGreaterThan(2 ** 29);
    expect(last.at(-1)).toBe(0x0a);
    expect(chunks).toBeGreaterThan(100);
    expect(maxChunk).toBeLessThanOrEqual(1 << 20);
    expect(ticks).toBeGreaterThan(0);
  }, 60_000);
});

describe('createMetricsHandler()', () => {
  async function serve(s: IstioStats): Promise<string> {
    const handler = createMetricsHandler(s);
    server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/stats/prometheus`;
  }

  function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      request(url, { headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      })
        .on('error', reject)
        .end();
    });
  }

  it('answers HEAD with the headers and no body', async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    const url = await serve(stats);
    const r = await new Promise<{ status: number; type: string | undefined; length: number }>((resolve, reject) => {
      request(url, { method: 'HEAD' }, (res) => {
        let length = 0;
        res.on('data', (c: Buffer) => (length += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], length }));
      })
        .on('error', reject)
        .end();
    });
    expect(r).toEqual({ status: 200, type: PROMETHEUS_TEXT_CONTENT_TYPE, length: 0 });
  });

  it('serves text 0.0.4 by default and OpenMetrics when Prometheus asks, gzip when accepted', async () => {
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    stats.recordHttp(inboundFromGateway());
    const url = await serve(stats);

    const plain = await get(url, {});
    expect(plain.headers['content-type']).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(samples(plain.body.toString(), 'istio_requests_total')).toHaveLength(1);

    const om = await get(url, { accept: PROMETHEUS_ACCEPT, 'accept-encoding': 'gzip' });
    expect(om.headers['content-type']).toBe(OPENMETRICS_CONTENT_TYPE);
    expect(om.headers['content-encoding']).toBe('gzip');
    const body = gunzipSync(om.body).toString();
    expect(body).toContain('# TYPE istio_requests counter');
    expect(body.endsWith('# EOF\n')).toBe(true);
  });
});

describe('promtool check metrics', () => {
  const promtool = '/usr/bin/promtool';
  const available = existsSync(promtool);
  if (!available && process.env.CI === 'true') {
    it('needs promtool under CI', () => {
      expect.fail(`${promtool} is missing; CI installs the prometheus package`);
    });
  }
  if (!available) console.warn(`skipping promtool checks: ${promtool} not found`);

  it.skipIf(!available)('accepts the text exposition of every metric type (exit 0 or 3 = lint only, never 1)', async () => {
    const registry = new Registry();
    new Histogram({ name: 'app_latency_seconds', help: 'app latency', labelNames: ['route'], registers: [registry] }).labels('/a').observe(0.2);
    new Summary({ name: 'app_size_bytes', help: 'sizes', registers: [registry] }).observe(3);
    stats = createIstioStats({ local: WEBAPP, registry, tcpReportingIntervalMs: 0, definitions: [{ name: 'get_calls', value: '1' }] });
    stats.recordHttp(inboundFromGateway({ traceId: 'abc' }));
    stats.recordHttp(outboundToCatalog({ peer: peer({ ...CATALOG, workload: 'we"ird\\name\nx' }), protocol: 'grpc', responseCode: 503 }));
    stats.recordGrpcMessages(outboundToCatalog({ protocol: 'grpc' }), 2, 3);
    const c = stats.openTcp(inboundFromGateway());
    c.addSent(5);
    c.close();
    stats.recordPeerUnknown('bad_base64', 'destination');
    const text = await renderMetricsToString(stats, 'text');
    for (const name of ['istio_get_calls{}', 'istio_requests_total', 'istio_request_duration_milliseconds_bucket', 'istio_request_messages_total', 'istio_tcp_sent_bytes_total', 'istio_build', 'meshtel_peer_unknown_total', 'app_latency_seconds_bucket', 'app_size_bytes']) {
      expect(text).toContain(`\n${name}`);
    }
    const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).not.toBe(1);
    expect([0, 3]).toContain(r.status);
  });

  it.skipIf(!available)('tells a truncated exposition apart (exit 1): the check can fail', () => {
    const r = spawnSync(promtool, ['check', 'metrics'], { input: 'istio_requests_total{reporter="source" 1\n', encoding: 'utf8' });
    expect(r.status).toBe(1);
  });
});

describe('createMetricsResponse() with fastify', () => {
  it('serves the stream through reply.send() with the negotiated headers', async () => {
    const { default: Fastify } = await import('fastify');
    const { createMetricsResponse } = await import('../../src/stats/exposition.js');
    stats = createIstioStats({ local: WEBAPP, tcpReportingIntervalMs: 0 });
    stats.recordHttp(inboundFromGateway());
    const s = stats;
    const app = Fastify();
    app.get('/metrics', (req, reply) => {
      const r = createMetricsResponse(s, req.headers);
      return reply.headers(r.headers).send(r.body);
    });
    try {
      const text = await app.inject({ method: 'GET', url: '/metrics' });
      expect(text.statusCode).toBe(200);
      expect(text.headers['content-type']).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
      expect(samples(text.body, 'istio_requests_total')).toHaveLength(1);
      const om = await app.inject({ method: 'GET', url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT, 'accept-encoding': 'gzip' } });
      expect(om.headers['content-type']).toBe(OPENMETRICS_CONTENT_TYPE);
      expect(gunzipSync(om.rawPayload).toString().endsWith('# EOF\n')).toBe(true);
    } finally {
      await app.close();
    }
  });
});

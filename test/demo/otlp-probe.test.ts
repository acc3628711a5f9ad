import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { otlpTracesUrl, probeOtlpEndpoint } from '../../src/demo/otlp-probe.js';

/** An HTTP server answering every request with `status`; resolves its origin and the paths it was asked for. */
async function answering(status: number): Promise<{ origin: string; paths: string[]; close(): Promise<void> }> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
    req.resume();
    res.statusCode = status;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths, close: () => new Promise((r) => server.close(() => r())) };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('probeOtlpEndpoint()', () => {
  it('accepts a receiver that takes an empty protobuf export at /v1/traces (a bare origin gets the path)', async () => {
    const srv = await answering(200);
    try {
      expect(await probeOtlpEndpoint(srv.origin)).toBeUndefined();
      expect(srv.paths).toEqual(['POST /v1/traces application/x-protobuf']);
    } finally {
      await srv.close();
    }
  });

  it('names an unreachable endpoint with the connection error', async () => {
    const port = await closedPort();
    expect(await probeOtlpEndpoint(`http://127.0.0.1:${port}`)).toBe(`http://127.0.0.1:${port}/v1/traces is unreachable (ECONNREFUSED)`);
  });

  it('names a server that is not an OTLP receiver by what it answered', async () => {
    const srv = await answering(404);
    try {
      expect(await probeOtlpEndpoint(`${srv.origin}/api/traces`)).toMatch(/\/api\/traces answered HTTP 404: not an OTLP\/HTTP traces receiver/);
    } finally {
      await srv.close();
    }
  });

  it('gives up on a silent endpoint within its timeout', async () => {
    const server = net.createServer(() => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const started = Date.now();
    try {
      expect(await probeOtlpEndpoint(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 300)).toMatch(/unreachable \(no answer within 300 ms\)/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      server.close();
    }
  });

  it('posts where the exporter posts', () => {
    expect(otlpTracesUrl('http://jaeger:4318')).toBe('http://jaeger:4318/v1/traces');
    expect(otlpTracesUrl('http://collector:4318/custom/traces')).toBe('http://collector:4318/custom/traces');
  });
});

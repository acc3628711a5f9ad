import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createGrpcMessageCounter } from '../../src/sidecar/grpc-frames.js';
import { isMeshtelError } from '../../src/core/errors.js';
import { resolveSidecarOptions } from '../../src/sidecar/options.js';
import { startSidecar } from '../../src/sidecar/sidecar.js';
import { EPHEMERAL, workload } from './helpers.js';

describe('resolveSidecarOptions()', () => {
  it('defaults to Istio\'s ports and policies', () => {
    const o = resolveSidecarOptions({ env: {} });
    expect(o.ports).toEqual({ inbound: 15006, outbound: 15001, prometheus: 15090, status: 15020, health: 15021, admin: 15000 });
    expect(o).toMatchObject({ outboundTrafficPolicy: 'ALLOW_ANY', mxMode: 'ALWAYS', retries: 2, timeoutMs: 0, reportingIntervalMs: 5000, telemetry: true });
    expect(Object.isFrozen(o)).toBe(true);
  });

  it('reads the environment and lets options win', () => {
    const env = { MESHTEL_APP_PORT: '8080', MESHTEL_APP_PROTOCOL: 'grpc', MESHTEL_MX_MODE: 'IN_MESH', MESHTEL_REPORTING_INTERVAL: '1m', MESHTEL_TELEMETRY: 'false', ISTIO_PROMETHEUS_ANNOTATIONS: '{}' };
    expect(resolveSidecarOptions({ env })).toMatchObject({ app: { port: 8080, protocol: 'grpc' }, mxMode: 'IN_MESH', reportingIntervalMs: 60_000, telemetry: false, prometheusAnnotations: '{}' });
    expect(resolveSidecarOptions({ env, app: { port: 9090 }, mxMode: 'ALWAYS' })).toMatchObject({ app: { port: 9090 }, mxMode: 'ALWAYS' });
  });

  it.each([
    [{ MESHTEL_APP_PORT: '70000' }, 'MESHTEL_ERR_INVALID_CONFIG'],
    [{ MESHTEL_MX_MODE: 'SOMETIMES' }, 'MESHTEL_ERR_INVALID_CONFIG'],
    [{ MESHTEL_OUTBOUND_TRAFFIC_POLICY: 'allow' }, 'MESHTEL_ERR_INVALID_CONFIG'],
    [{ MESHTEL_REPORTING_INTERVAL: 'soon' }, 'MESHTEL_ERR_INVALID_CONFIG'],
    [{ MESHTEL_TLS_CERT: '/etc/certs/cert-chain.pem' }, 'MESHTEL_ERR_TLS'],
  ])('rejects %j with %s', (env, code) => {
    expect(() => resolveSidecarOptions({ env })).toThrow(expect.objectContaining({ code }));
  });
});

describe('resolveSidecarOptions() refusals', () => {
  it.each([
    ['a negative route timeout', { timeoutMs: -1 }, 'timeoutMs'],
    ['a NaN route timeout', { timeoutMs: Number.NaN }, 'timeoutMs'],
    ['an infinite reporting interval', { reportingIntervalMs: Number.POSITIVE_INFINITY }, 'reportingIntervalMs'],
    ['a negative reporting interval', { reportingIntervalMs: -5 }, 'reportingIntervalMs'],
    ['a reporting interval from the environment that is not a duration', { env: { MESHTEL_REPORTING_INTERVAL: 'soon' } }, 'MESHTEL_REPORTING_INTERVAL'],
    ['an out-of-range listener port', { ports: { inbound: 70000 } }, 'ports'],
    ['a fractional inbound app port', { inboundPorts: [{ port: 0, appPort: 80.5, protocol: 'http' as const }] }, 'inboundPorts[0].appPort'],
    ['a negative service listener port', { serviceListeners: [{ host: 'reviews', port: 9080, listenPort: -2 }] }, 'serviceListeners[0].listenPort'],
    ['a service port of 0', { serviceListeners: [{ host: 'reviews', port: 0, listenPort: 0 }] }, 'serviceListeners[0].port'],
    ['a PILOT_DISABLE_MX_ALPN that is not a boolean', { env: { PILOT_DISABLE_MX_ALPN: 'sometimes' } }, 'PILOT_DISABLE_MX_ALPN'],
  ])('refuses %s with MESHTEL_ERR_INVALID_CONFIG naming the field', (_name, options, field) => {
    const err = (() => {
      try {
        resolveSidecarOptions({ env: {}, ...options });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_CONFIG')).toBe(true);
    expect((err as Error).message).toContain(field);
  });

  it('accepts a route timeout of 0 (none, as Envoy) and durations from the environment', () => {
    const r = resolveSidecarOptions({ env: { MESHTEL_ROUTE_TIMEOUT: '1.5s', MESHTEL_REPORTING_INTERVAL: '10s' } });
    expect([r.timeoutMs, r.reportingIntervalMs]).toEqual([1500, 10_000]);
    expect(resolveSidecarOptions({ env: {}, timeoutMs: 0 }).timeoutMs).toBe(0);
  });
});

describe('startSidecar()', () => {
  it('fails with MESHTEL_ERR_LISTEN when a port is taken, and leaves nothing bound', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      await expect(
        startSidecar({ env: {}, bindAddress: '127.0.0.1', ports: { ...EPHEMERAL, outbound: port }, metadata: workload('reviews', 'bookinfo-reviews') }),
      ).rejects.toMatchObject({ code: 'MESHTEL_ERR_LISTEN' });
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('fails with MESHTEL_ERR_INVALID_MESH for a service listener that names no service', async () => {
    await expect(
      startSidecar({ env: {}, bindAddress: '127.0.0.1', ports: EPHEMERAL, metadata: workload('reviews', 'bookinfo-reviews'), serviceListeners: [{ host: 'nope', port: 1, listenPort: 0 }] }),
    ).rejects.toMatchObject({ code: 'MESHTEL_ERR_INVALID_MESH' });
  });
});

describe('createGrpcMessageCounter()', () => {
  const frame = (len: number): Buffer => Buffer.concat([Buffer.from([0, 0, 0, (len >> 8) & 0xff, len & 0xff]), Buffer.alloc(len, 7)]);

  it('counts messages split at every byte boundary', () => {
    const stream = Buffer.concat([frame(3), frame(0), frame(300), frame(1)]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const c = createGrpcMessageCounter();
      const n = c.push(stream.subarray(0, cut)) + c.push(stream.subarray(cut));
      expect(n).toBe(4);
      expect(c.total).toBe(4);
    }
  });

  it('counts a message only once its last byte has arrived', () => {
    const c = createGrpcMessageCounter();
    const f = frame(10);
    expect(c.push(f.subarray(0, 14))).toBe(0);
    expect(c.push(f.subarray(14))).toBe(1);
  });
});

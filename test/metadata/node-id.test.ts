import { describe, expect, it } from 'vitest';
import { formatNodeId, parseNodeId, tryParseNodeId } from '../../src/metadata/node-id.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { isMeshtelError } from '../../src/core/errors.js';

describe('formatNodeId()', () => {
  it.each([
    ['sidecar', 'sidecar~10.0.0.7~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local'],
    ['router', 'router~10.0.0.7~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local'],
    ['waypoint', 'waypoint~10.0.0.7~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local'],
  ] as const)('formats a %s id as type~ip~pod.ns~ns.svc.cluster.local', (proxyType, id) => {
    const meta = createWorkloadMetadata({ name: 'reviews-v1-abc', namespace: 'bookinfo', instanceIps: ['10.0.0.7', '10.0.0.8'], proxyType });
    expect(formatNodeId(meta)).toBe(id);
    expect(parseNodeId(id)).toEqual({ type: proxyType, ip: '10.0.0.7', podName: 'reviews-v1-abc', namespace: 'bookinfo', dnsDomain: 'bookinfo.svc.cluster.local' });
  });

  it('uses loopback when the workload has no IP', () => {
    expect(formatNodeId(createWorkloadMetadata({ name: 'p', namespace: 'ns' }))).toBe('sidecar~127.0.0.1~p.ns~ns.svc.cluster.local');
  });

  it('throws MESHTEL_ERR_INVALID_METADATA when there is no pod or workload name', () => {
    expect(() => formatNodeId(createWorkloadMetadata({ namespace: 'ns' }))).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_METADATA' }));
  });
});

describe('parseNodeId()', () => {
  it('splits a dotted pod name at the last dot (namespaces have no dots)', () => {
    expect(parseNodeId('sidecar~fe80::1~web.v2.prod~prod.svc.cluster.local')).toMatchObject({ ip: 'fe80::1', podName: 'web.v2', namespace: 'prod' });
  });

  it.each([
    ['too few parts', 'sidecar~1.1.1.1~test.default'],
    ['too many parts', 'sidecar~1.1.1.1~test.default~default.svc.cluster.local~x'],
    ['an unknown type', 'gateway~1.1.1.1~test.default~default.svc.cluster.local'],
    ['a bad IP', 'sidecar~1.1.1~test.default~default.svc.cluster.local'],
    ['no namespace', 'sidecar~1.1.1.1~test~default.svc.cluster.local'],
    ['an empty pod name', 'sidecar~1.1.1.1~.default~default.svc.cluster.local'],
    ['an empty DNS domain', 'sidecar~1.1.1.1~test.default~'],
    ['the empty string', ''],
  ])('rejects %s with MESHTEL_ERR_INVALID_NODE_ID', (_n, id) => {
    try {
      parseNodeId(id);
      expect.unreachable();
    } catch (err) {
      expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_NODE_ID')).toBe(true);
      expect((err as Error).message).toContain(JSON.stringify(id));
    }
    expect(tryParseNodeId(id)).toBeUndefined();
  });
});

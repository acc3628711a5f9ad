/**
 * startDemo picks its inbound ports free and binds them later; a port taken in between (a busy CI machine) must not
 * fail the demo: it starts again on new ports. Here the first pick is forced onto a port that is already bound.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as Ports from '../../src/demo/ports.js';

const taken = net.createServer();
let takenPort = 0;
let picks = 0;

vi.mock('../../src/demo/ports.js', async (importOriginal) => {
  const real = await importOriginal<typeof Ports>();
  return {
    ...real,
    findFreePorts: async (count: number, host?: string): Promise<number[]> => {
      const ports = await real.findFreePorts(count, host);
      picks++;
      // The first pick of seven (the mesh file's inbound ports) loses its first port to another process.
      if (picks === 1 && count === 7) ports[0] = takenPort;
      return ports;
    },
  };
});

const { startDemo } = await import('../../src/demo/demo.js');

describe('startDemo() on a busy machine', () => {
  beforeAll(async () => {
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    takenPort = (taken.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => taken.close(() => r())));

  it('starts again on new ports when a picked port was taken before it could bind', async () => {
    const demo = await startDemo({ rate: 0, mtls: false });
    try {
      expect(picks).toBeGreaterThanOrEqual(2);
      const res = await fetch(demo.gatewayUrl);
      await res.arrayBuffer();
      expect(res.status).toBe(200);
    } finally {
      await demo.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { createTcpMetadataExchange } from '../../src/exchange/tcp-exchange.js';
import { encodeTcpFrame, ALPN_PEER_EXCHANGE } from '../../src/metadata/tcp-frame.js';
import type { TcpParseStep } from '../../src/metadata/tcp-frame.js';
import { formatNodeId } from '../../src/metadata/node-id.js';
import { productpageReduced, ratings, vector } from '../metadata/fixtures.js';

describe('TcpMetadataExchange', () => {
  it('precomputes our frame once', () => {
    const ex = createTcpMetadataExchange({ local: ratings() });
    expect(ex.frame).toBe(ex.frame);
    expect(ex.frame.equals(encodeTcpFrame(ratings(), formatNodeId(ratings()), 'reduced-1.29'))).toBe(true);
    expect(ex.ALPN).toBe(ALPN_PEER_EXCHANGE);
    expect(ALPN_PEER_EXCHANGE).toBe('istio-peer-exchange');
  });

  it('reproduces the frame vector [11] with the reduced profile', () => {
    const ex = createTcpMetadataExchange({ local: ratings(), nodeId: 'sidecar~10.52.0.34~ratings-v1-84975bc778-pxz2w.default~default.svc.cluster.local', profile: 'reduced' });
    expect(ex.frame.toString('hex')).toBe(vector(11).value);
  });

  it('refuses a local frame over maxFrameBytes with MESHTEL_ERR_ENCODE', () => {
    expect(() => createTcpMetadataExchange({ local: ratings(), maxFrameBytes: 64 })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_ENCODE' }));
    expect(() => createTcpMetadataExchange({ local: ratings(), maxFrameBytes: -1 })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_CONFIG' }));
  });

  describe('.createParser()', () => {
    it('counts one decode per connection', () => {
      const server = createTcpMetadataExchange({ local: ratings() });
      const client = createTcpMetadataExchange({ local: productpageReduced() });
      const p = server.createParser();
      expect(p.push(client.frame.subarray(0, 10))).toEqual({ done: false });
      const step = p.push(Buffer.concat([client.frame.subarray(10), Buffer.from('data')]));
      expect(step).toMatchObject({ done: true, peerId: client.nodeId, result: { ok: true, peer: { workload: 'productpage-v1' } } });
      p.push(Buffer.from('more'));
      p.end();
      expect(server.counters).toEqual({ decodes: 1, cacheConflicts: 0 });
    });

    it.each([
      ['not_mx', [Buffer.from('GET / HTTP/1.1\r\n')], false],
      ['truncated', [Buffer.from([0x3d, 0x23])], true],
    ] as const)('returns %s without counting a decode (the recorder counts the reason)', (reason, chunks, end) => {
      const ex = createTcpMetadataExchange({ local: ratings() });
      const p = ex.createParser();
      let step: TcpParseStep = { done: false };
      for (const c of chunks) step = p.push(c);
      if (end) step = p.end();
      expect(step).toMatchObject({ done: true, result: { ok: false, reason } });
      expect(ex.counters.decodes).toBe(0);
    });
  });

  describe('over a real socket on loopback', () => {
    let server: Server;
    let port = 0;
    const serverEx = createTcpMetadataExchange({ local: ratings() });
    const received: { step: TcpParseStep; app: Buffer }[] = [];

    beforeAll(async () => {
      server = createServer((sock) => {
        const parser = serverEx.createParser();
        const app: Buffer[] = [];
        let result: TcpParseStep = { done: false };
        // Our frame goes out before any application byte.
        sock.write(serverEx.frame);
        sock.on('data', (chunk: Buffer) => {
          const step = parser.push(chunk);
          if (step.done) {
            if (!result.done) result = step;
            app.push(step.rest);
          }
        });
        sock.on('end', () => {
          if (!result.done) result = parser.end();
          received.push({ step: result, app: Buffer.concat(app) });
          sock.end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('both sides learn each other and application bytes pass through', async () => {
      const clientEx = createTcpMetadataExchange({ local: productpageReduced() });
      const parser = clientEx.createParser();
      const sock = createConnection({ port, host: '127.0.0.1' });
      const clientStep = await new Promise<TcpParseStep>((resolve, reject) => {
        sock.on('error', reject);
        sock.on('data', (chunk: Buffer) => {
          const step = parser.push(chunk);
          if (step.done) resolve(step);
        });
        // Frame and payload in separate writes, split inside the frame.
        sock.write(clientEx.frame.subarray(0, 5));
        setImmediate(() => {
          sock.write(clientEx.frame.subarray(5));
          sock.end(Buffer.from('hello'));
        });
      });
      await new Promise<void>((resolve) => sock.on('close', () => resolve()));
      expect(clientStep).toMatchObject({ done: true, peerId: serverEx.nodeId, result: { ok: true, peer: { workload: 'ratings-v1' } } });
      const last = received.at(-1)!;
      expect(last.step).toMatchObject({ done: true, peerId: clientEx.nodeId, result: { ok: true, peer: { workload: 'productpage-v1' } } });
      expect(last.app.toString()).toBe('hello');
    });
  });
});

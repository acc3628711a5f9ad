/**
 * Requests the proxy cannot handle normally are still answered and recorded once (issue 11.10):
 * heads node's parser rejects (Envoy: the codec error's local reply, flag DPE), and a bug that
 * throws on the request path (a 500, never an exception into node's server).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { leftPartialHead } from '../../src/sidecar/http-listener.js';
import type { ConnectionInfo } from '../../src/record/connection.js';
import type { ServiceRegistry } from '../../src/sidecar/registry.js';
import { eventually, httpApp, rawExchange, refused, requestCount, send, serveHandler, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function reviews(): Promise<Awaited<ReturnType<typeof sidecar>>> {
  const app = await httpApp();
  cleanups.push(app.close);
  const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, limits: { headersTimeoutMs: 300 } });
  cleanups.push(sc.close);
  return sc;
}

describe('Requests the HTTP parser rejects', () => {
  it.each([
    { name: 'a header line without a colon', raw: 'GET / HTTP/1.1\r\nhost: reviews\r\nno colon here\r\n\r\n' },
    { name: 'a request line that is not HTTP', raw: 'HELLO WORLD\r\n\r\n' },
    { name: 'both Content-Length and chunked (smuggling form)', raw: 'POST / HTTP/1.1\r\nhost: reviews\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n' },
    { name: 'random bytes', raw: Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]) },
  ])('answers $name with 400 and records it as Envoy does: code 400, flag DPE, destination reporter', async ({ raw }) => {
    const sc = await reviews();
    const reply = await rawExchange(sc.ports.inbound, raw);
    expect(reply.startsWith('HTTP/1.1 400 Bad Request\r\n')).toBe(true);
    await eventually(async () => expect(await requestCount(sc, { reporter: 'destination', response_code: '400', response_flags: 'DPE' })).toBe(1));
    expect(await requestCount(sc)).toBe(1);
    expect(await refused(sc, 'inbound', 'protocol_error')).toBe(1);
    // The listener still serves real requests.
    expect((await send(sc.ports.inbound)).status).toBe(200);
  });

  it('records a 431 (DPE) and a 408 (no flag) as their own requests', async () => {
    const sc = await reviews();
    expect((await rawExchange(sc.ports.inbound, `GET / HTTP/1.1\r\nhost: reviews\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`)).startsWith('HTTP/1.1 431 ')).toBe(true);
    // Slowloris: an incomplete head past the 300 ms header timeout.
    expect((await rawExchange(sc.ports.inbound, 'GET / HTTP/1.1\r\nhost: rev')).startsWith('HTTP/1.1 408 ')).toBe(true);
    await eventually(async () => {
      expect(await requestCount(sc, { response_code: '431', response_flags: 'DPE' })).toBe(1);
      expect(await requestCount(sc, { response_code: '408', response_flags: '-' })).toBe(1);
    });
  });

  it('records a malformed request on the outbound listener for the source reporter', async () => {
    const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage') });
    cleanups.push(sc.close);
    expect((await rawExchange(sc.ports.outbound, 'GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n')).startsWith('HTTP/1.1 400 ')).toBe(true);
    await eventually(async () => expect(await requestCount(sc, { reporter: 'source', response_code: '400', response_flags: 'DPE' })).toBe(1));
    expect(await refused(sc, 'outbound', 'protocol_error')).toBe(1);
  });
});

/** Connect, write `bytes` (and `then` 50 ms later), then leave the way `how` says once the sidecar has read them. */
function leaveAfter(port: number, bytes: string, how: 'fin' | 'close' | 'reset', then?: string): Promise<void> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => {
      c.write(bytes);
      if (then !== undefined) setTimeout(() => c.write(then), 50);
      setTimeout(() => {
        if (how === 'fin') c.end();
        else if (how === 'close') c.destroy();
        else c.resetAndDestroy();
      }, 100);
    });
    c.on('error', () => {});
    // Read what the sidecar answers (an earlier request's response), so its close is seen.
    c.resume();
    c.on('close', () => resolve());
  });
}

describe('A client that leaves before its request head is complete', () => {
  // Envoy: the HTTP/1.1 codec has a stream but never decodes its headers, so the HTTP filters (Istio's stats
  // filter among them) never exist for it: no istio_requests_total, only Envoy's downstream_rq_rx_reset.
  it.each(['fin', 'close', 'reset'] as const)('(%s) is no request: nothing in istio_requests_total, counted as incomplete_head', async (how) => {
    const sc = await reviews();
    await leaveAfter(sc.ports.inbound, 'GET / HTTP/1.1\r\nhost: rev', how);
    await eventually(async () => expect(await refused(sc, 'inbound', 'incomplete_head')).toBe(1));
    expect(await requestCount(sc)).toBe(0);
    expect(await refused(sc, 'inbound', 'protocol_error')).toBe(0);
  });

  it('counts only the unfinished head after a completed keep-alive request, which keeps its own record', async () => {
    const sc = await reviews();
    const head = 'GET / HTTP/1.1\r\nhost: reviews\r\n\r\n';
    await leaveAfter(sc.ports.inbound, `${head}GET /second HTTP/1.1\r\nhost: rev`, 'fin');
    await eventually(async () => expect(await refused(sc, 'inbound', 'incomplete_head')).toBe(1));
    expect(await requestCount(sc)).toBe(1);
    expect(await requestCount(sc, { response_code: '200' })).toBe(1);
  });

  // A partial head in the same read as the completed request before it: the bytes the socket read by the time that
  // request finished already hold it, so no byte mark can tell it apart; node's parser knows it began a message
  // whose head is not complete. Used to count nothing on a reset.
  it.each([
    { how: 'reset', telemetry: true },
    { how: 'reset', telemetry: false },
    { how: 'fin', telemetry: false },
  ] as const)('counts a partial head that came in the same read as a completed request ($how, telemetry $telemetry)', async ({ how, telemetry }) => {
    const app = await httpApp();
    cleanups.push(app.close);
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, telemetry });
    cleanups.push(sc.close);
    const head = 'GET / HTTP/1.1\r\nhost: reviews\r\n\r\n';
    await leaveAfter(sc.ports.inbound, `${head}GET /second HTTP/1.1\r\nhost: rev`, how);
    await eventually(async () => expect(await refused(sc, 'inbound', 'incomplete_head')).toBe(1));
    expect(app.seen).toHaveLength(1);
    if (telemetry) expect(await requestCount(sc)).toBe(1);
    expect(await refused(sc, 'inbound', 'protocol_error')).toBe(0);
  });

  // The byte mark a reset is judged by moves at each finished request whatever telemetry says: with telemetry
  // off nothing recorded the request, and a reset after it used to count as a partial head.
  it.each(['reset', 'fin'] as const)('(telemetry off, %s after a completed keep-alive request) counts nothing, and still counts a partial head', async (how) => {
    const app = await httpApp();
    cleanups.push(app.close);
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, telemetry: false });
    cleanups.push(sc.close);
    const head = 'GET / HTTP/1.1\r\nhost: reviews\r\n\r\n';
    await leaveAfter(sc.ports.inbound, `${head}${head}`, how);
    // A partial head written after the response (in its own read) still counts.
    await leaveAfter(sc.ports.inbound, head, how, 'GET /second HTTP/1.1\r\nhost: rev');
    await eventually(async () => expect(await refused(sc, 'inbound', 'incomplete_head')).toBe(1));
    expect(app.seen).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 100));
    expect(await refused(sc, 'inbound', 'incomplete_head')).toBe(1);
  });

  it('leaves a request whose head was complete to the proxy: one record each (DC, code 0), no 400 beside it', async () => {
    const sc = await reviews();
    for (const how of ['fin', 'close', 'reset'] as const) {
      await leaveAfter(sc.ports.inbound, 'POST / HTTP/1.1\r\nhost: reviews\r\ncontent-length: 10\r\n\r\nabc', how);
    }
    await eventually(async () => expect(await requestCount(sc, { response_code: '0', response_flags: 'DC' })).toBe(3));
    expect(await requestCount(sc)).toBe(3);
    expect(await refused(sc, 'inbound', 'incomplete_head')).toBe(0);
    expect(await refused(sc, 'inbound', 'protocol_error')).toBe(0);
  });
});

describe('leftPartialHead', () => {
  const conn = (read: number): ConnectionInfo => ({ peerPrincipal: '', localPrincipal: '', read, written: 0 });
  const socketWith = (bytesRead: number, parser?: object | null): net.Socket => ({ bytesRead, parser }) as unknown as net.Socket;
  const parser = (duration: number, headersCompleted: boolean): object => ({ duration: () => duration, headersCompleted: () => headersCompleted });

  it('follows node\'s parser: a message begun and its head not complete, whatever the byte marks say', () => {
    expect(leftPartialHead(socketWith(100, parser(3.2, false)), 'ECONNRESET', conn(100))).toBe(true);
    expect(leftPartialHead(socketWith(100, parser(0, false)), 'ECONNRESET', conn(40))).toBe(false);
    // A FIN in a body whose head was complete (the response already finished) is no head.
    expect(leftPartialHead(socketWith(100, parser(3.2, true)), 'HPE_INVALID_EOF_STATE', conn(40))).toBe(false);
  });

  it('without the parser\'s state: a FIN mid-message, or bytes read since the last finished request', () => {
    expect(leftPartialHead(socketWith(100, null), 'HPE_INVALID_EOF_STATE', conn(100))).toBe(true);
    expect(leftPartialHead(socketWith(100, {}), 'ECONNRESET', conn(40))).toBe(true);
    expect(leftPartialHead(socketWith(100), 'ECONNRESET', conn(100))).toBe(false);
    expect(leftPartialHead(socketWith(0), 'ECONNRESET', undefined)).toBe(false);
  });
});

describe('A throw on the request path', () => {
  it('becomes a recorded 500, never an exception into node\'s server', async () => {
    const broken = {
      resolve() {
        throw new Error('registry bug');
      },
      hasHost: () => false,
    } as unknown as ServiceRegistry;
    const { port, telemetry } = await serveHandler(cleanups, { direction: 'outbound', registry: broken });
    for (let i = 0; i < 3; i++) expect((await send(port, { host: 'reviews:9080' })).status).toBe(500);
    await eventually(async () => {
      const body = await telemetry.registry.metrics();
      const line = body.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('response_code="500"'));
      expect(line?.endsWith(' 3')).toBe(true);
    });
    expect(telemetry.activity.active).toBe(0);
  });
});

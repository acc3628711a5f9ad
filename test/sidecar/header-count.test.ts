/**
 * Envoy's `max_headers_count` (100 by default) on every traffic listener: HTTP/1.1 counts the header lines and
 * answers 431 (`http1.too_many_headers`, recorded as the codec's local reply: 431 DPE); HTTP/2 counts the header
 * list with its pseudo-headers and resets the stream with INTERNAL_ERROR (`http2.too_many_headers`, no record).
 * Each refusal is `meshtel_proxy_refused_total{reason="too_many_headers"}`.
 */
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { sidecarOptionsFromFlags } from '../../src/cli/commands/sidecar.js';
import { nodeHeaderPairLimit } from '../../src/sidecar/http-listener.js';
import { eventually, h2Reviews, httpApp, rawExchange, refused, requestCount, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** An HTTP/1.1 head with `host` and `extra` more header lines. */
function head(extra: number, line = 'GET / HTTP/1.1'): string {
  let h = `${line}\r\nhost: reviews\r\n`;
  for (let i = 0; i < extra; i++) h += `x-h${i}: v\r\n`;
  return `${h}\r\n`;
}

describe('HTTP/1.1 requests with more header fields than max_headers_count', () => {
  it('answers 431 over 100 lines (host included) on the inbound, records 431 DPE, counts too_many_headers', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const sc = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port } });
    cleanups.push(sc.close);
    // 100 lines pass (Envoy refuses only when the count is over the limit).
    const hundred = head(98).replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n');
    expect(hundred.split('\r\n').length - 3).toBe(100);
    expect((await rawExchange(sc.ports.inbound, hundred)).startsWith('HTTP/1.1 200 ')).toBe(true);
    expect((await rawExchange(sc.ports.inbound, head(100))).startsWith('HTTP/1.1 431 ')).toBe(true);
    // Far over it (node's own default would keep 2000 lines, and truncate the rest silently).
    expect((await rawExchange(sc.ports.inbound, head(3000))).startsWith('HTTP/1.1 431 ')).toBe(true);
    await eventually(async () => expect(await requestCount(sc, { reporter: 'destination', response_code: '431', response_flags: 'DPE' })).toBe(2));
    expect(await refused(sc, 'inbound', 'too_many_headers')).toBe(2);
    expect(await refused(sc, 'inbound', 'headers_too_large')).toBe(0);
    expect(app.seen).toHaveLength(1);
  });

  it('applies a configured count on the outbound listener, WebSocket upgrades included', async () => {
    const sc = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), limits: { maxRequestHeadersCount: 10 } });
    cleanups.push(sc.close);
    expect((await rawExchange(sc.ports.outbound, head(10))).startsWith('HTTP/1.1 431 ')).toBe(true);
    const upgrade = head(10).replace('\r\n\r\n', '\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    expect((await rawExchange(sc.ports.outbound, upgrade)).startsWith('HTTP/1.1 431 ')).toBe(true);
    expect((await rawExchange(sc.ports.outbound, head(11, 'CONNECT reviews:9080 HTTP/1.1'))).startsWith('HTTP/1.1 431 ')).toBe(true);
    await eventually(async () => expect(await requestCount(sc, { reporter: 'source', response_code: '431', response_flags: 'DPE' })).toBe(3));
    expect(await refused(sc, 'outbound', 'too_many_headers')).toBe(3);
  });

  it('takes the limit from --max-request-headers-count and MESHTEL_MAX_REQUEST_HEADERS_COUNT, validated', () => {
    const flags = { inbound: [] as string[], serviceListener: [] as string[], telemetry: true };
    expect(sidecarOptionsFromFlags({ ...flags, maxRequestHeadersCount: '250' }, {}).limits?.maxRequestHeadersCount).toBe(250);
    expect(() => sidecarOptionsFromFlags({ ...flags, maxRequestHeadersCount: '0' }, {})).toThrow(/--max-request-headers-count/);
  });
});

describe('HTTP/2 requests with more header fields than max_headers_count', () => {
  it('resets the stream with INTERNAL_ERROR (pseudo-headers count), records nothing, keeps the connection', async () => {
    const { seen, sc } = await h2Reviews(cleanups);
    const session = http2.connect(`http://127.0.0.1:${sc.ports.inbound}`, { peerMaxConcurrentStreams: 10 });
    session.on('error', () => {});
    cleanups.push(async () => void session.destroy());
    const stream = (n: number): Promise<{ status: number; rstCode: number }> =>
      new Promise((resolve) => {
        // :method, :path, :scheme, :authority are four entries of the list.
        const headers: Record<string, string> = { ':method': 'GET', ':path': '/' };
        for (let i = 0; i < n - 4; i++) headers[`x-h${i}`] = 'v';
        const s = session.request(headers);
        let status = 0;
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('error', () => {});
        s.resume();
        s.on('close', () => resolve({ status, rstCode: s.rstCode ?? 0 }));
        s.end();
      });
    expect(await stream(100)).toEqual({ status: 200, rstCode: 0 });
    // 101 is under node's own pair limit (twice ours), so the listener sees it and refuses it, counted.
    expect(nodeHeaderPairLimit(100)).toBe(200);
    expect(await stream(101)).toEqual({ status: 0, rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR });
    expect(await stream(150)).toEqual({ status: 0, rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR });
    expect(await refused(sc, 'inbound', 'too_many_headers')).toBe(2);
    expect(await stream(50)).toEqual({ status: 200, rstCode: 0 });
    await eventually(async () => expect(await requestCount(sc)).toBe(2));
    expect(seen()).toBe(2);
  });
});

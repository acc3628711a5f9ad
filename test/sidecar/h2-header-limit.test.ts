/**
 * HTTP/2 request heads over the listener's header limit (issue 11.3, h2c/gRPC): refused as Envoy's HTTP/2
 * codec refuses them (the stream reset with INTERNAL_ERROR, the connection kept, nothing recorded in
 * istio_requests_total since the stream never reaches the HTTP filters) and counted with the reason
 * HTTP/1.1 uses, `meshtel_proxy_refused_total{reason="headers_too_large"}`.
 */
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { headerListBytes, nodeHeaderListLimit } from '../../src/sidecar/http-listener.js';
import { eventually, h2Reviews, refused, requestCount } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});


/** One stream on `session`: its status, or the RST_STREAM code it was closed with. */
function h2Stream(session: http2.ClientHttp2Session, headers: Record<string, string>): Promise<{ status: number; rstCode: number }> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': 'GET', ':path': '/', ...headers });
    let status = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('error', () => {});
    stream.resume();
    stream.on('close', () => resolve({ status, rstCode: stream.rstCode ?? 0 }));
    stream.end();
  });
}

function h2cSession(port: number): http2.ClientHttp2Session {
  // Node's client refuses to send a compressed block over 64 KiB by default; the test sends larger ones.
  const session = http2.connect(`http://127.0.0.1:${port}`, { maxSendHeaderBlockLength: 1 << 20 });
  session.on('error', () => {});
  cleanups.push(async () => void session.destroy());
  return session;
}

describe('HTTP/2 request headers over the limit', () => {
  it('resets the stream with INTERNAL_ERROR as Envoy does, counts headers_too_large and records no request', async () => {
    const { port, seen, sc } = await h2Reviews(cleanups);
    const session = h2cSession(port);
    // 70 KiB: over Envoy's 60 KiB default, under node's own limit (twice ours), so node lets it reach the check.
    const big = await h2Stream(session, { 'x-big': 'a'.repeat(70 * 1024) });
    expect(big).toEqual({ status: 0, rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR });
    expect(await refused(sc, 'inbound', 'headers_too_large')).toBe(1);
    expect(seen()).toBe(0);
    // The stream is refused, not the connection: the same session still serves a request under the limit.
    expect(await h2Stream(session, { 'x-fits': 'a'.repeat(50 * 1024) })).toEqual({ status: 200, rstCode: 0 });
    await eventually(async () => expect(await requestCount(sc, { reporter: 'destination', response_code: '200' })).toBe(1));
    // Nothing for the refused stream: Envoy's istio stats filter never sees a stream its codec reset.
    expect(await requestCount(sc)).toBe(1);
    expect(await refused(sc, 'inbound', 'headers_too_large')).toBe(1);
  });

  it('applies a configured limit, sized as Envoy sizes a header map (names and values, pseudo-headers included)', async () => {
    const { port, seen, sc } = await h2Reviews(cleanups, { maxRequestHeadersBytes: 8 * 1024 });
    const session = h2cSession(port);
    // :method GET, :path /, :scheme http, :authority 127.0.0.1:<port> — the rest of the budget goes to x-pad.
    const pseudo = headerListBytes([':method', 'GET', ':path', '/', ':scheme', 'http', ':authority', `127.0.0.1:${port}`]);
    const room = 8 * 1024 - pseudo - 'x-pad'.length;
    expect(await h2Stream(session, { 'x-pad': 'a'.repeat(room) })).toEqual({ status: 200, rstCode: 0 });
    expect(await h2Stream(session, { 'x-pad': 'a'.repeat(room + 1) })).toEqual({ status: 0, rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR });
    expect(await refused(sc, 'inbound', 'headers_too_large')).toBe(1);
    expect(seen()).toBe(1);
  });

  it('counts a stream node’s codec resets on its own (over twice the limit) as h2_codec_refused, also as the session’s last', async () => {
    const { port, seen, sc } = await h2Reviews(cleanups, { maxRequestHeadersBytes: 8 * 1024 });
    const session = h2cSession(port);
    // Node applies its own limit once the client acknowledged the sidecar's SETTINGS: wait for a first stream.
    expect(await h2Stream(session, {})).toEqual({ status: 200, rstCode: 0 });
    // 20 KiB: over twice 8 KiB, so node resets it (ENHANCE_YOUR_CALM) before any event; between two streams it sees.
    expect(await h2Stream(session, { 'x-big': 'a'.repeat(20 * 1024) })).toEqual({ status: 0, rstCode: http2.constants.NGHTTP2_ENHANCE_YOUR_CALM });
    expect(await h2Stream(session, {})).toEqual({ status: 200, rstCode: 0 });
    expect(await refused(sc, 'inbound', 'h2_codec_refused')).toBe(1);
    // Two more as the session's last streams: counted when it ends.
    for (let i = 0; i < 2; i++) expect((await h2Stream(session, { 'x-big': `${i}`.repeat(20 * 1024) })).rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
    await eventually(async () => expect(await refused(sc, 'inbound', 'h2_codec_refused')).toBe(3));
    expect(await refused(sc, 'inbound', 'headers_too_large')).toBe(0);
    expect(seen()).toBe(2);
  });

  it('sets node’s own limit above the configured one, so a refusal happens where it can be counted', () => {
    expect(nodeHeaderListLimit(60 * 1024)).toBe(120 * 1024);
    expect(headerListBytes(['x-a', 'bc', ':path', '/'])).toBe(3 + 2 + 5 + 1);
  });
});

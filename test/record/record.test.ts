import { describe, expect, it } from 'vitest';
import { firstHeader } from '../../src/core/headers.js';
import { takeByteDeltas } from '../../src/record/bytes.js';
import { inboundClusterName, outboundClusterName, outboundClusterOf } from '../../src/record/cluster.js';
import { connectionInfoOf, peerClosedConnection } from '../../src/record/connection.js';
import { clientErrorFlags, clientResponseCode, closedEarlyCode, closedEarlyFlags, isUpstreamProtocolError, serverStreamOutcome, tcpUpstreamErrorFlag, upstreamFailureOutcome } from '../../src/record/outcome.js';
import { principalsOf, spiffeFromSan } from '../../src/record/principal.js';
import { spanEndOf } from '../../src/record/span.js';
import { ResponseFlag } from '../../src/stats/types.js';
import type { HttpStreamAttributes } from '../../src/stats/types.js';

const SERVICE = { host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' };
const err = (code: string, name = 'Error'): Error => Object.assign(new Error(code), { code, name });

describe('record/outcome', () => {
  describe('upstreamFailureOutcome()', () => {
    it.each([
      { kind: 'connect', e: err('ECONNREFUSED'), retried: false, code: 503, flags: ResponseFlag.UF },
      { kind: 'connect', e: err('ECONNREFUSED'), retried: true, code: 503, flags: ResponseFlag.UF | ResponseFlag.URX },
      { kind: 'reset', e: err('ECONNRESET'), retried: false, code: 503, flags: ResponseFlag.UC },
      { kind: 'reset', e: err('HPE_INVALID_CONSTANT'), retried: false, code: 502, flags: ResponseFlag.UPE },
      { kind: 'reset', e: Object.assign(new Error('x'), { name: 'HTTPParserError' }), retried: false, code: 502, flags: ResponseFlag.UPE },
    ] as const)('$kind $e.message (retried $retried) → $code', ({ kind, e, retried, code, flags }) => {
      expect(upstreamFailureOutcome(kind, e, retried)).toEqual({ responseCode: code, responseFlags: flags });
    });
  });

  it('isUpstreamProtocolError() is false for non-errors and socket errors', () => {
    expect(isUpstreamProtocolError(null)).toBe(false);
    expect(isUpstreamProtocolError('HPE_X')).toBe(false);
    expect(isUpstreamProtocolError(err('ECONNRESET'))).toBe(false);
  });

  it('closedEarlyFlags() adds DC only when the downstream left, not for a reset the proxy made', () => {
    expect(closedEarlyFlags(ResponseFlag.UC, true)).toBe(ResponseFlag.UC);
    expect(closedEarlyFlags(ResponseFlag.UC, false)).toBe(ResponseFlag.UC | ResponseFlag.DC);
    expect(closedEarlyFlags(0, false)).toBe(ResponseFlag.DC);
  });

  it('tcpUpstreamErrorFlag() is UF before the upstream connected, UC after (Envoy tcp_proxy)', () => {
    expect(tcpUpstreamErrorFlag(false)).toBe(ResponseFlag.UF);
    expect(tcpUpstreamErrorFlag(true)).toBe(ResponseFlag.UC);
  });

  it('closedEarlyCode() is 0 when no head was sent, else the code sent', () => {
    expect(closedEarlyCode(200, false)).toBe(0);
    expect(closedEarlyCode(200, true)).toBe(200);
  });

  it.each([
    { facts: { finished: true, headersSent: true, statusCode: 503 }, out: { responseCode: 503, responseFlags: 0 } },
    { facts: { finished: false, headersSent: true, statusCode: 200 }, out: { responseCode: 200, responseFlags: ResponseFlag.DC } },
    { facts: { finished: false, headersSent: false, statusCode: 200 }, out: { responseCode: 0, responseFlags: ResponseFlag.DC } },
    // The client left (FIN / reset seen): DC. The app ended the stream itself: UC, 503 before a head.
    { facts: { finished: false, headersSent: true, statusCode: 200, peerClosed: true }, out: { responseCode: 200, responseFlags: ResponseFlag.DC } },
    { facts: { finished: false, headersSent: false, statusCode: 200, peerClosed: false }, out: { responseCode: 503, responseFlags: ResponseFlag.UC } },
    { facts: { finished: false, headersSent: true, statusCode: 200, peerClosed: false }, out: { responseCode: 200, responseFlags: ResponseFlag.UC } },
  ])('serverStreamOutcome($facts)', ({ facts, out }) => {
    expect(serverStreamOutcome(facts)).toEqual(out);
  });

  it.each([
    { e: err('UND_ERR_ABORTED'), flags: ResponseFlag.DC },
    { e: Object.assign(new Error('a'), { name: 'AbortError' }), flags: ResponseFlag.DC },
    { e: err('UND_ERR_HEADERS_TIMEOUT'), flags: ResponseFlag.UT },
    { e: err('UND_ERR_BODY_TIMEOUT'), flags: ResponseFlag.UT },
    { e: err('ECONNREFUSED'), flags: ResponseFlag.UF },
    { e: err('ENOTFOUND'), flags: ResponseFlag.UF },
    { e: err('HPE_INVALID_CONSTANT'), flags: ResponseFlag.UPE },
    { e: err('UND_ERR_SOCKET'), flags: ResponseFlag.UC },
  ])('clientErrorFlags($e.message) = $flags', ({ e, flags }) => {
    expect(clientErrorFlags(e)).toBe(flags);
  });

  it.each([
    // No head: the local reply an outbound sidecar answers the app with (router.cc), 0 when the app left first.
    { status: 0, flags: ResponseFlag.UF, code: 503 },
    { status: 0, flags: ResponseFlag.UC, code: 503 },
    { status: 0, flags: ResponseFlag.UT, code: 504 },
    { status: 0, flags: ResponseFlag.UPE, code: 502 },
    { status: 0, flags: ResponseFlag.DC, code: 0 },
    // After a head: the code that was received.
    { status: 200, flags: ResponseFlag.UC, code: 200 },
    { status: 200, flags: ResponseFlag.DC, code: 200 },
    { status: 404, flags: 0, code: 404 },
  ])('clientResponseCode($status, $flags) = $code, as an outbound sidecar records it', ({ status, flags, code }) => {
    expect(clientResponseCode(status, flags)).toBe(code);
  });
});

describe('record/cluster', () => {
  it('names clusters as Istio xDS does', () => {
    expect(inboundClusterName(9080)).toBe('inbound|9080||');
    expect(outboundClusterName(9080, SERVICE.host)).toBe('outbound|9080||reviews.default.svc.cluster.local');
    expect(outboundClusterOf(SERVICE, 9080)).toBe('outbound|9080||reviews.default.svc.cluster.local');
    expect(outboundClusterOf(null, 80)).toBe('PassthroughCluster');
    expect(outboundClusterOf(SERVICE, 9080, 'BlackHoleCluster')).toBe('BlackHoleCluster');
  });
});

describe('record/bytes takeByteDeltas()', () => {
  it('counts each byte of a keep-alive connection once and moves the marks', () => {
    const socket = { bytesRead: 100, bytesWritten: 300 };
    const marks = { read: 0, written: 0 };
    expect(takeByteDeltas(socket, marks)).toEqual({ requestBytes: 100, responseBytes: 300 });
    socket.bytesRead = 150;
    socket.bytesWritten = 320;
    expect(takeByteDeltas(socket, marks)).toEqual({ requestBytes: 50, responseBytes: 20 });
  });

  it('counts 0 for a socket without counters (fastify inject())', () => {
    expect(takeByteDeltas({}, { read: 0, written: 0 })).toEqual({ requestBytes: 0, responseBytes: 0 });
  });
});

describe('record/principal', () => {
  it('spiffeFromSan() takes the first spiffe URI SAN', () => {
    expect(spiffeFromSan('DNS:x, URI:https://a, URI:spiffe://td/ns/a/sa/b')).toBe('spiffe://td/ns/a/sa/b');
    expect(spiffeFromSan(undefined)).toBe('');
    expect(spiffeFromSan('DNS:only')).toBe('');
  });

  it('principalsOf() is empty in plain text and never reads certificates there', () => {
    expect(principalsOf({ encrypted: false, getPeerCertificate: () => { throw new Error('read'); } })).toEqual({ peerPrincipal: '', localPrincipal: '' });
  });

  it('peerClosedConnection() is true after a FIN or a reset from the peer, false when our side ended it', () => {
    expect(peerClosedConnection({ readableEnded: true })).toBe(true);
    expect(peerClosedConnection({ readableEnded: false, errored: Object.assign(new Error('r'), { code: 'ECONNRESET' }) })).toBe(true);
    expect(peerClosedConnection({ readableEnded: false, errored: null })).toBe(false);
    expect(peerClosedConnection({})).toBe(false);
  });

  it('connectionInfoOf() reads the certificates once per connection', () => {
    let reads = 0;
    const socket = {
      encrypted: true,
      getPeerCertificate: () => {
        reads++;
        return { subjectaltname: 'URI:spiffe://td/ns/a/sa/client' };
      },
      getCertificate: () => ({ subjectaltname: 'URI:spiffe://td/ns/a/sa/server' }),
    };
    const a = connectionInfoOf(socket);
    const b = connectionInfoOf(socket);
    expect(a).toBe(b);
    expect(a).toMatchObject({ peerPrincipal: 'spiffe://td/ns/a/sa/client', localPrincipal: 'spiffe://td/ns/a/sa/server', read: 0, written: 0 });
    expect(reads).toBe(1);
  });
});

describe('record/span spanEndOf()', () => {
  const attrs = (responseFlags: number): HttpStreamAttributes => ({
    reporter: 'source',
    peer: null,
    peerPrincipal: '',
    localPrincipal: '',
    service: SERVICE,
    authority: 'reviews:9080',
    protocol: 'grpc',
    responseCode: 0,
    grpcStatus: '14',
    responseFlags,
    durationMs: 1,
    requestBytes: 10,
    responseBytes: 20,
    method: 'GET',
    path: '/',
  });

  it('carries the same flags the series do (letters, "-" for none)', () => {
    expect(spanEndOf(attrs(ResponseFlag.UF | ResponseFlag.URX), 'c').responseFlags).toBe('UF,URX');
    expect(spanEndOf(attrs(ResponseFlag.DC), 'c').responseFlags).toBe('DC');
    expect(spanEndOf(attrs(0), 'c')).toEqual({ statusCode: 0, responseFlags: '-', upstreamCluster: 'c', requestSize: 10, responseSize: 20, grpcStatus: '14', peer: null });
  });
});

describe('core/headers firstHeader()', () => {
  it('takes the first of a repeated header', () => {
    expect(firstHeader(['a', 'b'])).toBe('a');
    expect(firstHeader('a')).toBe('a');
    expect(firstHeader(3)).toBe('3');
    expect(firstHeader(undefined)).toBeUndefined();
  });
});

/**
 * grpc_response_status inference, response_flags ordering and `le` formatting.
 */
import { describe, expect, it } from 'vitest';
import { grpcStatusCode, grpcStatusLabel, httpToGrpcStatus, requestProtocolOf } from '../../src/stats/grpc-status.js';
import { formatResponseFlags, parseResponseFlags } from '../../src/stats/response-flags.js';
import { ResponseFlag } from '../../src/stats/types.js';
import { DEFAULT_BUCKETS, formatLe, validateBuckets } from '../../src/stats/definitions.js';
import { isMeshtelError } from '../../src/core/errors.js';

const grpcLabel = (p: 'http' | 'grpc', s: string | undefined, code: number): string => grpcStatusLabel(grpcStatusCode(p, s, code));

describe('grpc_response_status', () => {
  it.each([
    [400, 13],
    [401, 16],
    [403, 7],
    [404, 12],
    [429, 14],
    [502, 14],
    [503, 14],
    [504, 14],
    [200, 2],
    [500, 2],
    [418, 2],
  ])('maps HTTP %i to gRPC %i (envoy httpToGrpcStatus)', (http, grpc) => {
    expect(httpToGrpcStatus(http)).toBe(grpc);
    expect(grpcLabel('grpc', undefined, http)).toBe(String(grpc));
  });

  it.each([
    ['trailer/header value wins over the HTTP status', 'grpc', '5', 503, '5'],
    ['0 is OK', 'grpc', '0', 200, '0'],
    ['16 is the last known code', 'grpc', '16', 200, '16'],
    ['user-defined code > 16 is InvalidCode', 'grpc', '17', 200, '-1'],
    ['not a number is InvalidCode', 'grpc', 'abc', 200, '-1'],
    ['negative is InvalidCode', 'grpc', '-3', 200, '-1'],
    ['whitespace is accepted', 'grpc', ' 4 ', 200, '4'],
    ['gRPC without response and without status is empty', 'grpc', undefined, 0, ''],
    ['plain HTTP is always empty', 'http', '3', 500, ''],
  ] as const)('%s', (_n, proto, status, code, expected) => {
    expect(grpcLabel(proto, status, code)).toBe(expected);
  });
});

describe('requestProtocolOf() (request_protocol for the sidecar, the fastify plugin and the interceptor)', () => {
  it.each([
    ['application/grpc', 'grpc'],
    ['application/grpc+proto', 'grpc'],
    ['application/json', 'http'],
    ['text/plain; charset=application/grpc', 'http'],
    [undefined, 'http'],
  ] as const)('%s → %s', (contentType, protocol) => {
    expect(requestProtocolOf(contentType)).toBe(protocol);
  });
});

describe('formatResponseFlags()', () => {
  it('prints - when no flag is set', () => {
    expect(formatResponseFlags(0)).toBe('-');
  });

  it('prints every flag in Envoy flag-bit order, comma-joined', () => {
    const all = Object.values(ResponseFlag).reduce((m, b) => m | b, 0);
    expect(formatResponseFlags(all)).toBe('LH,UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,UAEX,RLSE,DC,URX,SI,IH,DPE,UMSDR,RFCF,NFCF,DT,UPE,NC,OM,DF,DO,DR');
  });

  it.each([
    [ResponseFlag.UF | ResponseFlag.UH, 'UH,UF'],
    [ResponseFlag.DC, 'DC'],
    [ResponseFlag.URX | ResponseFlag.UT | ResponseFlag.DR, 'UT,URX,DR'],
    [1 << 30, '-'],
  ])('formats %i as %s', (flags, s) => {
    expect(formatResponseFlags(flags)).toBe(s);
    expect(formatResponseFlags(flags)).toBe(s); // cached path
  });

  it('round-trips through parseResponseFlags()', () => {
    expect(parseResponseFlags('UH,UF')).toEqual({ flags: ResponseFlag.UH | ResponseFlag.UF, unknown: [] });
    expect(parseResponseFlags('XX,DC')).toEqual({ flags: ResponseFlag.DC, unknown: ['XX'] });
  });
});

describe('formatLe()', () => {
  it.each([
    [0.5, '0.5'],
    [1, '1'],
    [3600000, '3600000'],
    [0.1, '0.10000000000000000555111512312578'],
    [2.5, '2.5'],
    [1e21, '1000000000000000000000'],
    [Infinity, '+Inf'],
  ])('prints %d as %s (%%.32g)', (v, s) => {
    expect(formatLe(v)).toBe(s);
  });

  it('prints Envoy default buckets as the integers and 0.5 Envoy shows', () => {
    expect(DEFAULT_BUCKETS.map(formatLe).join(',')).toBe('0.5,1,5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,300000,600000,1800000,3600000');
  });
});

describe('validateBuckets()', () => {
  it.each([[[]], [[1, 1]], [[2, 1]], [[1, NaN]], [[1, Infinity]], ['1,2'], [[1, '2']]])('rejects %j with MESHTEL_ERR_INVALID_BUCKETS', (b) => {
    try {
      validateBuckets('istio_request_bytes', b);
      expect.unreachable();
    } catch (e) {
      expect(isMeshtelError(e, 'MESHTEL_ERR_INVALID_BUCKETS')).toBe(true);
    }
  });

  it('accepts an increasing list', () => {
    expect(validateBuckets('x', [1, 2, 3])).toEqual([1, 2, 3]);
  });
});

import { describe, expect, it } from 'vitest';
import { decodeValue, detectKind } from '../../src/cli/decode.js';
import type { DecodeReport } from '../../src/cli/decode.js';
import { buildMetadata, encodeAll, encodeValue, inputFromObject } from '../../src/cli/encode.js';
import { isMeshtelError } from '../../src/core/errors.js';
import type { PayloadProfile } from '../../src/metadata/types.js';
import { mxVector } from '../support/fixtures.js';
import { runMeshtel } from './support.js';

const byIndex = mxVector;

describe('decodeValue() on the vectors of test/fixtures/mx-vectors.json', () => {
  it.each([
    [0, 'x-envoy-peer-metadata', 'flat'],
    [2, 'x-envoy-peer-metadata-id', undefined],
    [3, 'baggage', 'baggage'],
    [4, 'baggage', 'baggage'],
    [5, 'baggage', 'baggage'],
    [6, 'baggage', 'baggage'],
    [8, 'baggage', 'baggage'],
    [9, 'x-envoy-peer-metadata', 'reduced'],
    [10, 'x-envoy-peer-metadata', 'flat'],
    [11, 'tcp-frame', 'reduced'],
  ])('vector %i is detected as %s with profile %s', (i, kind, profile) => {
    const report = decodeValue(byIndex(i).value);
    expect(report.kind).toBe(kind);
    expect(report.profile).toBe(profile);
  });

  it('decodes the real SampleIstioHeader (Go order, unpadded) and says so', () => {
    const report = decodeValue(byIndex(0).value);
    expect(report.peer).toMatchObject({ namespace: 'default', workload: 'productpage-v1', cluster: 'client-cluster', app: 'productpage' });
    expect(report.struct).toMatchObject({ MESH_ID: 'mesh', INSTANCE_IPS: '10.52.0.34,fe80::a075:11ff:fe5e:f1cd' });
    expect(report.notes.join('\n')).toMatch(/without = padding/);
    expect(report.notes.join('\n')).toMatch(/not in deterministic/);
  });

  it('gives the documented struct for the derived reduced and flat values', () => {
    for (const i of [9, 10]) expect(decodeValue(byIndex(i).value).struct).toEqual(byIndex(i).decoded.struct);
  });

  it('decodes the real clientBaggage into the documented peer', () => {
    const report = decodeValue(byIndex(3).value);
    expect(report.labels).toEqual({
      workload: 'productpage-v1',
      workload_namespace: 'default',
      canonical_service: 'productpage-v1',
      canonical_revision: 'version-1',
      app: 'productpage',
      version: 'v1',
      cluster: 'client-cluster',
    });
    expect(report.peer).toMatchObject({ workloadType: 'deployment', name: 'productpage-v1-84975bc778-pxz2w' });
  });

  it('splits the real node id into its parts', () => {
    expect(decodeValue(byIndex(2).value).nodeId).toEqual({
      type: 'sidecar',
      ip: '1.1.1.1',
      podName: 'test',
      namespace: 'default',
      dnsDomain: 'default.svc.cluster.local',
    });
  });

  // Decode, then encode the decoded fields with the detected profile: the bytes come back.
  it.each([
    [9, 'x-envoy-peer-metadata'],
    [10, 'x-envoy-peer-metadata'],
    [11, 'tcpFrameHex'],
  ] as const)('vector %i round-trips through decode and encode (%s)', (i, field) => {
    const report = decodeValue(byIndex(i).value);
    const meta = buildMetadata(inputFromObject(report.struct, 'vector'), {});
    expect(encodeAll(meta, report.profile as PayloadProfile, report.peerId ?? 'unused')[field]).toBe(byIndex(i).value);
  });

  it('round-trips the real clientBaggage through the decoded peer', () => {
    const report = decodeValue(byIndex(3).value);
    const { labels: _labels, ...peer } = report.peer as NonNullable<DecodeReport['peer']>;
    const meta = buildMetadata(inputFromObject(peer, 'peer'), {});
    expect(encodeAll(meta, 'reduced-identity', 'unused').baggage).toBe(byIndex(3).value);
  });
});

describe('decodeValue() on bad input', () => {
  it.each([
    ['not base64', 'x-envoy-peer-metadata', 'bad_base64', 'Zm9v!!'],
    ['base64 of bytes that are not a Struct', 'x-envoy-peer-metadata', 'not_struct', Buffer.from([0xff, 0xff, 0xff]).toString('base64')],
    ['a frame whose magic is wrong', 'tcp-frame', 'not_mx', 'deadbeef00000000'],
    ['a truncated frame', 'tcp-frame', 'truncated', '3d23046700000223 0a2a'],
    ['baggage without one usable entry', 'baggage', 'bad_baggage', 'foo'],
  ] as const)('throws MESHTEL_ERR_DECODE for %s', (_name, kind, reason, value) => {
    try {
      decodeValue(value, kind);
      expect.unreachable();
    } catch (err) {
      expect(isMeshtelError(err, 'MESHTEL_ERR_DECODE')).toBe(true);
      expect((err as Error).message).toContain(reason);
    }
  });

  it('names the unknown labels of a peer that sent too little', () => {
    const report = decodeValue('k8s.namespace.name=default,service.name=reviews');
    expect(report.labels).toMatchObject({ workload: 'unknown', canonical_revision: 'latest', cluster: 'unknown' });
    expect(report.notes.join('\n')).toMatch(/workload=unknown/);
  });

  it.each([
    ['3d230467000000', 'tcp-frame'],
    ['router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local', 'x-envoy-peer-metadata-id'],
    ['Ch4KCkNMVVNURVJfSUQ=', 'x-envoy-peer-metadata'],
    ['k8s.namespace.name=default', 'baggage'],
  ])('detects %s as %s', (value, kind) => {
    expect(detectKind(value)).toBe(kind);
  });
});

describe('encodeValue()', () => {
  const meta = buildMetadata({ name: 'ratings-v1-0', namespace: 'bookinfo', workload: 'ratings-v1', labels: { app: 'ratings', version: 'v1' }, instanceIps: ['10.0.0.7'] }, {});
  const all = encodeAll(meta, 'reduced', 'sidecar~10.0.0.7~ratings-v1-0.bookinfo~bookinfo.svc.cluster.local');
  it.each([
    ['header', all['x-envoy-peer-metadata']],
    ['baggage', all.baggage],
    ['tcp', all.tcpFrameHex],
    ['id', all['x-envoy-peer-metadata-id']],
  ] as const)('gives the %s form, with the node id built from the metadata by default', (format, expected) => {
    expect(encodeValue(meta, format, 'reduced')).toBe(expected);
  });

  it('--app reviews and -l app=reviews build the same workload (canonical_service "reviews", issue 10)', () => {
    const base = { name: 'reviews-v1-0', namespace: 'bookinfo', workload: 'reviews-v1' };
    const viaFlag = buildMetadata(base, { app: 'reviews', version: 'v1' });
    const viaLabel = buildMetadata(base, { labels: { app: 'reviews', version: 'v1' } });
    expect(viaFlag.canonicalService).toBe('reviews');
    expect(encodeAll(viaFlag, 'reduced-1.29')).toEqual(encodeAll(viaLabel, 'reduced-1.29'));
    expect(decodeValue(encodeValue(viaFlag, 'header', 'reduced-1.29')).peer).toMatchObject({ canonicalService: 'reviews', app: 'reviews', canonicalRevision: 'v1' });
  });

  it('prefers a given node id', () => {
    expect(encodeValue(meta, 'id', 'reduced', 'client')).toBe('client');
    expect(decodeValue(encodeValue(meta, 'tcp', 'reduced', 'client')).peerId).toBe('client');
  });
});

describe('meshtel decode / encode (CLI)', () => {
  it('decode prints JSON for a vector and encode reproduces it from that JSON on stdin', async () => {
    const value = byIndex(9).value;
    const decoded = await runMeshtel(['decode', value]);
    expect(decoded.code).toBe(0);
    const report = JSON.parse(decoded.stdout) as DecodeReport;
    expect(report.profile).toBe('reduced');
    const encoded = await runMeshtel(['encode', '-f', '-', '--profile', 'reduced'], { stdin: JSON.stringify(report.struct) });
    expect(encoded.stderr).toBe('');
    expect(encoded.stdout.trim()).toBe(value);
  });

  it('encode builds a value from flags that decode reads back', async () => {
    const encoded = await runMeshtel([
      'encode', '--name', 'reviews-v2-abc', '--namespace', 'bookinfo', '--workload', 'reviews-v2',
      '--owner', 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v2', '-l', 'app=reviews', '-l', 'version=v2',
      '--service-account', 'bookinfo-reviews', '--format', 'all',
    ]);
    expect(encoded.code).toBe(0);
    const all = JSON.parse(encoded.stdout) as Record<string, string>;
    expect(all['x-envoy-peer-metadata-id']).toMatch(/^sidecar~[^~]+~reviews-v2-abc\.bookinfo~bookinfo\.svc\.cluster\.local$/);
    const back = decodeValue(all['x-envoy-peer-metadata'] as string);
    // The default is what a 1.29 sidecar sends: no IDENTITY (issue 10.1); --profile reduced-identity adds it.
    expect(back.profile).toBe('reduced');
    expect(back.peer).toMatchObject({ workload: 'reviews-v2', app: 'reviews', version: 'v2', identity: '' });
    expect(decodeValue(all.tcpFrameHex as string).peerId).toBe(all['x-envoy-peer-metadata-id']);
  });

  it.each([
    [['decode', 'Zm9v!!', '--as', 'mx'], 1, 'MESHTEL_ERR_DECODE'],
    [['decode', 'x', '--as', 'json'], 2, 'MESHTEL_ERR_CLI_USAGE'],
    [['encode', '--profile', 'v2'], 2, 'MESHTEL_ERR_CLI_USAGE'],
    [['encode', '--namespace', 'Bad_NS'], 1, 'MESHTEL_ERR_INVALID_METADATA'],
  ])('meshtel %j exits %i with %s', async (args, code, errorCode) => {
    const run = await runMeshtel(args);
    expect(run.code).toBe(code);
    expect(run.stderr).toContain(errorCode);
  });
});

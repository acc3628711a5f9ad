import { describe, expect, it } from 'vitest';
import { decodeBaggage, encodeBaggage } from '../../src/metadata/baggage.js';
import type { PeerMetadata } from '../../src/metadata/types.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';

const EMPTY_PEER: PeerMetadata = {
  name: '', namespace: '', cluster: '', workload: '', workloadType: 'unknown', canonicalService: '', canonicalRevision: '',
  app: '', version: '', identity: '', region: '', zone: '', labels: {},
};

describe('encodeBaggage()', () => {
  it.each([
    ['empty metadata gives an empty value (Istio still sets the header)', {}, ''],
    ['unknown type is written as pod', { workload: 'db', workloadType: 'unknown' }, 'k8s.pod.name=db'],
    ['app.name only when it differs from service.name', { canonicalService: 's', app: 's' }, 'service.name=s'],
    ['service.name falls back to app', { app: 'a' }, 'service.name=a'],
    ['service.version falls back to version', { version: 'v3' }, 'service.version=v3'],
    ['app.version only when it differs', { canonicalRevision: 'r', version: 'v' }, 'service.version=r,app.version=v'],
    ['locality last', { namespace: 'ns', region: 'eu', zone: 'eu-1' }, 'k8s.namespace.name=ns,cloud.region=eu,cloud.availability_zone=eu-1'],
    ['job', { workload: 'j', workloadType: 'job' }, 'k8s.job.name=j'],
    ['cronjob', { workload: 'c', workloadType: 'cronjob' }, 'k8s.cronjob.name=c'],
  ] as const)('%s', (_n, fields, expected) => {
    expect(encodeBaggage({ ...EMPTY_PEER, ...fields })).toBe(expected);
  });

  it('writes a StatefulSet pod as k8s.pod.name (OWNER dropped, spec §8.10)', () => {
    const meta = createWorkloadMetadata({ name: 'db-0', namespace: 'ns', workload: 'db', owner: 'kubernetes://apis/apps/v1/namespaces/ns/statefulsets/db', cluster: '' });
    expect(encodeBaggage(meta)).toBe('k8s.pod.name=db,service.name=db,service.version=latest,k8s.namespace.name=ns,k8s.instance.name=db-0');
  });

  it('uses app.kubernetes.io/name for the local workload, as 1.29 builds it', () => {
    const meta = createWorkloadMetadata({ name: 'p', namespace: 'ns', cluster: '', workload: 'w', labels: { app: 'plain', 'app.kubernetes.io/name': 'q', 'service.istio.io/canonical-name': 'svc' } });
    expect(encodeBaggage(meta)).toContain('service.name=svc,app.name=q');
  });
});

describe('decodeBaggage()', () => {
  it('reads only the first header of several', () => {
    const r = decodeBaggage(['k8s.namespace.name=first', 'k8s.namespace.name=second']);
    expect(r).toMatchObject({ ok: true, peer: { namespace: 'first' } });
  });

  it('ignores unknown keys, W3C properties-free entries of other vendors and entries without =', () => {
    const r = decodeBaggage('userId=42,garbage,k8s.namespace.name=ns,=x,service.name=svc');
    expect(r).toMatchObject({ ok: true, peer: { namespace: 'ns', canonicalService: 'svc', app: 'svc' }, profile: 'baggage' });
  });

  it('tolerates W3C optional whitespace around members', () => {
    expect(decodeBaggage(' k8s.namespace.name = ns , service.name=s')).toMatchObject({ ok: true, peer: { namespace: 'ns', canonicalService: 's' } });
  });

  it('keeps the text up to a second = as Istio (absl::StrSplit into a pair) does', () => {
    expect(decodeBaggage('service.name=a=b')).toMatchObject({ ok: true, peer: { canonicalService: 'a' } });
  });

  it.each([
    ['app.name then service.name', 'app.name=a,service.name=s', { app: 'a', canonicalService: 's' }],
    ['service.name then app.name', 'service.name=s,app.name=a', { app: 'a', canonicalService: 's' }],
    ['only app.name fills the service', 'app.name=a', { app: 'a', canonicalService: 'a' }],
    ['only app.version fills the revision', 'app.version=v', { version: 'v', canonicalRevision: 'v' }],
    ['k8s.pod.name gives a pod', 'k8s.pod.name=p', { workload: 'p', workloadType: 'pod' }],
    ['k8s.cronjob.name gives a cronjob', 'k8s.cronjob.name=c', { workload: 'c', workloadType: 'cronjob' }],
    ['locality is read (P master)', 'cloud.region=eu,cloud.availability_zone=eu-1', { region: 'eu', zone: 'eu-1' }],
  ])('fills in like Istio: %s', (_n, value, fields) => {
    expect(decodeBaggage(value)).toMatchObject({ ok: true, peer: fields });
  });

  it.each([
    ['an empty header', ''],
    ['only unknown keys', 'userId=42,sessionId=abc'],
    ['only malformed entries', ',,,=,==,k8s.namespace.name'],
    ['Istio keys without values', 'k8s.namespace.name=,service.name='],
    ['a duplicate key with different values', 'k8s.namespace.name=a,k8s.namespace.name=b'],
  ])('returns bad_baggage for %s', (_n, value) => {
    expect(decodeBaggage(value)).toMatchObject({ ok: false, reason: 'bad_baggage' });
  });

  it('accepts a duplicate key that repeats the same value', () => {
    expect(decodeBaggage('k8s.namespace.name=a,k8s.namespace.name=a')).toMatchObject({ ok: true, peer: { namespace: 'a' } });
  });

  it('returns too_large above maxBytes and no_header for an empty list', () => {
    expect(decodeBaggage('k8s.namespace.name=a'.padEnd(9000, 'x'))).toMatchObject({ ok: false, reason: 'too_large' });
    expect(decodeBaggage('k8s.namespace.name=abc', { maxBytes: 10 })).toMatchObject({ ok: false, reason: 'too_large' });
    expect(decodeBaggage([])).toMatchObject({ ok: false, reason: 'no_header' });
  });
});

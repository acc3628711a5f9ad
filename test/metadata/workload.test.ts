import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createWorkloadMetadata, loadWorkloadMetadata } from '../../src/metadata/workload.js';
import type { WorkloadMetadataOptions } from '../../src/metadata/workload.js';
import { parseOwner } from '../../src/metadata/owner.js';
import { isMeshtelError } from '../../src/core/errors.js';
import type { MeshtelErrorCode } from '../../src/core/errors.js';

let dir = '';
const NO_FILE = '/nonexistent/meshtel/labels';

/** Load with files pointed at nothing unless the case sets them. */
function load(options: WorkloadMetadataOptions) {
  return loadWorkloadMetadata({ labelsPath: NO_FILE, annotationsPath: NO_FILE, ...options });
}

function write(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function expectConfigError(fn: () => unknown, code: MeshtelErrorCode, ...mentions: string[]): void {
  try {
    fn();
    expect.unreachable('expected a ConfigError');
  } catch (err) {
    expect(isMeshtelError(err, code), String(err)).toBe(true);
    for (const m of mentions) expect((err as Error).message).toContain(m);
  }
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'meshtel-workload-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// The injector's env for productpage (I injection-template.yaml).
const INJECTED_ENV = {
  POD_NAME: 'productpage-v1-84975bc778-pxz2w',
  POD_NAMESPACE: 'default',
  INSTANCE_IP: '10.52.0.34',
  SERVICE_ACCOUNT: 'bookinfo-productpage',
  ISTIO_META_CLUSTER_ID: 'client-cluster',
  ISTIO_META_WORKLOAD_NAME: 'productpage-v1',
  ISTIO_META_OWNER: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
  ISTIO_META_MESH_ID: 'mesh',
  ISTIO_META_APP_CONTAINERS: 'productpage',
  ISTIO_META_INTERCEPTION_MODE: 'REDIRECT',
  ISTIO_VERSION: '1.29.0',
};

describe('loadWorkloadMetadata()', () => {
  describe('environment', () => {
    it('reads the variables the injector sets', () => {
      const m = load({ env: INJECTED_ENV });
      expect(m).toMatchObject({
        name: 'productpage-v1-84975bc778-pxz2w',
        namespace: 'default',
        instanceIps: ['10.52.0.34'],
        serviceAccount: 'bookinfo-productpage',
        cluster: 'client-cluster',
        workload: 'productpage-v1',
        workloadType: 'deployment',
        meshId: 'mesh',
        istioVersion: '1.29.0',
        identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
        proxyType: 'sidecar',
      });
      expect(m.extra).toEqual({ APP_CONTAINERS: 'productpage', INTERCEPTION_MODE: 'REDIRECT' });
      expect(Object.isFrozen(m)).toBe(true);
      expect(Object.isFrozen(m.labels)).toBe(true);
    });

    it.each([
      ['TRUST_DOMAIN sets the SPIFFE trust domain and the default mesh id', { TRUST_DOMAIN: 'corp.example' }, { trustDomain: 'corp.example', meshId: 'corp.example', identity: 'spiffe://corp.example/ns/ns/sa/default' }],
      ['INSTANCE_IPS wins over INSTANCE_IP', { INSTANCE_IPS: '10.0.0.1, fd00::1', INSTANCE_IP: '10.9.9.9' }, { instanceIps: ['10.0.0.1', 'fd00::1'] }],
      ['ISTIO_META_REGION / ISTIO_META_ZONE set the locality', { ISTIO_META_REGION: 'eu-west1', ISTIO_META_ZONE: 'eu-west1-b' }, { region: 'eu-west1', zone: 'eu-west1-b' }],
      ['ISTIO_LOCALITY region/zone/subzone sets the locality', { ISTIO_LOCALITY: 'us/us-1/rack-4' }, { region: 'us', zone: 'us-1' }],
      ['no CLUSTER_ID gives the injector default', {}, { cluster: 'Kubernetes', meshId: 'cluster.local' }],
      ['no WORKLOAD_NAME names the workload after the pod (a bare pod)', { POD_NAME: 'solo' }, { workload: 'solo', workloadType: 'pod' }],
    ])('%s', (_n, env, expected) => {
      expect(load({ env: { POD_NAME: 'p', POD_NAMESPACE: 'ns', INSTANCE_IP: '10.0.0.9', ...env } })).toMatchObject(expected);
    });

    it('merges ISTIO_METAJSON_* as JSON (labels into labels, the rest into extra)', () => {
      const m = load({
        env: {
          POD_NAME: 'p',
          POD_NAMESPACE: 'ns',
          ISTIO_METAJSON_LABELS: '{"app":"vm-app","version":"v9"}',
          ISTIO_METAJSON_PLATFORM_METADATA: '{"gcp_project":"x"}',
        },
      });
      expect(m.labels).toEqual({ app: 'vm-app', version: 'v9' });
      expect(m).toMatchObject({ app: 'vm-app', version: 'v9', canonicalService: 'vm-app', canonicalRevision: 'v9' });
      expect(m.extra.PLATFORM_METADATA).toEqual({ gcp_project: 'x' });
    });

    it.each([
      ['INSTANCE_IP', { INSTANCE_IP: 'ten.zero' }],
      ['POD_NAMESPACE', { POD_NAMESPACE: 'Not_A_Namespace' }],
      ['POD_NAME', { POD_NAME: 'UPPER' }],
      ['SERVICE_ACCOUNT', { SERVICE_ACCOUNT: 'bad sa' }],
      ['ISTIO_METAJSON_LABELS', { ISTIO_METAJSON_LABELS: '{not json' }],
      ['ISTIO_METAJSON_LABELS', { ISTIO_METAJSON_LABELS: '{"app":1}' }],
      ['ISTIO_META_WORKLOAD_NAME', { ISTIO_META_WORKLOAD_NAME: 'evil\r\nx-injected: 1' }],
    ])('throws MESHTEL_ERR_INVALID_ENV naming %s', (variable, env) => {
      expectConfigError(() => load({ env: { POD_NAME: 'p', POD_NAMESPACE: 'ns', ...env } }), 'MESHTEL_ERR_INVALID_ENV', variable);
    });
  });

  describe('downward-API files', () => {
    it('reads labels and annotations, dropping pod-template-hash', () => {
      const labelsPath = write('labels', 'app="reviews"\npod-template-hash="5d8f7b9c4"\nservice.istio.io/canonical-revision="v2"\nversion="v2"\n');
      const annotationsPath = write('annotations', 'kubectl.kubernetes.io/restartedAt="2024-01-01T00:00:00Z"\nnote="line1\\nline2 \\"quoted\\" \\u00e9"\n');
      const m = loadWorkloadMetadata({ env: { POD_NAME: 'reviews-v2-x', POD_NAMESPACE: 'bookinfo' }, labelsPath, annotationsPath });
      expect(m.labels).toEqual({ app: 'reviews', 'service.istio.io/canonical-revision': 'v2', version: 'v2' });
      expect(m.podLabels).toBe(m.labels);
      expect(m.annotations.note).toBe('line1\nline2 "quoted" é');
      expect(m).toMatchObject({ canonicalService: 'reviews', canonicalRevision: 'v2', app: 'reviews', version: 'v2' });
    });

    it('treats a missing file as no labels', () => {
      expect(load({ env: { POD_NAME: 'p' } }).labels).toEqual({});
    });

    it('throws MESHTEL_ERR_CONFIG_FILE naming a garbled file and line', () => {
      const labelsPath = write('garbled', 'app="ok"\nthis is not a label\n');
      expectConfigError(() => load({ env: {}, labelsPath }), 'MESHTEL_ERR_CONFIG_FILE', labelsPath, 'line 2');
    });

    it('throws MESHTEL_ERR_CONFIG_FILE naming an unreadable file', () => {
      const sub = path.join(dir, 'a-directory');
      mkdirSync(sub, { recursive: true });
      expectConfigError(() => load({ env: {}, labelsPath: sub }), 'MESHTEL_ERR_CONFIG_FILE', sub);
      if (process.getuid?.() !== 0) {
        const locked = write('locked', 'app="x"\n');
        chmodSync(locked, 0o000);
        expectConfigError(() => load({ env: {}, annotationsPath: locked }), 'MESHTEL_ERR_CONFIG_FILE', locked);
      }
    });
  });

  describe('precedence', () => {
    it('applies defaults < env < downward API < file < overrides', () => {
      const labelsPath = write('prec-labels', 'app="from-downward"\nversion="v1"\n');
      const file = write('prec.yaml', 'cluster: from-file\nnamespace: from-file\nlabels:\n  version: v-file\n');
      const m = loadWorkloadMetadata({
        env: { POD_NAME: 'p', POD_NAMESPACE: 'from-env', ISTIO_META_CLUSTER_ID: 'from-env', ISTIO_METAJSON_LABELS: '{"app":"from-env","tier":"env"}' },
        labelsPath,
        annotationsPath: NO_FILE,
        file,
        overrides: { cluster: 'from-overrides' },
      });
      expect(m.namespace).toBe('from-file');
      expect(m.cluster).toBe('from-overrides');
      expect(m.labels).toEqual({ app: 'from-downward', tier: 'env', version: 'v-file' });
    });

    it('reads a JSON file too', () => {
      const file = write('meta.json', JSON.stringify({ name: 'json-pod', namespace: 'jns', proxyType: 'router' }));
      expect(load({ env: {}, file })).toMatchObject({ name: 'json-pod', namespace: 'jns', proxyType: 'router' });
    });

    it.each([
      ['an unknown field in the file', 'colour: blue\n', 'MESHTEL_ERR_INVALID_METADATA', 'colour'],
      ['a file that is not a mapping', '- a\n- b\n', 'MESHTEL_ERR_CONFIG_FILE', 'mapping'],
      ['invalid YAML', 'a: [\n', 'MESHTEL_ERR_CONFIG_FILE', 'YAML'],
      ['a bad value from the file', 'proxyType: mesh-gateway\n', 'MESHTEL_ERR_INVALID_METADATA', 'proxyType'],
    ] as const)('rejects %s', (_n, text, code, mention) => {
      const file = write(`bad-${mention}.yaml`, text);
      expectConfigError(() => load({ env: {}, file }), code, mention);
    });

    it('rejects a missing explicit file with MESHTEL_ERR_CONFIG_FILE', () => {
      expectConfigError(() => load({ env: {}, file: path.join(dir, 'nope.yaml') }), 'MESHTEL_ERR_CONFIG_FILE', 'nope.yaml');
    });
  });
});

describe('createWorkloadMetadata()', () => {
  describe('canonical service and revision precedence (I pkg/kube/labels CanonicalService)', () => {
    it.each([
      [{ 'service.istio.io/canonical-name': 'c', 'app.kubernetes.io/name': 'k', app: 'a' }, 'c'],
      [{ 'app.kubernetes.io/name': 'k', app: 'a' }, 'k'],
      [{ app: 'a' }, 'a'],
      [{}, 'the-deployment'],
    ])('service from %j is %s', (labels, expected) => {
      expect(createWorkloadMetadata({ name: 'p', workload: 'the-deployment', labels }).canonicalService).toBe(expected);
    });

    it.each([
      [{ 'service.istio.io/canonical-revision': 'c', 'app.kubernetes.io/version': 'k', version: 'v' }, 'c'],
      [{ 'app.kubernetes.io/version': 'k', version: 'v' }, 'k'],
      [{ version: 'v' }, 'v'],
      [{}, 'latest'],
    ])('revision from %j is %s', (labels, expected) => {
      expect(createWorkloadMetadata({ name: 'p', labels }).canonicalRevision).toBe(expected);
    });

    it('treats the app/version fields as the app/version pod labels: one derivation (issue 10)', () => {
      const viaField = createWorkloadMetadata({ name: 'p', workload: 'reviews-v1', app: 'reviews', version: 'v1' });
      const viaLabel = createWorkloadMetadata({ name: 'p', workload: 'reviews-v1', labels: { app: 'reviews', version: 'v1' } });
      expect(viaField).toMatchObject({ app: 'reviews', version: 'v1', canonicalService: 'reviews', canonicalRevision: 'v1', labels: { app: 'reviews', version: 'v1' } });
      expect(viaField).toEqual(viaLabel);
      // The explicit field wins over a label of the same name; '' removes it.
      expect(createWorkloadMetadata({ name: 'p', app: 'b', labels: { app: 'a' } }).labels).toEqual({ app: 'b' });
      expect(createWorkloadMetadata({ name: 'p', workload: 'w', app: '', labels: { app: 'a' } })).toMatchObject({ app: '', canonicalService: 'w', labels: {} });
    });

    it('reads the local app/version from the plain labels only (spec §8.5)', () => {
      const m = createWorkloadMetadata({ name: 'p', labels: { 'app.kubernetes.io/name': 'k', 'app.kubernetes.io/version': '2' } });
      expect(m).toMatchObject({ app: '', version: '' });
    });
  });

  describe('owner parsing', () => {
    it.each([
      ['kubernetes://apis/apps/v1/namespaces/ns/deployments/web', 'web', 'deployment'],
      ['kubernetes://apis/batch/v1/namespaces/ns/jobs/migrate', 'migrate', 'job'],
      ['kubernetes://apis/batch/v1/namespaces/ns/cronjobs/nightly', 'nightly', 'cronjob'],
      ['kubernetes://apis/v1/namespaces/ns/pods/solo', 'solo', 'pod'],
      ['kubernetes://apis/apps/v1/namespaces/ns/statefulsets/db', 'db', 'unknown'],
      ['kubernetes://apis/apps/v1/namespaces/ns/daemonsets/agent', 'agent', 'unknown'],
      ['deployments/web', 'web', 'unknown'],
      ['', 'web', 'unknown'],
    ] as const)('%s (workload %s) is %s', (owner, workload, type) => {
      expect(parseOwner(owner, workload)).toBe(type);
      expect(createWorkloadMetadata({ name: 'p', workload, owner }).workloadType).toBe(type);
    });

    it('builds OWNER from an explicit workload type', () => {
      const m = createWorkloadMetadata({ name: 'p', namespace: 'ns', workload: 'w', workloadType: 'job' });
      expect(m.owner).toBe('kubernetes://apis/apps/v1/namespaces/ns/jobs/w');
    });
  });

  describe('validation', () => {
    it.each([
      ['namespace', { namespace: '' }],
      ['namespace', { namespace: 'has.dot' }],
      ['name', { name: '-leading-dash' }],
      ['instanceIps', { instanceIps: ['10.0.0.300'] }],
      ['trustDomain', { trustDomain: 'a/b' }],
      ['proxyType', { proxyType: 'gateway' as never }],
      ['workloadType', { workloadType: 'statefulset' as never }],
      ['labels', { labels: { app: 7 as unknown as string } }],
      ['cluster', { cluster: 3 as unknown as string }],
      ['region', { region: 'eu\nwest' }],
    ])('names the field %s and the bad value', (field, fields) => {
      try {
        createWorkloadMetadata(fields);
        expect.unreachable();
      } catch (err) {
        expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_METADATA')).toBe(true);
        expect((err as Error).message).toContain(field);
        expect((err as { details: { field: string } }).details.field).toBe(field);
      }
    });

    it('returns a deeply frozen object', () => {
      const m = createWorkloadMetadata({ name: 'p', extra: { nested: { a: 1 } } });
      expect(Object.isFrozen(m.extra.nested)).toBe(true);
      expect(Object.isFrozen(m.instanceIps)).toBe(true);
    });
  });
});

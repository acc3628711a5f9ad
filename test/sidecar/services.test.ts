/**
 * Which service a request names and which service a workload is behind (issue 11.7, 10.5): one resolver
 * relative to the caller's namespace, and inbound `destination_service*` from the Service(s) that select
 * the pod, not from its canonical name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { resolveServiceName } from '../../src/core/service-names.js';
import { kubernetesServiceResolver } from '../../src/embed/embedding.js';
import { createWorkloadMetadata } from '../../src/metadata/workload.js';
import { eventually, httpApp, send, series, sidecar, workload } from './helpers.js';
import type { Cleanups } from './helpers.js';

const cleanups: Cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('resolveServiceName()', () => {
  it.each([
    ['reviews', 'ns1', 'reviews.ns1.svc.cluster.local'],
    ['reviews:9080', 'ns1', 'reviews.ns1.svc.cluster.local'],
    ['reviews.ns2', 'ns1', 'reviews.ns2.svc.cluster.local'],
    ['reviews.ns2.svc', 'ns1', 'reviews.ns2.svc.cluster.local'],
    ['Reviews.NS2.svc.cluster.local.:80', 'ns1', 'reviews.ns2.svc.cluster.local'],
  ])('resolves %s for a caller in %s to %s', (authority, ns, host) => {
    expect(resolveServiceName(authority, ns)?.host).toBe(host);
  });

  it.each(['10.0.0.1:80', '[::1]:80', 'localhost', 'api.example.com', 'reviews.ns2.svc.other.domain', ''])('names no service for %s', (authority) => {
    expect(resolveServiceName(authority, 'ns1')).toBeUndefined();
  });

  it('is what the embedding resolves with', () => {
    const r = kubernetesServiceResolver('ns1');
    for (const a of ['reviews', 'reviews.ns2:9080', 'reviews.ns2.svc.cluster.local', 'api.example.com', '10.0.0.1']) {
      expect(r(a)).toEqual(resolveServiceName(a, 'ns1') ?? null);
    }
  });
});

describe('Sidecar service resolution', () => {
  it('routes a short name to the service of the caller\'s namespace, whatever the file order', async () => {
    const one = await httpApp((_r, res) => res.end('ns1'));
    const two = await httpApp((_r, res) => res.end('ns2'));
    cleanups.push(one.close, two.close);
    const svc = (namespace: string, port: number) => ({ name: 'reviews', namespace, ports: [{ name: 'http', protocol: 'http' as const, port: 9080 }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, sidecar: false }] });
    const mesh = { services: [svc('ns1', one.port), svc('ns2', two.port)] };
    const callerIn = (namespace: string) =>
      createWorkloadMetadata({ name: 'productpage-v1-1', namespace, workload: 'productpage-v1', labels: { app: 'productpage', version: 'v1' }, serviceAccount: 'pp', cluster: 'Kubernetes' });
    for (const [ns, expected] of [['ns1', 'ns1'], ['ns2', 'ns2']] as const) {
      const sc = await sidecar({ metadata: callerIn(ns), mesh });
      cleanups.push(sc.close);
      expect((await send(sc.ports.outbound, { host: 'reviews:9080' })).body).toBe(expected);
      expect((await send(sc.ports.outbound, { host: `reviews.${ns === 'ns1' ? 'ns2' : 'ns1'}:9080` })).body).toBe(ns === 'ns1' ? 'ns2' : 'ns1');
    }
  });

  it('refuses a mesh whose hostnames entry takes another service\'s name', async () => {
    const port = [{ name: 'http', protocol: 'http' as const, port: 80 }];
    await expect(sidecar({ metadata: workload('productpage', 'pp'), mesh: { services: [{ name: 'reviews', ports: port }, { name: 'evil', hostnames: ['reviews.default.svc.cluster.local'], ports: port }] } })).rejects.toMatchObject({
      code: 'MESHTEL_ERR_INVALID_MESH',
    });
  });
});

describe('Sidecar inbound destination_service', () => {
  async function serverBehind(mesh: Parameters<typeof sidecar>[0]['mesh']) {
    const app = await httpApp();
    cleanups.push(app.close);
    // Canonical name ratings, pod label app=server (the Service `server` selects app=server).
    const sc = await sidecar({ metadata: workload('server', 'sa-server', 'v1', { 'service.istio.io/canonical-name': 'ratings' }), app: { port: app.port }, mesh });
    cleanups.push(sc.close);
    expect((await send(sc.ports.inbound, { host: 'whatever:9080' })).status).toBe(200);
    let line = '';
    await eventually(async () => {
      const lines = await series(sc, 'istio_requests_total');
      expect(lines).toHaveLength(1);
      line = lines[0]!;
    });
    return line;
  }
  const port = [{ name: 'http', protocol: 'http' as const, port: 9080 }];

  it('comes from the Service that selects the pod, not from its canonical name', async () => {
    const line = await serverBehind({ services: [{ name: 'ratings', selector: { app: 'ratings' }, ports: port }, { name: 'server', ports: port }] });
    expect(line).toContain('destination_service="server.default.svc.cluster.local",destination_canonical_service="ratings"');
    expect(line).toContain('destination_service_name="server",destination_service_namespace="default"');
  });

  it('takes the first selecting Service in file order when several select the pod', async () => {
    const line = await serverBehind({ services: [{ name: 'all-v1', selector: { version: 'v1' }, ports: port }, { name: 'server', ports: port }] });
    expect(line).toContain('destination_service="all-v1.default.svc.cluster.local"');
    expect(line).toContain('destination_service_name="all-v1"');
  });

  it('falls back to the canonical name when no Service selects the pod (a service named like it does not count)', async () => {
    const line = await serverBehind({ services: [{ name: 'ratings', selector: { app: 'ratings' }, ports: port }] });
    expect(line).toContain('destination_service="ratings",destination_canonical_service="ratings"');
    expect(line).toContain('destination_service_name="ratings"');
  });
});

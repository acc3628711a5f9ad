import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServiceRegistry, loadMeshFile, parseEndpointWorkload, parseMesh } from '../../src/sidecar/registry.js';
import { hostOfAuthority, splitAuthority } from '../../src/core/service-names.js';

const dir = mkdtempSync(path.join(tmpdir(), 'meshtel-mesh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MESH = {
  services: [
    {
      name: 'reviews',
      namespace: 'bookinfo',
      ports: [
        { name: 'http', protocol: 'http' as const, port: 9080 },
        { name: 'grpc', protocol: 'grpc' as const, port: 9090 },
      ],
      endpoints: [{ address: '10.0.0.1', ports: { http: 15006 } }, { address: '10.0.0.2' }],
    },
    { name: 'api', hostnames: ['api.example.com'], external: true, ports: [{ name: 'https', protocol: 'http' as const, port: 443 }] },
  ],
};

describe('ServiceRegistry', () => {
  describe('.resolve()', () => {
    // A caller in bookinfo: short names resolve there.
    const registry = createServiceRegistry(MESH, { namespace: 'bookinfo' });
    it.each([
      ['reviews:9080', 'reviews.bookinfo.svc.cluster.local', 9080],
      ['reviews.bookinfo:9090', 'reviews.bookinfo.svc.cluster.local', 9090],
      ['REVIEWS.bookinfo.svc.cluster.local:9080', 'reviews.bookinfo.svc.cluster.local', 9080],
      ['api.example.com', 'api.default.svc.cluster.local', 443],
    ])('routes %s to %s port %i', (authority, host, port) => {
      const route = registry.resolve(authority, 80);
      expect(route?.service.host).toBe(host);
      expect(route?.port).toBe(port);
    });

    it.each(['reviews:1234', 'ratings:9080', 'reviews'])('finds no route for %s', (authority) => {
      expect(registry.resolve(authority, 80)).toBeUndefined();
    });

    it('uses the endpoint port named after the service port, else the service port', () => {
      const route = registry.resolve('reviews:9080')!;
      expect([route.pick(), route.pick(), route.pick()].map((e) => `${e?.address}:${e?.port}`)).toEqual(['10.0.0.1:15006', '10.0.0.2:9080', '10.0.0.1:15006']);
    });

    it('knows hosts independently of ports', () => {
      expect(registry.hasHost('reviews:1')).toBe(true);
      expect(registry.hasHost('ratings')).toBe(false);
    });
  });

  describe('.resolve() with one name in two namespaces', () => {
    const svc = (namespace: string, port: number) => ({ name: 'reviews', namespace, ports: [{ name: 'http', protocol: 'http' as const, port: 9080 }], endpoints: [{ address: '10.0.0.1', ports: { http: port } }] });
    const mesh = { services: [svc('ns1', 1001), svc('ns2', 1002)] };
    it.each([
      // caller namespace, authority, resolved namespace (Kubernetes DNS search path of a pod)
      ['ns1', 'reviews:9080', 'ns1'],
      ['ns2', 'reviews:9080', 'ns2'],
      ['ns1', 'reviews.ns2:9080', 'ns2'],
      ['ns2', 'reviews.ns1.svc:9080', 'ns1'],
      ['ns1', 'reviews.ns2.svc.cluster.local:9080', 'ns2'],
      ['ns2', 'reviews.ns1.svc.cluster.local.:9080', 'ns1'],
    ])('a caller in %s sending %s reaches %s, whichever service the file lists last', (caller, authority, ns) => {
      for (const m of [mesh, { services: [...mesh.services].reverse() }]) {
        expect(createServiceRegistry(m, { namespace: caller }).resolve(authority)?.service.namespace).toBe(ns);
      }
    });

    it('finds no service for a short name in a namespace that has none', () => {
      expect(createServiceRegistry(mesh, { namespace: 'ns3' }).resolve('reviews:9080')).toBeUndefined();
      expect(createServiceRegistry(mesh, { namespace: 'ns3' }).hasHost('reviews')).toBe(false);
    });
  });

  describe('parseMesh() hostname collisions', () => {
    const port = [{ name: 'http', protocol: 'http' as const, port: 80 }];
    it.each([
      ['the short name of another service', [{ name: 'reviews', ports: port }, { name: 'evil', hostnames: ['reviews'], ports: port }]],
      ['the qualified name of another service', [{ name: 'reviews', ports: port }, { name: 'evil', hostnames: ['reviews.default'], ports: port }]],
      ['the FQDN of another service', [{ name: 'reviews', namespace: 'prod', ports: port }, { name: 'evil', hostnames: ['Reviews.prod.svc.cluster.local.'], ports: port }]],
      ['a hostname of another service', [{ name: 'a', hostnames: ['api.example.com'], ports: port }, { name: 'b', hostnames: ['API.example.com:443'], ports: port }]],
    ])('rejects a hostnames entry that is %s with MESHTEL_ERR_INVALID_MESH', (_what, services) => {
      expect(() => parseMesh({ services })).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_MESH', details: expect.objectContaining({ path: 'services.1.hostnames.0' }) }));
    });

    it('accepts a service listing its own names as hostnames', () => {
      expect(() => parseMesh({ services: [{ name: 'reviews', hostnames: ['reviews', 'reviews.default.svc.cluster.local'], ports: port }] })).not.toThrow();
    });
  });

  describe('.servicesOf()', () => {
    const port = [{ name: 'http', protocol: 'http' as const, port: 80 }];
    const registry = createServiceRegistry({
      services: [
        { name: 'server', selector: { app: 'server' }, ports: port },
        { name: 'ratings', ports: port },
        { name: 'all-v1', selector: { version: 'v1' }, ports: port },
        { name: 'server', namespace: 'other', selector: { app: 'server' }, ports: port },
        { name: 'manual', selector: {}, ports: port },
      ],
    });
    it('lists the services of the namespace whose selector matches the pod labels, in file order', () => {
      // Canonical name ratings, but the pod is labelled app=server: it is behind server (and all-v1).
      const pod = { namespace: 'default', podLabels: { app: 'server', version: 'v1', 'service.istio.io/canonical-name': 'ratings' } };
      expect(registry.servicesOf(pod).map((s) => s.host)).toEqual(['server.default.svc.cluster.local', 'all-v1.default.svc.cluster.local']);
    });

    it('selects app=<name> by default, and nothing with an empty selector', () => {
      expect(registry.servicesOf({ namespace: 'default', podLabels: { app: 'ratings' } }).map((s) => s.name)).toEqual(['ratings']);
      expect(registry.servicesOf({ namespace: 'default', podLabels: { app: 'manual' } })).toEqual([]);
    });
  });

  describe('parseMesh()', () => {
    it.each([
      [{ services: [{ name: 'Bad_Name', ports: [{ name: 'h', protocol: 'http', port: 1 }] }] }, 'services.0.name'],
      [{ services: [{ name: 'a', ports: [] }] }, 'services.0.ports'],
      [{ services: [{ name: 'a', ports: [{ name: 'h', protocol: 'udp', port: 1 }] }] }, 'services.0.ports.0.protocol'],
      [{ services: [{ name: 'a', ports: [{ name: 'h', protocol: 'http', port: 70000 }] }] }, 'services.0.ports.0.port'],
      [{ services: [{ name: 'a', ports: [{ name: 'h', protocol: 'http', port: 1 }], endpoints: [{ address: 'x', ports: { nope: 1 } }] }] }, 'services.0.endpoints.0.ports.nope'],
      [{ services: [{ name: 'a', ports: [{ name: 'h', protocol: 'http', port: 1 }] }, { name: 'a', ports: [{ name: 'h', protocol: 'http', port: 1 }] }] }, 'services.1'],
      [{ services: [{ name: 'a', typo: true, ports: [{ name: 'h', protocol: 'http', port: 1 }] }] }, 'services.0'],
    ])('rejects %j with MESHTEL_ERR_INVALID_MESH naming %s', (mesh, at) => {
      expect(() => parseMesh(mesh)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_MESH', details: expect.objectContaining({ path: at }) }));
    });
  });

  describe('loadMeshFile()', () => {
    it('reads YAML', () => {
      const file = path.join(dir, 'mesh.yaml');
      writeFileSync(file, 'services:\n  - name: ratings\n    ports: [{name: http, protocol: http, port: 9080}]\n    endpoints: [{address: 127.0.0.1}]\n');
      expect(createServiceRegistry(loadMeshFile(file)).resolve('ratings:9080')?.service.name).toBe('ratings');
    });

    it.each([
      ['missing', null],
      ['broken.yaml', 'services: [unclosed'],
    ])('fails on %s with MESHTEL_ERR_INVALID_MESH naming the file', (name, text) => {
      const file = path.join(dir, name);
      if (text !== null) writeFileSync(file, text);
      expect(() => loadMeshFile(file)).toThrow(expect.objectContaining({ code: 'MESHTEL_ERR_INVALID_MESH', message: expect.stringContaining(file) }));
    });
  });
});

describe('parseEndpointWorkload()', () => {
  it('reads Istio EDS istio.workload metadata', () => {
    expect(parseEndpointWorkload('reviews-v1;bookinfo;reviews;v1;Kubernetes')).toMatchObject({
      workload: 'reviews-v1',
      namespace: 'bookinfo',
      canonicalService: 'reviews',
      canonicalRevision: 'v1',
      cluster: 'Kubernetes',
      app: '',
      version: '',
    });
  });

  it('ignores values with fewer than 5 parts', () => {
    expect(parseEndpointWorkload('reviews-v1;bookinfo;reviews;v1')).toBeNull();
  });
});

describe('splitAuthority()', () => {
  it.each([
    ['Host:80', 'host', 80],
    ['host', 'host', undefined],
    ['[::1]:8080', '::1', 8080],
    ['host:notaport', 'host', undefined],
  ])('splits %s', (authority, host, port) => {
    expect(splitAuthority(authority)).toEqual({ host, port });
  });
});

describe('hostOfAuthority() (built on splitAuthority: one authority parser for routing, service names and span names)', () => {
  it.each([
    ['Reviews.NS:9080', 'reviews.ns'],
    ['reviews.ns.svc.cluster.local.', 'reviews.ns.svc.cluster.local'],
    ['reviews.ns.:80', 'reviews.ns'],
    ['[FD00::1]:8080', '[fd00::1]'],
    ['[::1]', '[::1]'],
    // A bare IPv6 address has more than one colon and no port.
    ['fd00::1', 'fd00::1'],
    ['host:notaport', 'host'],
    ['', ''],
  ])('%s → %s', (authority, host) => {
    expect(hostOfAuthority(authority)).toBe(host);
  });
});

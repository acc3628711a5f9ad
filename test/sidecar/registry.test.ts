import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServiceRegistry, loadMeshFile, parseEndpointWorkload, parseMesh, splitAuthority } from '../../src/sidecar/registry.js';

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
    const registry = createServiceRegistry(MESH);
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

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../../src/sidecar/sidecar.js';
import { bookinfoLabels, eventually, series, sidecar, workload } from './helpers.js';

// Raw-bytes service: no .proto needed, messages are the UTF-8 payloads.
const identity = (b: Buffer): Buffer => b;
const SERVICE: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  Fail: { path: '/test.Echo/Fail', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  Chat: { path: '/test.Echo/Chat', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
const EchoClient = grpc.makeGenericClientConstructor(SERVICE, 'Echo');

let app: grpc.Server;
let appPort: number;
let server: Sidecar;
let client: Sidecar;
let stub: InstanceType<typeof EchoClient>;

beforeAll(async () => {
  app = new grpc.Server();
  app.addService(SERVICE, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.NOT_FOUND, details: 'nope' }),
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      // Answer every message twice, end when the client ends.
      call.on('data', (m: Buffer) => {
        call.write(m);
        call.write(m);
      });
      call.on('end', () => call.end());
    },
  });
  appPort = await new Promise<number>((resolve, reject) =>
    app.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  const mesh = (port: number) => ({ services: [{ name: 'reviews', ports: [{ name: 'grpc', protocol: 'grpc' as const, port: 9090 }], endpoints: [{ address: '127.0.0.1', ports: { grpc: port } }] }] });
  server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'grpc' }, mesh: mesh(appPort) });
  client = await sidecar({
    metadata: workload('productpage', 'bookinfo-productpage'),
    mesh: mesh(server.ports.inbound),
    serviceListeners: [{ host: 'reviews', port: 9090, listenPort: 0 }],
  });
  stub = new EchoClient(`127.0.0.1:${client.ports.serviceListeners[0]}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  stub?.close();
  await client?.close();
  await server?.close();
  app?.forceShutdown();
});

function unary(method: 'Echo' | 'Fail', payload: string): Promise<{ err: grpc.ServiceError | null; value?: Buffer }> {
  return new Promise((resolve) => {
    (stub as unknown as Record<string, (req: Buffer, cb: (err: grpc.ServiceError | null, value?: Buffer) => void) => void>)[method]!(Buffer.from(payload), (err, value) =>
      resolve({ err, value }),
    );
  });
}

const grpcLabels = (reporter: 'source' | 'destination', status: string) =>
  bookinfoLabels(reporter, { request_protocol: 'grpc', grpc_response_status: status, destination_service: 'reviews.default.svc.cluster.local' });

describe('Sidecar over gRPC (h2c)', () => {
  it('proxies unary calls and reports grpc_response_status from the trailers, on both sides', async () => {
    const ok = await unary('Echo', 'hello');
    expect(ok.value?.toString()).toBe('hello');
    const failed = await unary('Fail', 'x');
    expect(failed.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(failed.err?.details).toBe('nope');
    await eventually(async () => {
      expect(await series(client, 'istio_requests_total')).toEqual([
        `istio_requests_total${grpcLabels('source', '0')} 1`,
        `istio_requests_total${grpcLabels('source', '5')} 1`,
      ]);
      expect(await series(server, 'istio_requests_total')).toEqual([
        `istio_requests_total${grpcLabels('destination', '0')} 1`,
        `istio_requests_total${grpcLabels('destination', '5')} 1`,
      ]);
    });
  });

  it('counts the messages of a bidirectional stream in both directions', async () => {
    const call = stub.makeBidiStreamRequest('/test.Echo/Chat', identity, identity);
    const got: string[] = [];
    call.on('data', (m: Buffer) => got.push(m.toString()));
    const done = new Promise<void>((resolve) => call.on('end', resolve));
    for (const m of ['a', 'bb', '']) call.write(Buffer.from(m));
    call.end();
    await done;
    expect(got).toEqual(['a', 'a', 'bb', 'bb', '', '']);
    // The stats stage labels message counters with the peer/service labels only (no protocol, code or
    // status), so the unary calls above add to the same series: requests 1 + 1 + 3, responses 1 + 0 + 6.
    const msgLabels = (reporter: 'source' | 'destination') => `${grpcLabels(reporter, '0').split(',request_protocol=')[0]}}`;
    await eventually(async () => {
      expect(await series(server, 'istio_request_messages_total')).toEqual([`istio_request_messages_total${msgLabels('destination')} 5`]);
      expect(await series(server, 'istio_response_messages_total')).toEqual([`istio_response_messages_total${msgLabels('destination')} 7`]);
      expect(await series(client, 'istio_request_messages_total')).toEqual([`istio_request_messages_total${msgLabels('source')} 5`]);
      expect(await series(client, 'istio_response_messages_total')).toEqual([`istio_response_messages_total${msgLabels('source')} 7`]);
    });
  });

  it('reports the messages of a long stream every reporting interval, before it ends', async () => {
    const mesh = { services: [{ name: 'reviews', ports: [{ name: 'grpc', protocol: 'grpc' as const, port: 9090 }], endpoints: [{ address: '127.0.0.1', ports: { grpc: appPort } }] }] };
    const srv = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: appPort, protocol: 'grpc' }, mesh, reportingIntervalMs: 50 });
    const local = new EchoClient(`127.0.0.1:${srv.ports.inbound}`, grpc.credentials.createInsecure());
    try {
      const call = local.makeBidiStreamRequest('/test.Echo/Chat', identity, identity);
      let got = 0;
      call.on('data', () => got++);
      const done = new Promise<void>((resolve) => call.on('end', resolve));
      call.write(Buffer.from('one'));
      call.write(Buffer.from('two'));
      const value = async (name: string): Promise<string | undefined> => (await series(srv, name))[0]?.split(' ').pop();
      // Stream still open: the periodic report already carries the deltas.
      await eventually(async () => {
        expect(got).toBe(4);
        expect(await value('istio_request_messages_total')).toBe('2');
        expect(await value('istio_response_messages_total')).toBe('4');
        expect(await series(srv, 'istio_requests_total')).toEqual([]);
      });
      call.write(Buffer.from('three'));
      call.end();
      await done;
      await eventually(async () => {
        expect(await value('istio_request_messages_total')).toBe('3');
        expect(await value('istio_response_messages_total')).toBe('6');
        expect(await series(srv, 'istio_requests_total')).toHaveLength(1);
      });
    } finally {
      local.close();
      await srv.close();
    }
  });

  it('answers a refused gRPC upstream with a trailers-only UNAVAILABLE and records grpc_response_status 14, UF,URX', async () => {
    const dead = new grpc.Server();
    const deadPort = await new Promise<number>((resolve, reject) =>
      dead.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    dead.forceShutdown();
    const c = await sidecar({
      metadata: workload('productpage', 'bookinfo-productpage'),
      mesh: { services: [{ name: 'reviews', ports: [{ name: 'grpc', protocol: 'grpc' as const, port: 9090 }], endpoints: [{ address: '127.0.0.1', ports: { grpc: deadPort } }] }] },
      serviceListeners: [{ host: 'reviews', port: 9090, listenPort: 0 }],
    });
    const s = new EchoClient(`127.0.0.1:${c.ports.serviceListeners[0]}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        (s as unknown as Record<string, (req: Buffer, cb: (err: grpc.ServiceError | null) => void) => void>).Echo!(Buffer.from('x'), (e) => resolve(e)),
      );
      expect(err?.code).toBe(grpc.status.UNAVAILABLE);
      await eventually(async () => {
        const lines = await series(c, 'istio_requests_total');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain('request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="UF,URX"');
      });
    } finally {
      s.close();
      await c.close();
    }
  });
});

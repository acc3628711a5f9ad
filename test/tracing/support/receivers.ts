/**
 * Loopback trace backends that decode what really goes over the wire:
 * - an OTLP/HTTP receiver (`POST /v1/traces`, `application/x-protobuf`) that decodes ExportTraceServiceRequest
 *   with protobufjs from the .proto subset below (field numbers from opentelemetry-proto
 *   `opentelemetry/proto/trace/v1/trace.proto`, `common/v1/common.proto`, `resource/v1/resource.proto`);
 * - a Jaeger collector (`POST /api/traces`, `application/x-thrift`) that decodes the Thrift binary `Batch`
 *   with thriftrw and the jaeger-idl `jaeger.thrift` shipped by jaeger-client (exporter-jaeger's sender).
 * Both bind 127.0.0.1 on port 0 and normalise spans to one shape for assertions.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import protobuf from 'protobufjs';

/** A span as either backend received it. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** 'server' | 'client' | other. */
  kind: string;
  serviceName: string;
  /** Tags / attributes, values as received (strings for meshtel's Envoy tags). */
  tags: Record<string, string | number | boolean>;
}

/** A running receiver. */
export interface TraceReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Raw request count (export calls). */
  readonly requests: () => number;
  /** Resolve once at least `n` spans arrived (rejects after `timeoutMs`). */
  waitForSpans(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

const OTLP_PROTO = `
syntax = "proto3";
package otlp;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  enum SpanKind {
    SPAN_KIND_UNSPECIFIED = 0;
    SPAN_KIND_INTERNAL = 1;
    SPAN_KIND_SERVER = 2;
    SPAN_KIND_CLIENT = 3;
    SPAN_KIND_PRODUCER = 4;
    SPAN_KIND_CONSUMER = 5;
  }
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  Status status = 15;
}
`;

const ExportTraceServiceRequest = protobuf.parse(OTLP_PROTO, { keepCase: true }).root.lookupType('otlp.ExportTraceServiceRequest');

interface PbAnyValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: string;
  double_value?: number;
}
interface PbKeyValue {
  key: string;
  value?: PbAnyValue;
}
interface PbSpan {
  trace_id: Buffer;
  span_id: Buffer;
  parent_span_id?: Buffer;
  name: string;
  kind: string;
  attributes?: PbKeyValue[];
}
interface PbRequest {
  resource_spans?: { resource?: { attributes?: PbKeyValue[] }; scope_spans?: { spans?: PbSpan[] }[] }[];
}

function anyValue(v: PbAnyValue | undefined): string | number | boolean {
  if (v === undefined) return '';
  if (v.string_value !== undefined) return v.string_value;
  if (v.bool_value !== undefined) return v.bool_value;
  if (v.int_value !== undefined) return Number(v.int_value);
  if (v.double_value !== undefined) return v.double_value;
  return '';
}

function kvs(list: PbKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

/** Decode one OTLP/protobuf export body. */
export function decodeOtlp(body: Buffer): ReceivedSpan[] {
  const msg = ExportTraceServiceRequest.decode(body);
  const req = ExportTraceServiceRequest.toObject(msg, { longs: String, enums: String, bytes: Buffer, oneofs: false }) as PbRequest;
  const out: ReceivedSpan[] = [];
  for (const rs of req.resource_spans ?? []) {
    const resource = kvs(rs.resource?.attributes);
    for (const ss of rs.scope_spans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: Buffer.from(s.trace_id).toString('hex'),
          spanId: Buffer.from(s.span_id).toString('hex'),
          parentSpanId: s.parent_span_id && s.parent_span_id.length > 0 ? Buffer.from(s.parent_span_id).toString('hex') : '',
          name: s.name,
          kind: String(s.kind).replace('SPAN_KIND_', '').toLowerCase(),
          serviceName: String(resource['service.name'] ?? ''),
          tags: kvs(s.attributes),
        });
      }
    }
  }
  return out;
}

// thriftrw is a devDependency (the version jaeger-client uses); the Jaeger IDL files ship with jaeger-client,
// exporter-jaeger's dependency, so they are found from the exporter's location.
const requireHere = createRequire(import.meta.url);
const requireFromJaegerClient = createRequire(createRequire(requireHere.resolve('@opentelemetry/exporter-jaeger')).resolve('jaeger-client'));
const { Thrift } = requireHere('thriftrw') as {
  Thrift: new (opts: { source: string; allowOptionalArguments: boolean }) => {
    Batch: { rw: { readFrom(buf: Buffer, offset: number): { err: Error | null; value: JaegerBatch } } };
  };
};
const JAEGER_IDL = path.join(path.dirname(requireFromJaegerClient.resolve('jaeger-client')), 'jaeger-idl/thrift/jaeger.thrift');
const jaegerThrift = new Thrift({ source: readFileSync(JAEGER_IDL, 'utf8'), allowOptionalArguments: true });
// The agent IDL (`Agent.emitBatch(1: jaeger.Batch batch)`) includes jaeger.thrift, so it is loaded from its folder.
const { Thrift: ThriftWithIncludes } = requireHere('thriftrw') as {
  Thrift: new (opts: { entryPoint: string; allowOptionalArguments: boolean; allowFilesystemAccess: boolean }) => {
    Agent: { emitBatch: { argumentsMessageRW: { readFrom(buf: Buffer, offset: number): { err: Error | null; value: { body: { batch: JaegerBatch } } } } } };
  };
};
const agentThrift = new ThriftWithIncludes({
  entryPoint: path.join(path.dirname(requireFromJaegerClient.resolve('jaeger-client')), 'thriftrw-idl/agent.thrift'),
  allowOptionalArguments: true,
  allowFilesystemAccess: true,
});

interface JaegerTag {
  key: string;
  vType: string;
  vStr?: string | null;
  vDouble?: number | null;
  vBool?: boolean | null;
  vLong?: Buffer | null;
}
interface JaegerBatch {
  process: { serviceName: string; tags?: JaegerTag[] | null };
  spans: {
    traceIdLow: Buffer;
    traceIdHigh: Buffer;
    spanId: Buffer;
    parentSpanId: Buffer;
    operationName: string;
    tags?: JaegerTag[] | null;
  }[];
}

function jaegerTagValue(t: JaegerTag): string | number | boolean {
  switch (t.vType) {
    case 'STRING':
      return t.vStr ?? '';
    case 'BOOL':
      return t.vBool ?? false;
    case 'DOUBLE':
      return t.vDouble ?? 0;
    case 'LONG':
      return t.vLong ? Number(Buffer.from(t.vLong).readBigInt64BE()) : 0;
    default:
      return '';
  }
}

/** Decode one Thrift binary `Batch` as the Jaeger collector's `/api/traces` receives it. */
export function decodeJaegerBatch(body: Buffer): ReceivedSpan[] {
  const res = jaegerThrift.Batch.rw.readFrom(body, 0);
  if (res.err) throw res.err;
  return batchSpans(res.value);
}

/** Decode one UDP datagram as the Jaeger agent receives it: a binary-protocol `Agent.emitBatch` one-way call. */
export function decodeJaegerAgentDatagram(datagram: Buffer): ReceivedSpan[] {
  const res = agentThrift.Agent.emitBatch.argumentsMessageRW.readFrom(datagram, 0);
  if (res.err) throw res.err;
  return batchSpans(res.value.body.batch);
}

function batchSpans(batch: JaegerBatch): ReceivedSpan[] {
  return batch.spans.map((s) => {
    const tags: Record<string, string | number | boolean> = {};
    for (const t of s.tags ?? []) tags[t.key] = jaegerTagValue(t);
    const parent = Buffer.from(s.parentSpanId).toString('hex');
    return {
      traceId: Buffer.from(s.traceIdHigh).toString('hex') + Buffer.from(s.traceIdLow).toString('hex'),
      spanId: Buffer.from(s.spanId).toString('hex'),
      parentSpanId: /^0*$/.test(parent) ? '' : parent,
      name: s.operationName,
      kind: String(tags['span.kind'] ?? ''),
      serviceName: batch.process.serviceName,
      tags,
    };
  });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The spans a receiver collected, and the callers of `waitForSpans` waiting for more of them. */
interface SpanCollection {
  readonly spans: ReceivedSpan[];
  /** Call after pushing to `spans`: resolves every wait whose count is reached. */
  notify(): void;
  waitForSpans: TraceReceiver['waitForSpans'];
}

function collectSpans(): SpanCollection {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  return {
    spans,
    notify() {
      for (const w of waiters) w();
    },
    waitForSpans(n, timeoutMs = 5000) {
      if (spans.length >= n) return Promise.resolve(spans);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (spans.length >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(spans);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${n} spans, got ${spans.length}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
  };
}

async function startReceiver(
  pathName: string,
  decode: (body: Buffer) => ReceivedSpan[],
  reply: (res: ServerResponse) => void,
): Promise<TraceReceiver> {
  const collected = collectSpans();
  const { spans } = collected;
  let requests = 0;
  const server: Server = createServer((req, res) => {
    void readBody(req).then((body) => {
      requests += 1;
      if (req.method !== 'POST' || req.url !== pathName) {
        res.statusCode = 404;
        res.end();
        return;
      }
      try {
        spans.push(...decode(body));
      } catch (err) {
        res.statusCode = 400;
        res.end(String(err));
        return;
      }
      reply(res);
      collected.notify();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${pathName}`,
    spans,
    requests: () => requests,
    waitForSpans: collected.waitForSpans,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An OTLP/HTTP protobuf receiver on 127.0.0.1:0, path `/v1/traces`. */
export function startOtlpReceiver(): Promise<TraceReceiver> {
  return startReceiver('/v1/traces', decodeOtlp, (res) => {
    // An empty ExportTraceServiceResponse.
    res.setHeader('content-type', 'application/x-protobuf');
    res.end();
  });
}

/** A Jaeger collector on 127.0.0.1:0, path `/api/traces` (Thrift binary over HTTP). */
export function startJaegerCollector(): Promise<TraceReceiver> {
  return startReceiver('/api/traces', decodeJaegerBatch, (res) => {
    res.statusCode = 202;
    res.end();
  });
}

/** A Jaeger agent on UDP 127.0.0.1:0 (the `emitBatch` binary endpoint, 6832 in a real agent). */
export async function startJaegerAgent(): Promise<TraceReceiver & { host: string; port: number }> {
  const collected = collectSpans();
  const { spans } = collected;
  let datagrams = 0;
  const socket = createSocket('udp4');
  socket.on('message', (msg) => {
    datagrams += 1;
    spans.push(...decodeJaegerAgentDatagram(msg));
    collected.notify();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    host: '127.0.0.1',
    port,
    url: `udp://127.0.0.1:${port}`,
    spans,
    requests: () => datagrams,
    waitForSpans: collected.waitForSpans,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * A loopback OTLP/HTTP metrics collector for tests: decodes every protobuf POST to /v1/metrics with protobufjs
 * (schema below: opentelemetry-proto metrics/v1 and collector/metrics/v1 field numbers, as data).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';

const PROTO = `
syntax = "proto3";
package otlp;
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message InstrumentationScope { string name = 1; string version = 2; }
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
message Metric {
  string name = 1; string description = 2; string unit = 3;
  Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; ExponentialHistogram exponential_histogram = 10;
}
enum AggregationTemporality { AGGREGATION_TEMPORALITY_UNSPECIFIED = 0; AGGREGATION_TEMPORALITY_DELTA = 1; AGGREGATION_TEMPORALITY_CUMULATIVE = 2; }
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2; }
message ExponentialHistogram { repeated ExponentialHistogramDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2; }
message NumberDataPoint { repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; double as_double = 4; sfixed64 as_int = 6; }
message HistogramDataPoint {
  repeated KeyValue attributes = 9; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; fixed64 count = 4; double sum = 5;
  repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7;
}
message Buckets { sint32 offset = 1; repeated uint64 bucket_counts = 2; }
message ExponentialHistogramDataPoint {
  repeated KeyValue attributes = 1; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3; fixed64 count = 4; double sum = 5;
  sint32 scale = 6; fixed64 zero_count = 7; Buckets positive = 8; Buckets negative = 9;
}
`;
const Request = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('otlp.ExportMetricsServiceRequest');

export interface Point {
  attributes?: { key: string; value: { string_value?: string } }[];
  start_time_unix_nano: string;
  time_unix_nano: string;
  as_double?: number;
  count?: string;
  sum?: number;
  bucket_counts?: string[];
  explicit_bounds?: number[];
  scale?: number;
  zero_count?: string;
  positive?: { offset?: number; bucket_counts?: string[] };
}
export interface Metric {
  name: string;
  unit?: string;
  sum?: { data_points: Point[]; aggregation_temporality: string; is_monotonic: boolean };
  gauge?: { data_points: Point[] };
  histogram?: { data_points: Point[]; aggregation_temporality: string };
  exponential_histogram?: { data_points: Point[]; aggregation_temporality: string };
}
export interface Received {
  resource: Record<string, string>;
  metrics: Metric[];
}

/** A loopback OTLP/HTTP collector: decodes every POST to /v1/metrics (or answers `status`). */
export async function collector(status = 200): Promise<{ url: string; requests: Received[]; close(): Promise<void> }> {
  const requests: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/metrics' && req.headers['content-type'] === 'application/x-protobuf') {
        const obj = Request.toObject(Request.decode(Buffer.concat(chunks)), { longs: String, enums: String, defaults: false }) as {
          resource_metrics?: { resource?: { attributes?: { key: string; value: { string_value?: string } }[] }; scope_metrics?: { metrics?: Metric[] }[] }[];
        };
        for (const rm of obj.resource_metrics ?? []) {
          const resource: Record<string, string> = {};
          for (const kv of rm.resource?.attributes ?? []) resource[kv.key] = kv.value.string_value ?? '';
          requests.push({ resource, metrics: (rm.scope_metrics ?? []).flatMap((sm) => sm.metrics ?? []) });
        }
      }
      res.statusCode = status;
      res.setHeader('content-type', 'application/x-protobuf');
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

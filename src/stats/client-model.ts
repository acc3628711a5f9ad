/**
 * Prometheus's `client_model` schema (`io/prometheus/client/metrics.proto`, package
 * `io.prometheus.client`), written here as a protobufjs JSON descriptor and loaded once. Field numbers and
 * types are the wire contract (facts of prometheus/client_model v0.6; v0.3.0, what Prometheus 2.42 reads,
 * is the same without `created_timestamp`, `Histogram.exemplars` and `MetricFamily.unit`, which an older
 * reader skips as unknown fields).
 *
 * Why a descriptor and not a generated module: the schema is small, protobufjs builds its encoder and
 * decoder from it at first use, and there is no build step to keep in sync.
 */
import protobuf from 'protobufjs';

/** `MetricType` enum values. */
export const METRIC_TYPE = { COUNTER: 0, GAUGE: 1, SUMMARY: 2, UNTYPED: 3, HISTOGRAM: 4, GAUGE_HISTOGRAM: 5 } as const;

const packed = { packed: true };

/** The descriptor (protobufjs JSON form). */
export const CLIENT_MODEL_DESCRIPTOR = {
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Timestamp: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
          },
        },
      },
    },
    io: {
      nested: {
        prometheus: {
          nested: {
            client: {
              nested: {
                LabelPair: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
                MetricType: { values: METRIC_TYPE },
                Gauge: { fields: { value: { type: 'double', id: 1 } } },
                Counter: {
                  fields: {
                    value: { type: 'double', id: 1 },
                    exemplar: { type: 'Exemplar', id: 2 },
                    createdTimestamp: { type: 'google.protobuf.Timestamp', id: 3 },
                  },
                },
                Quantile: { fields: { quantile: { type: 'double', id: 1 }, value: { type: 'double', id: 2 } } },
                Summary: {
                  fields: {
                    sampleCount: { type: 'uint64', id: 1 },
                    sampleSum: { type: 'double', id: 2 },
                    quantile: { rule: 'repeated', type: 'Quantile', id: 3 },
                    createdTimestamp: { type: 'google.protobuf.Timestamp', id: 4 },
                  },
                },
                Untyped: { fields: { value: { type: 'double', id: 1 } } },
                Histogram: {
                  fields: {
                    sampleCount: { type: 'uint64', id: 1 },
                    sampleCountFloat: { type: 'double', id: 4 },
                    sampleSum: { type: 'double', id: 2 },
                    bucket: { rule: 'repeated', type: 'Bucket', id: 3 },
                    createdTimestamp: { type: 'google.protobuf.Timestamp', id: 15 },
                    schema: { type: 'sint32', id: 5 },
                    zeroThreshold: { type: 'double', id: 6 },
                    zeroCount: { type: 'uint64', id: 7 },
                    zeroCountFloat: { type: 'double', id: 8 },
                    negativeSpan: { rule: 'repeated', type: 'BucketSpan', id: 9 },
                    negativeDelta: { rule: 'repeated', type: 'sint64', id: 10, options: packed },
                    negativeCount: { rule: 'repeated', type: 'double', id: 11, options: packed },
                    positiveSpan: { rule: 'repeated', type: 'BucketSpan', id: 12 },
                    positiveDelta: { rule: 'repeated', type: 'sint64', id: 13, options: packed },
                    positiveCount: { rule: 'repeated', type: 'double', id: 14, options: packed },
                    exemplars: { rule: 'repeated', type: 'Exemplar', id: 16 },
                  },
                },
                Bucket: {
                  fields: {
                    cumulativeCount: { type: 'uint64', id: 1 },
                    cumulativeCountFloat: { type: 'double', id: 4 },
                    upperBound: { type: 'double', id: 2 },
                    exemplar: { type: 'Exemplar', id: 3 },
                  },
                },
                BucketSpan: { fields: { offset: { type: 'sint32', id: 1 }, length: { type: 'uint32', id: 2 } } },
                Exemplar: {
                  fields: {
                    label: { rule: 'repeated', type: 'LabelPair', id: 1 },
                    value: { type: 'double', id: 2 },
                    timestamp: { type: 'google.protobuf.Timestamp', id: 3 },
                  },
                },
                Metric: {
                  fields: {
                    label: { rule: 'repeated', type: 'LabelPair', id: 1 },
                    gauge: { type: 'Gauge', id: 2 },
                    counter: { type: 'Counter', id: 3 },
                    summary: { type: 'Summary', id: 4 },
                    untyped: { type: 'Untyped', id: 5 },
                    histogram: { type: 'Histogram', id: 7 },
                    timestampMs: { type: 'int64', id: 6 },
                  },
                },
                MetricFamily: {
                  fields: {
                    name: { type: 'string', id: 1 },
                    help: { type: 'string', id: 2 },
                    type: { type: 'MetricType', id: 3 },
                    metric: { rule: 'repeated', type: 'Metric', id: 4 },
                    unit: { type: 'string', id: 5 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

/** `LabelPair`. */
export interface PbLabelPair {
  name: string;
  value: string;
}
/** `google.protobuf.Timestamp`. */
export interface PbTimestamp {
  seconds: number;
  nanos: number;
}
/** `Exemplar`. */
export interface PbExemplar {
  label: PbLabelPair[];
  value: number;
  timestamp?: PbTimestamp;
}
/** `Bucket` (classic, cumulative). */
export interface PbBucket {
  cumulativeCount: number;
  upperBound: number;
  cumulativeCountFloat?: number;
  exemplar?: PbExemplar;
}
/** `BucketSpan`. */
export interface PbBucketSpan {
  offset: number;
  length: number;
}
/** `Histogram` (classic and native parts). */
export interface PbHistogram {
  sampleCount?: number;
  sampleCountFloat?: number;
  sampleSum?: number;
  bucket?: PbBucket[];
  schema?: number;
  zeroThreshold?: number;
  zeroCount?: number;
  zeroCountFloat?: number;
  negativeSpan?: PbBucketSpan[];
  negativeDelta?: number[];
  negativeCount?: number[];
  positiveSpan?: PbBucketSpan[];
  positiveDelta?: number[];
  positiveCount?: number[];
  exemplars?: PbExemplar[];
}
/** `Metric`: one label set of a family. */
export interface PbMetric {
  label: PbLabelPair[];
  gauge?: { value: number };
  counter?: { value: number; exemplar?: PbExemplar };
  summary?: { sampleCount: number; sampleSum: number; quantile: { quantile: number; value: number }[] };
  untyped?: { value: number };
  histogram?: PbHistogram;
  timestampMs?: number;
}
/** `MetricFamily`. */
export interface PbMetricFamily {
  name: string;
  help?: string;
  type: number;
  metric: PbMetric[];
  unit?: string;
}

/** The reflected types, built on first use. */
export interface ClientModel {
  readonly MetricFamily: protobuf.Type;
  readonly Metric: protobuf.Type;
}

let model: ClientModel | undefined;

/**
 * The descriptor with `edition: 'proto2'` on every message: protobufjs reads JSON descriptors as proto3
 * (implicit presence: a 0 is neither written nor read back), while client_model is proto2, where a set 0
 * (a COUNTER type, schema 0, a zero count) is on the wire and present when read.
 */
function asProto2(node: unknown): unknown {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === 'fields' || k === 'values' ? v : asProto2(v);
  if ('fields' in node) out.edition = 'proto2';
  return out;
}

/** The `client_model` types (loaded once per process). */
export function clientModel(): ClientModel {
  if (model === undefined) {
    const root = protobuf.Root.fromJSON(asProto2(CLIENT_MODEL_DESCRIPTOR) as protobuf.INamespace);
    model = {
      MetricFamily: root.lookupType('io.prometheus.client.MetricFamily'),
      Metric: root.lookupType('io.prometheus.client.Metric'),
    };
  }
  return model;
}

/** Bytes of `n` as a protobuf varint (the writer sizes its messages with it, the series budget charges with it). */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/**
 * Per-request cost of the tracing stage: startSpan (x-request-id, Envoy decision, parent extraction) + inject
 * + end, with tracing off (createNoopTracing), on but unsampled, and sampled into the BatchSpanProcessor with
 * an exporter that discards (so the cost measured is ours and the SDK's, not a backend's).
 * Ratios are against the noop tracer measured in the same run. A last figure is the OTLP/protobuf encoding of a
 * full 512-span batch of our spans, per span: not on the request path, but it runs on the event loop at export
 * time (opentelemetry-js #6221 was a 13x regression there).
 */
import { createRequire } from 'node:module';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { Bench } from 'tinybench';
import { METRIC_SPANS_DROPPED, METRIC_SPANS_EXPORTED } from '../src/tracing/span-metrics.js';
import { createNoopTracing, createTracing } from '../src/tracing/tracer.js';
import type { HeaderBag, HopTracer, SpanEndInfo, SpanStartInfo } from '../src/tracing/types.js';
import { PRODUCTPAGE as local, PRODUCTPAGE_NODE_ID as nodeId } from './support/fixtures.js';
import { median } from './support/measure.js';

const start: SpanStartInfo = {
  kind: 'client',
  method: 'GET',
  url: 'http://reviews:9080/reviews/0',
  authority: 'reviews:9080',
  protocol: 'HTTP/1.1',
  port: 9080,
  serviceHost: 'reviews.default.svc.cluster.local',
};
const end: SpanEndInfo = {
  statusCode: 200,
  responseFlags: '-',
  upstreamCluster: 'outbound|9080||reviews.default.svc.cluster.local',
  requestSize: 0,
  responseSize: 295,
};

/** Accepts every batch and drops it. */
const discard: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: () => Promise.resolve(),
};

const registry = new Registry();
const noop = createNoopTracing();
const unsampled = createTracing({ local, nodeId, exporter: discard, samplingPercent: 0, registry });
const sampled = createTracing({ local, nodeId, exporter: discard, samplingPercent: 100, registry });

const PARENT_SAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const PARENT_UNSAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00';

/**
 * One request through a hop: fresh incoming headers as a server would parse them, the outgoing headers built by
 * copying them one by one (as src/sidecar/http-proxy.ts does), inject, end. Not `{ ...incoming }`: on Node 20,
 * adding properties to an object made by spread costs microseconds each (V8 object-clone maps), which would
 * swamp what is measured here.
 */
function request(t: HopTracer, traceparent?: string): void {
  const incoming: HeaderBag = { host: 'reviews:9080', 'user-agent': 'python-requests/2.31', accept: '*/*' };
  if (traceparent !== undefined) incoming.traceparent = traceparent;
  const span = t.startSpan(incoming, start);
  const outgoing: HeaderBag = {};
  for (const name in incoming) outgoing[name] = incoming[name];
  span.inject(outgoing);
  span.end(end);
}

// Tasks are async so microtasks run between requests, as between requests in a server: the BatchSpanProcessor
// finishes a batch in a microtask, and a purely synchronous loop would never let it, filling its queue and
// measuring dropped spans instead of exported ones. The same await is paid by every task, baseline included.
const tasks: [string, () => Promise<void>][] = [
  ['off (createNoopTracing)', async () => request(noop)],
  ['on, unsampled, new trace (0 %)', async () => request(unsampled)],
  ['on, unsampled, traceparent -00 in', async () => request(unsampled, PARENT_UNSAMPLED)],
  ['on, sampled, new trace (100 %)', async () => request(sampled)],
  ['on, sampled, traceparent -01 in', async () => request(sampled, PARENT_SAMPLED)],
];

// Several short rounds, each measuring every task, and the median per task and of the per-round ratios: on a
// shared machine the load moves during a run, and a ratio taken within one round is what survives that.
const ROUNDS = 7;
const means: number[][] = tasks.map(() => []);
const ratios: number[][] = tasks.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  const bench = new Bench({ time: 300, warmupTime: 100 });
  for (const [name, fn] of tasks) bench.add(name, fn);
  await bench.run();
  const ns = bench.tasks.map((t) => ((t.result as { latency?: { mean: number } } | undefined)?.latency?.mean ?? Number.NaN) * 1e6);
  ns.forEach((v, i) => {
    means[i]!.push(v);
    ratios[i]!.push(v / ns[0]!);
  });
}
console.log(`tracing: per-request startSpan + inject + end, median of ${ROUNDS} rounds (node ${process.version})`);
tasks.forEach(([name], i) => {
  const r = ratios[i]!;
  console.log(
    `${name.padEnd(36)} ${median(means[i]!).toFixed(0).padStart(7)} ns/req  ${median(r).toFixed(2).padStart(6)}x off  (rounds ${Math.min(...r).toFixed(1)}–${Math.max(...r).toFixed(1)}x)`,
  );
});
await Promise.all([unsampled.shutdown(), sampled.shutdown()]);
// OTLP encoding cost of a default-size batch (512) of meshtel spans, per span, with the serializer the OTLP
// exporter itself uses (@opentelemetry/otlp-transformer, a devDependency pinned to the exporter's release).
const { ProtobufTraceSerializer } = createRequire(import.meta.url)('@opentelemetry/otlp-transformer') as {
  ProtobufTraceSerializer: { serializeRequest(spans: ReadableSpan[]): Uint8Array | undefined };
};
const batch: ReadableSpan[] = [];
const collector = createTracing({
  local,
  nodeId,
  exporter: { export: (spans, done) => (batch.push(...spans), done({ code: 0 })), shutdown: () => Promise.resolve() },
  samplingPercent: 100,
});
for (let i = 0; i < 512; i++) request(collector);
await collector.shutdown();
let bytes = 0;
const encode = new Bench({ time: 1500, warmupTime: 200 }).add('encode 512', () => {
  bytes = ProtobufTraceSerializer.serializeRequest(batch)?.length ?? 0;
});
await encode.run();
const perSpanNs = (((encode.tasks[0]!.result as { latency?: { mean: number } } | undefined)?.latency?.mean ?? Number.NaN) * 1e6) / batch.length;
console.log(`OTLP protobuf encode (export time, off the request path): ${perSpanNs.toFixed(0)} ns/span, ${(bytes / batch.length).toFixed(0)} B/span`);

const exported = (await registry.getSingleMetric(METRIC_SPANS_EXPORTED)!.get()).values[0]?.value ?? 0;
const dropped = (await registry.getSingleMetric(METRIC_SPANS_DROPPED)!.get()).values.reduce((a, v) => a + v.value, 0);
console.log(`sampled spans exported ${exported}, dropped ${dropped}`);

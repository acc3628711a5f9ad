/**
 * Build the span exporter named by the configuration. Every exporter runs behind the BatchSpanProcessor,
 * so export is asynchronous and never awaited on the request path.
 *
 * - `otlp` (default): OTLP over HTTP/protobuf, @opentelemetry/exporter-trace-otlp-proto, to Jaeger's OTLP
 *   port 4318 `/v1/traces`. Jaeger ingests OTLP natively and the OTel spec deprecated the Jaeger exporter.
 * - `jaeger`: @opentelemetry/exporter-jaeger for Jaeger deployments older than OTLP ingestion: Thrift over
 *   HTTP to a collector (`/api/traces`) when an endpoint is set, else Thrift compact over UDP to an agent.
 *   Deprecated upstream and built against an older SDK release (its own nested @opentelemetry/core), so it is
 *   imported only when selected: a process that exports OTLP never loads it or jaeger-client.
 * - `console`: the SDK's ConsoleSpanExporter (debugging).
 * - `none`: no exporter; spans are still sampled, tagged and propagated.
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ConsoleSpanExporter } from '@opentelemetry/sdk-trace';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { settleWithin } from '../core/deadline.js';
import type { TracingConfig } from './config.js';

/** ExportResultCode.FAILED (@opentelemetry/core), spelled out to keep the dependency surface small. */
const EXPORT_FAILED = 1;

/**
 * Guarantee that every `export` call reports back exactly once within `deadlineMs`.
 *
 * The BatchSpanProcessor gives up on an export after `exportTimeoutMillis` but only counts the batch when the
 * exporter calls back. The Jaeger HTTP sender (jaeger-client `http_sender.js`) sets a socket timeout without
 * aborting, so against a collector that accepts and never answers it never calls back: those spans would
 * vanish from meshtel_spans_dropped_total. Reporting FAILED at the deadline (and ignoring a late answer)
 * keeps the accounting exact for every exporter.
 */
export function withExportDeadline(exporter: SpanExporter, deadlineMs: number): SpanExporter {
  const wrapped: SpanExporter = {
    export(spans: ReadableSpan[], done) {
      settleWithin(deadlineMs, (answer) => exporter.export(spans, answer), (error) => ({ code: EXPORT_FAILED, error }), done, `span export timed out after ${deadlineMs} ms`);
    },
    shutdown: () => exporter.shutdown(),
  };
  if (exporter.forceFlush) wrapped.forceFlush = () => exporter.forceFlush!();
  return wrapped;
}

/**
 * An exporter whose implementation is imported when it is created, so `createTracing` stays synchronous and
 * the module is loaded only when selected. A failed import fails every export (counted as export_failed).
 */
export function lazyExporter(load: () => Promise<SpanExporter>): SpanExporter {
  // Started now (the exporter was selected), so it is usually loaded before the first batch is due.
  const loaded = load();
  let impl: SpanExporter | undefined;
  loaded.then(
    (e) => (impl = e),
    () => {},
  );
  let shutDown = false;
  return {
    export(spans, done) {
      // Some exporters (exporter-jaeger) report SUCCESS for spans exported after shutdown; an export that was
      // still waiting for the import when shutdown began has not been sent, so it is a failure.
      const fail = (err: unknown): void => done({ code: EXPORT_FAILED, error: err instanceof Error ? err : new Error(String(err)) });
      if (shutDown) return fail(new Error('exporter shut down'));
      // Once loaded, call through synchronously, in the processor's context, exactly as an eager exporter.
      if (impl !== undefined) return impl.export(spans, done);
      loaded.then((e) => (shutDown ? fail(new Error('exporter shut down')) : e.export(spans, done)), fail);
    },
    shutdown: () => {
      shutDown = true;
      return loaded.then(
        (e) => e.shutdown(),
        () => undefined,
      );
    },
    forceFlush: () =>
      loaded.then(
        (e) => e.forceFlush?.(),
        () => undefined,
      ),
  };
}

/** The exporter for `config`, or `null` for `none`. */
export function createSpanExporter(config: TracingConfig): SpanExporter | null {
  const e = config.exporter;
  if (typeof e !== 'string') return e;
  switch (e) {
    case 'otlp':
      // Without a URL the exporter resolves OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT itself (default localhost:4318),
      // and always reads the headers, timeout, compression and certificate variables.
      return new OTLPTraceExporter(config.endpoint !== '' ? { url: config.endpoint } : {});
    case 'jaeger':
      // exporter-jaeger is built against sdk-trace 2.11 (no 2.12 release exists); its ReadableSpan/SpanExporter
      // shapes are the same structural types as 2.12's, so the cast only bridges the two package copies. It reads
      // OTEL_EXPORTER_JAEGER_ENDPOINT / _AGENT_HOST / _AGENT_PORT / _USER / _PASSWORD itself.
      return lazyExporter(async () => {
        const { JaegerExporter } = await import('@opentelemetry/exporter-jaeger');
        return new JaegerExporter(config.endpoint !== '' ? { endpoint: config.endpoint } : {}) as unknown as SpanExporter;
      });
    case 'console':
      return new ConsoleSpanExporter();
    case 'none':
      return null;
  }
}

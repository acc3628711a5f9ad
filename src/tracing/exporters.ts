/**
 * Build the span exporter named by the configuration. Every exporter runs behind the BatchSpanProcessor,
 * so export is asynchronous and never awaited on the request path.
 *
 * - `otlp` (default): OTLP over HTTP/protobuf, @opentelemetry/exporter-trace-otlp-proto, to Jaeger's OTLP
 *   port 4318 `/v1/traces`. Jaeger ingests OTLP natively and the OTel spec deprecated the Jaeger exporter.
 * - `jaeger`: @opentelemetry/exporter-jaeger for Jaeger deployments older than OTLP ingestion: Thrift over
 *   HTTP to a collector (`/api/traces`) when an endpoint is set, else Thrift compact over UDP to an agent.
 * - `console`: the SDK's ConsoleSpanExporter (debugging).
 * - `none`: no exporter; spans are still sampled, tagged and propagated.
 */
import { JaegerExporter } from '@opentelemetry/exporter-jaeger';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ConsoleSpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
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
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        done({ code: EXPORT_FAILED, error: new Error(`span export timed out after ${deadlineMs} ms`) });
      }, deadlineMs);
      timer.unref();
      try {
        exporter.export(spans, (result) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          done(result);
        });
      } catch (err) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        done({ code: EXPORT_FAILED, error: err instanceof Error ? err : new Error(String(err)) });
      }
    },
    shutdown: () => exporter.shutdown(),
  };
  if (exporter.forceFlush) wrapped.forceFlush = () => exporter.forceFlush!();
  return wrapped;
}

/** The exporter for `config`, or `null` for `none`. */
export function createSpanExporter(config: TracingConfig): SpanExporter | null {
  const e = config.exporter;
  if (typeof e !== 'string') return e;
  switch (e) {
    case 'otlp':
      return new OTLPTraceExporter({
        url: config.endpoint,
        headers: { ...config.otlpHeaders },
        timeoutMillis: config.otlpTimeoutMillis,
      });
    case 'jaeger':
      // exporter-jaeger is built against sdk-trace 2.11; its ReadableSpan/SpanExporter shapes are the same
      // structural types as 2.12's, so the cast only bridges the two package copies.
      return new JaegerExporter(
        config.endpoint !== ''
          ? { endpoint: config.endpoint }
          : { host: config.jaegerAgentHost, port: config.jaegerAgentPort },
      ) as unknown as SpanExporter;
    case 'console':
      return new ConsoleSpanExporter();
    case 'none':
      return null;
  }
}

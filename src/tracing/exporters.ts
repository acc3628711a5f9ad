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
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from './config.js';

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

/** A SpanExporter that keeps every exported span (the SDK's InMemorySpanExporter forgets them on shutdown). */
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface RecordingExporter extends SpanExporter {
  readonly spans: ReadableSpan[];
}

export function createRecordingExporter(): RecordingExporter {
  const spans: ReadableSpan[] = [];
  return {
    spans,
    export(batch, done) {
      spans.push(...batch);
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
}

/**
 * A start-up check of the demo's `--otlp-endpoint`: without it a wrong or unreachable endpoint was silent (spans
 * were dropped batch after batch in the background). One empty OTLP/HTTP export, as the exporter would send:
 * an OTLP receiver (Jaeger, the OpenTelemetry Collector) accepts an empty ExportTraceServiceRequest with 2xx.
 */
import { request } from 'undici';

/** The traces URL the OTLP exporter posts to: a bare origin gets `/v1/traces`, as src/tracing/config.ts does. */
export function otlpTracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  return url.pathname === '/' || url.pathname === '' ? `${url.origin}/v1/traces` : url.href;
}

/**
 * Post one empty export to `endpoint` within `timeoutMs`. Resolves undefined when it answers 2xx, else a sentence
 * saying what is wrong (unreachable, or what answered instead of an OTLP receiver). Never rejects.
 */
export async function probeOtlpEndpoint(endpoint: string, timeoutMs = 2000): Promise<string | undefined> {
  const url = otlpTracesUrl(endpoint);
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: Buffer.alloc(0),
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode >= 200 && res.statusCode < 300) return undefined;
    return `${url} answered HTTP ${res.statusCode}: not an OTLP/HTTP traces receiver (Jaeger's is port 4318, path /v1/traces)`;
  } catch (err) {
    const e = err as Error & { code?: string };
    const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : (e.code ?? e.message);
    return `${url} is unreachable (${why})`;
  }
}

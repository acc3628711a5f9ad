import { describe, expect, it } from 'vitest';
import {
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
  contentTypeOf,
  formatOfContentType,
  negotiateFormat,
} from '../../src/stats/media-types.js';

// What Prometheus 2.42 sends (scrape/scrape.go scrapeAcceptHeader / scrapeAcceptHeaderWithProtobuf).
const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const PROMETHEUS_NATIVE_ACCEPT =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

describe('negotiateFormat()', () => {
  it.each([
    [undefined, 'text'],
    ['', 'text'],
    ['*/*', 'text'],
    [PROMETHEUS_ACCEPT, 'openmetrics'],
    [PROMETHEUS_NATIVE_ACCEPT, 'protobuf'],
    [['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4', 'text/plain;q=0.5'], 'text'],
    ['application/vnd.google.protobuf; proto="io.prometheus.client.MetricFamily"; encoding="delimited"', 'protobuf'],
    // The text and compact-text protobuf encodings, or another message type, are not served.
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text', 'text'],
    ['application/vnd.google.protobuf;proto=other.Message;encoding=delimited', 'text'],
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0,application/openmetrics-text;q=0.1', 'openmetrics'],
    // Equal quality: the richer format.
    ['text/plain;q=0.5,application/openmetrics-text;q=0.5', 'openmetrics'],
    ['application/openmetrics-text;q=0.2,text/plain;q=0.9', 'text'],
    ['application/openmetrics-text;version=2.0.0', 'text'],
    ['application/openmetrics-text;q=1.5', 'text'],
    ['garbage;;;', 'text'],
  ] as const)('%j → %s', (accept, format) => {
    expect(negotiateFormat(accept as string | string[] | undefined)).toBe(format);
  });
});

describe('contentTypeOf() / formatOfContentType()', () => {
  it('round-trips every format through its content type', () => {
    for (const f of ['text', 'openmetrics', 'protobuf'] as const) expect(formatOfContentType(contentTypeOf(f))).toBe(f);
    expect(contentTypeOf('text')).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    expect(contentTypeOf('openmetrics')).toBe(OPENMETRICS_CONTENT_TYPE);
    expect(PROTOBUF_CONTENT_TYPE).toBe('application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited');
  });

  it.each([
    ['Application/OpenMetrics-Text', 'openmetrics'],
    ['text/plain; version=0.0.4', 'text'],
    ['application/json', 'text'],
    [undefined, 'text'],
    ['application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text', undefined],
  ] as const)('%s is %s', (ct, format) => {
    expect(formatOfContentType(ct)).toBe(format);
  });
});

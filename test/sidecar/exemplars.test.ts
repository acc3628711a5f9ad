import { afterEach, describe, expect, it } from 'vitest';
import { formatNodeId } from '../../src/metadata/node-id.js';
import { createTracing } from '../../src/tracing/tracer.js';
import { eventually, get, httpApp, send, sidecar, workload } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0';

describe('Sidecar exemplars', () => {
  it('links istio_requests_total and the duration histogram to the sampled trace in OpenMetrics output only', async () => {
    const app = await httpApp();
    cleanups.push(app.close);
    const metadata = workload('reviews', 'bookinfo-reviews');
    const tracer = createTracing({ local: metadata, nodeId: formatNodeId(metadata), exporter: 'none', samplingPercent: 100 });
    const sc = await sidecar({ metadata, app: { port: app.port }, tracer });
    cleanups.push(sc.close);

    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await send(sc.ports.inbound, { host: 'reviews:9080', path: '/', headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(res.status).toBe(200);

    await eventually(async () => {
      const om = await get(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`, { accept: OPENMETRICS });
      expect(om.type).toContain('application/openmetrics-text');
      const counter = om.body.split('\n').find((l) => l.startsWith('istio_requests_total{'));
      expect(counter).toMatch(new RegExp(`\\} 1 # \\{trace_id="${traceId}"\\} 1 \\d+\\.\\d{3}$`));
      const buckets = om.body.split('\n').filter((l) => l.startsWith('istio_request_duration_milliseconds_bucket{'));
      expect(buckets.some((l) => l.includes(`# {trace_id="${traceId}"}`))).toBe(true);
      expect(om.body.endsWith('# EOF\n')).toBe(true);
    });
    // Prometheus text 0.0.4 has no exemplars.
    const text = await get(`http://127.0.0.1:${sc.ports.prometheus}/stats/prometheus`);
    expect(text.body).not.toContain('trace_id');
  });
});

/**
 * The demo mesh (src/demo) as the e2e suite sees it: the merged-metrics endpoints to scrape with the target
 * labels a PodMonitor would add, what the load generator sent, and the faults it injects.
 */
import http from 'node:http';
import type { ScrapeTarget } from './prometheus.js';
import { httpApp, reviewsMesh, sidecar, workload } from '../../sidecar/helpers.js';

/** A fault the demo injects: which requests, and the share that fails with a 5xx. */
export interface InjectedFault {
  name: string;
  /** PromQL label matchers selecting the requests to the faulty workload (one reporter). */
  selector: string;
  /** Share of those requests answered with a 5xx. */
  errorShare: number;
}

/** A running demo mesh. */
export interface DemoMesh {
  /** Every sidecar's merged endpoint (`:15020/stats/prometheus`), labelled with `namespace` and `pod`. */
  readonly targets: readonly ScrapeTarget[];
  /** Preferred values for dashboard variables (e.g. the service that receives the faults). */
  readonly prefer: Readonly<Record<string, string>>;
  /** Why a query may legitimately return no data in this mesh (an event that never happens), else undefined. */
  mayBeEmpty(expr: string): string | undefined;
  /** The client-side count Prometheus should agree with, and the load generator's own count. */
  readonly loadCheck: { promql: string };
  sentRequests(): { total: number; at: number };
  /** Configured request rate (requests/s). */
  readonly requestRate: number;
  readonly faults: readonly InjectedFault[];
  close(): Promise<void>;
}

/** TEMPORARY (until src/demo lands): productpage → reviews through two real sidecars, 20% 503s. */
export async function startDemoMesh(): Promise<DemoMesh> {
  let n = 0;
  const app = await httpApp((_req, res) => {
    n += 1;
    res.statusCode = n % 5 === 0 ? 503 : 200;
    res.end('ok');
  });
  const server = await sidecar({ metadata: workload('reviews', 'bookinfo-reviews'), app: { port: app.port }, mesh: { services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] } });
  const client = await sidecar({ metadata: workload('productpage', 'bookinfo-productpage'), mesh: reviewsMesh(server.ports.inbound) });
  let sent = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const timer = setInterval(() => {
    const req = http.request({ host: '127.0.0.1', port: client.ports.outbound, path: '/reviews/1', headers: { host: 'reviews:9080' }, agent }, (res) => {
      res.resume();
      res.on('end', () => (sent += 1));
    });
    req.on('error', () => undefined);
    req.end();
  }, 20);
  return {
    targets: [
      { address: `127.0.0.1:${client.ports.status}`, path: '/stats/prometheus', labels: { namespace: 'default', pod: 'productpage-v1-a' } },
      { address: `127.0.0.1:${server.ports.status}`, path: '/stats/prometheus', labels: { namespace: 'default', pod: 'reviews-v1-a' } },
    ],
    prefer: {},
    mayBeEmpty: (expr) => (/tcp|grpc|messages/.test(expr) ? 'no TCP/gRPC in the fallback' : /meshtel_/.test(expr) ? 'rare meshtel event' : undefined),
    loadCheck: { promql: 'sum(istio_requests_total{reporter="source", source_workload="productpage-v1"})' },
    sentRequests: () => ({ total: sent, at: Date.now() }),
    requestRate: 50,
    faults: [{ name: 'reviews-v1 20% 503', selector: 'reporter="destination", destination_workload="reviews-v1"', errorShare: 0.2 }],
    close: async () => {
      clearInterval(timer);
      agent.destroy();
      await client.close();
      await server.close();
      await app.close();
    },
  };
}

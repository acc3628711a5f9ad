/**
 * The demo mesh (src/demo) as the e2e suite sees it: the merged-metrics endpoints to scrape with the target
 * labels a PodMonitor would add, what the load generator sent, and the faults it injects.
 */
import { startDemo } from '../../../src/demo/demo.js';
import type { ScrapeTarget } from './prometheus.js';

/** A fault the demo injects (or a healthy workload, share 0): which requests, and the share that fails with a 5xx. */
export interface InjectedFault {
  name: string;
  /** PromQL label matchers selecting the requests to the faulty workload (one reporter). */
  selector: string;
  /** Share of those requests answered with a 5xx (0 for a healthy workload). */
  errorShare: number;
  /** The destination workload and its namespace. */
  workload: string;
  namespace: string;
}

/** A running demo mesh. */
export interface DemoMesh {
  /** Every sidecar's merged endpoint (`:15020/stats/prometheus`), labelled with `namespace` and `pod`. */
  readonly targets: readonly ScrapeTarget[];
  /** The application namespace (Kiali's namespace graph is drawn for it). */
  readonly namespace: string;
  /** Preferred values for dashboard variables (e.g. the service that receives the faults). */
  readonly prefer: Readonly<Record<string, string>>;
  /** Why a query may legitimately return no data in this mesh (an event that never happens), else undefined. */
  mayBeEmpty(expr: string): string | undefined;
  /** Label matchers of the istio_requests_total series that count every request of the load generator. */
  readonly loadCheck: { selector: string };
  sentRequests(): { total: number; at: number };
  /** Configured request rate (requests/s). */
  readonly requestRate: number;
  readonly faults: readonly InjectedFault[];
  close(): Promise<void>;
}

/** Requests per second the e2e load generator sends to the gateway. */
const RATE = 20;
/** Share of reviews-v2 requests the demo answers with 500. */
const FAIL_RATE = 0.2;

/**
 * Queries that legitimately return nothing in a healthy demo, with the reason. Labelled counters get their first
 * series at the first event (overflowed, expired or rejected series, failed app scrapes, unknown peers: every demo
 * peer runs a sidecar or the embedding); the demo runs without a trace exporter; its TCP client (ratings →
 * mongodb) keeps its connection open, so no connection closes while the suite runs.
 */
const MAY_BE_EMPTY: readonly [RegExp, string][] = [
  [
    /meshtel_series_overflow_total|meshtel_series_expired_total|meshtel_label_value_rejected_total|istio_agent_scrape_failures_total|meshtel_peer_unknown_total/,
    'counts an event that does not happen in a healthy demo',
  ],
  [/meshtel_spans_(exported|dropped)_total/, 'the demo runs without a trace exporter'],
  [/istio_tcp_connections_closed_total/, "the demo's TCP client keeps its connection open"],
];

/** Start the demo mesh (src/demo `startDemo`) with a steady load and reviews-v2 failing 20% of its requests. */
export async function startDemoMesh(): Promise<DemoMesh> {
  const demo = await startDemo({ rate: RATE, failRate: FAIL_RATE, reportingIntervalMs: 1000 });
  const load = demo.load;
  if (load === undefined) {
    await demo.close();
    throw new Error('the demo started without its load generator');
  }
  return {
    targets: demo.workloads.map((w) => {
      const url = new URL(w.metricsUrl);
      // The pod name is the third field of the node id (type~ip~pod.namespace~domain), as a PodMonitor labels it.
      const pod = w.nodeId.split('~')[2]?.split('.')[0] ?? w.workload;
      return { address: url.host, path: url.pathname, labels: { namespace: w.namespace, pod } };
    }),
    namespace: 'bookinfo',
    prefer: { service: 'reviews.bookinfo.svc.cluster.local', namespace: 'bookinfo', workload: 'reviews-v2' },
    mayBeEmpty: (expr) => MAY_BE_EMPTY.find(([re]) => re.test(expr))?.[1],
    // Every answered request of the load generator went through the gateway, which reports it as a client.
    loadCheck: { selector: 'reporter="source", source_workload="istio-ingressgateway"' },
    sentRequests: () => ({ total: load.stats.ok + load.stats.failed, at: Date.now() }),
    requestRate: RATE,
    faults: [
      {
        name: `reviews-v2 answers ${FAIL_RATE * 100}% of requests with 500`,
        selector: 'reporter="destination", destination_workload="reviews-v2", destination_workload_namespace="bookinfo"',
        errorShare: FAIL_RATE,
        workload: 'reviews-v2',
        namespace: 'bookinfo',
      },
      // Healthy neighbours: no 5xx at all.
      ...['reviews-v1', 'reviews-v3', 'details-v1'].map((workload) => ({
        name: `${workload} never fails`,
        selector: `reporter="destination", destination_workload="${workload}", destination_workload_namespace="bookinfo"`,
        errorShare: 0,
        workload,
        namespace: 'bookinfo',
      })),
    ],
    close: () => demo.close(),
  };
}

/**
 * `startDemo`: a Bookinfo-like mesh on loopback, in this process, with no network and no Docker.
 *
 *   load → istio-ingressgateway (router, reporter=source)
 *        → productpage-v1 (PROXYLESS: fastify plugin + undici interceptor)
 *            → details-v1            (HTTP, sidecar)
 *            → reviews-v1/v2/v3      (HTTP, sidecars; v2 fails a share of requests, v3 is slow)
 *                → ratings-v1        (gRPC over h2c, sidecar; from v2 and v3)
 *                    → mongodb-v1    (plain TCP with the istio-peer-exchange frame, sidecar)
 *
 * Every sidecar is a real `startSidecar` with its own inbound, outbound, 15090/15020/15021/15000-style
 * ports; they share one mesh registry, as pods share the Kubernetes API. The e2e suite and `meshtel demo`
 * both use this function.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { ConfigError, isMeshtelError, quote } from '../core/errors.js';
import { createMeshtelEmbedding } from '../embed/index.js';
import type { MeshtelEmbedding } from '../embed/index.js';
import { createWorkloadMetadata } from '../metadata/workload.js';
import { formatNodeId } from '../metadata/node-id.js';
import { spiffeIdOf } from '../metadata/workload-fields.js';
import { createTracing } from '../tracing/tracer.js';
import type { HopTracer } from '../tracing/types.js';
import type { WorkloadMetadata } from '../metadata/types.js';
import { startSidecar } from '../sidecar/sidecar.js';
import { mintCertificates } from '../sidecar/certs.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import type { MeshFileInput } from '../sidecar/registry.js';
import { startDetails, startMongo, startProductpage, startRatings, startReviews } from './apps.js';
import type { DemoApp } from './apps.js';
import { startLoad } from './load.js';
import type { LoadGenerator } from './load.js';
import { createPortPlan, findFreePorts } from './ports.js';
import { hasPrometheusBinary, renderPrometheusConfig, shippedRuleFiles, startPrometheus } from './prometheus.js';
import type { PrometheusProcess, ScrapeTarget } from './prometheus.js';

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Requests per second sent to the gateway; default 10. 0 = no load (drive it yourself via `gatewayUrl`). */
  readonly rate?: number;
  /** Share of reviews-v2 requests answered 500, 0..1; default 0.2. */
  readonly failRate?: number;
  /** Latency added by reviews-v3 in ms; default 100. */
  readonly delayMs?: number;
  /** Consecutive ports from here instead of free ports. */
  readonly basePort?: number;
  /** Start a real Prometheus (needs `prometheus` on PATH) with the shipped rules. */
  readonly prometheus?: boolean;
  /** Prometheus scrape interval in seconds; default 5. */
  readonly scrapeIntervalSeconds?: number;
  /** Sidecars' TCP/gRPC periodic report interval (Istio's tcp_reporting_duration); default 1000 ms for a lively demo. */
  readonly reportingIntervalMs?: number;
  /**
   * Mutual TLS between the sidecars, as Istio's auto mTLS: certificates minted at start (needs `openssl`, else the
   * demo runs in plain text and says so in `mtlsSkipped`), inbound ports PERMISSIVE so the proxyless productpage
   * still reaches its callees in plain text. Default true.
   */
  readonly mtls?: boolean;
  /**
   * Native histograms on every proxy and the proxyless productpage (served in protobuf beside the classic
   * buckets; see docs/architecture.md for what Prometheus 2.42–2.44 then stores); default off.
   */
  readonly nativeHistograms?: boolean;
  /** Export spans of every hop over OTLP/HTTP (e.g. Jaeger's http://127.0.0.1:4318); default no tracing. */
  readonly tracing?: { readonly endpoint: string; readonly samplingPercent?: number };
  readonly logger?: Logger;
}

/** One workload of the demo. */
export interface DemoWorkload {
  readonly workload: string;
  readonly namespace: string;
  /** `sidecar`, `gateway` or `proxyless`. */
  readonly mode: 'sidecar' | 'gateway' | 'proxyless';
  /** Merged metrics URL (sidecar :15020-style /stats/prometheus, or the proxyless app's metrics listener). */
  readonly metricsUrl: string;
  /** Proxy-only metrics (:15090-style), sidecars only. */
  readonly proxyMetricsUrl?: string;
  /** The node id sent as x-envoy-peer-metadata-id. */
  readonly nodeId: string;
  /** The live tap stream (sidecar admin `/tap`, or the proxyless app's own handler). */
  readonly tapUrl: string;
}

/** A running demo. */
export interface Demo {
  /** productpage through the ingress gateway, e.g. http://127.0.0.1:41234/productpage. */
  readonly gatewayUrl: string;
  readonly workloads: readonly DemoWorkload[];
  /** Every merged metrics URL. */
  readonly metricsUrls: readonly string[];
  /** A ready Prometheus configuration scraping them all (YAML). */
  readonly prometheusConfig: string;
  /** The Prometheus started with `prometheus: true`, if it could be. */
  readonly prometheusUrl?: string;
  /** Why Prometheus was not started although asked for. */
  readonly prometheusSkipped?: string;
  /** Where spans go, when tracing is on. */
  readonly tracingEndpoint?: string;
  /** The sidecars talk mutual TLS to each other. */
  readonly mtls: boolean;
  /** Why mutual TLS is off although asked for. */
  readonly mtlsSkipped?: string;
  /** The load generator (absent with rate 0). */
  readonly load?: LoadGenerator;
  readonly options: Required<Pick<DemoOptions, 'rate' | 'failRate' | 'delayMs'>>;
  /** Stop load, sidecars, apps and Prometheus. Safe to call twice. */
  close(): Promise<void>;
}

const NS = 'bookinfo';

/** Service accounts of the demo's sidecars (meta() names them `bookinfo-<app>`), for their certificates. */
const SIDECAR_ACCOUNTS = [
  ...['details', 'reviews', 'ratings', 'mongodb'].map((app) => ({ namespace: 'bookinfo', serviceAccount: `bookinfo-${app}` })),
  { namespace: 'istio-system', serviceAccount: 'istio-ingressgateway-service-account' },
];
const CLUSTER = 'Kubernetes';

function meta(workload: string, app: string, version: string, extra: { namespace?: string; sa?: string; proxyType?: 'router'; labels?: Record<string, string> } = {}): WorkloadMetadata {
  const namespace = extra.namespace ?? NS;
  return createWorkloadMetadata({
    // A pod name as a ReplicaSet would make it: stable across runs so series keep their names.
    name: `${workload}-6d8f9b7c5-demo0`,
    namespace,
    workload,
    owner: `kubernetes://apis/apps/v1/namespaces/${namespace}/deployments/${workload}`,
    cluster: CLUSTER,
    labels: { app, version, ...extra.labels },
    serviceAccount: extra.sa ?? `bookinfo-${app}`,
    instanceIps: ['127.0.0.1'],
    istioVersion: '1.29.0',
    meshId: 'cluster.local',
    ...(extra.proxyType ? { proxyType: extra.proxyType } : {}),
  });
}

function check(name: string, v: number, min: number, max: number): void {
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `demo ${name} must be between ${min} and ${max}, got ${quote(v)}`, { field: name, value: v });
  }
}

/** Start attempts with fresh free ports before a bind failure is reported. */
const START_ATTEMPTS = 3;

/**
 * Start the demo mesh. Throws ConfigError for bad options or ports that cannot be bound (everything started is
 * stopped again). Without `basePort` the mesh file's inbound ports are free ports picked before the sidecars bind
 * them; another process may take one in between (a busy CI machine), so a bind failure is retried with new ports.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDemoOnce(options);
    } catch (err) {
      const lostPort = isMeshtelError(err) && err.code === 'MESHTEL_ERR_LISTEN' && /EADDRINUSE/.test(err.message);
      if (!lostPort || options.basePort !== undefined || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

async function startDemoOnce(options: DemoOptions): Promise<Demo> {
  const rate = options.rate ?? 10;
  const failRate = options.failRate ?? 0.2;
  const delayMs = options.delayMs ?? 100;
  check('rate', rate, 0, 10_000);
  check('failRate', failRate, 0, 1);
  check('delayMs', delayMs, 0, 60_000);
  if (options.basePort !== undefined) check('basePort', options.basePort, 1024, 65535 - 80);
  const logger = options.logger ?? silentLogger;
  const reportingIntervalMs = options.reportingIntervalMs ?? 1000;
  if (options.tracing) check('tracing.samplingPercent', options.tracing.samplingPercent ?? 100, 0, 100);
  // One tracer per workload, as each proxy has its own; the demo samples everything unless told otherwise.
  const tracerFor = (metadata: WorkloadMetadata): HopTracer | undefined =>
    options.tracing
      ? createTracing({
          local: metadata,
          nodeId: formatNodeId(metadata),
          exporter: 'otlp',
          endpoint: options.tracing.endpoint,
          samplingPercent: options.tracing.samplingPercent ?? 100,
          logger,
        })
      : undefined;

  const apps: DemoApp[] = [];
  const sidecars: Sidecar[] = [];
  let embedding: MeshtelEmbedding | undefined;
  let load: LoadGenerator | undefined;
  let prom: PrometheusProcess | undefined;
  let closing: Promise<void> | undefined;
  let certDir: string | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await load?.close();
      await Promise.allSettled(sidecars.map((s) => s.close()));
      await Promise.allSettled(apps.map((a) => a.close()));
      await embedding?.close();
      await prom?.close();
      if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
    })());

  try {
    // Inbound ports of the six sidecars that the mesh file names; everything else binds what it gets.
    const reserved = options.basePort === undefined ? await findFreePorts(7) : [];
    const plan = createPortPlan(options.basePort, reserved);
    const inbound = {
      details: plan.next(true),
      reviewsV1: plan.next(true),
      reviewsV2: plan.next(true),
      reviewsV3: plan.next(true),
      ratings: plan.next(true),
      mongodb: plan.next(true),
    };
    const prometheusPort = plan.next(true);

    // Sidecar listener ports the apps call; known once the sidecars run.
    const outboundOf = { ratingsFromReviews: [0, 0, 0], mongoFromRatings: 0 };

    const mongo = await startMongo(plan.next());
    apps.push(mongo);
    const ratings = await startRatings(() => outboundOf.mongoFromRatings, plan.next());
    apps.push(ratings);
    const reviews = await Promise.all(
      (['v1', 'v2', 'v3'] as const).map((version, i) =>
        startReviews(
          {
            version,
            ratingsPort: () => outboundOf.ratingsFromReviews[i] ?? 0,
            failRate: version === 'v2' ? failRate : 0,
            delayMs: version === 'v3' ? delayMs : 0,
          },
          plan.next(),
        ),
      ),
    );
    apps.push(...reviews);
    const details = await startDetails(plan.next());
    apps.push(details);

    const productpageMeta = meta('productpage-v1', 'productpage', 'v1');
    const productpageTracer = tracerFor(productpageMeta);
    embedding = createMeshtelEmbedding({
      metadata: productpageMeta,
      ...(productpageTracer ? { tracer: productpageTracer } : {}),
      inboundService: { host: `productpage.${NS}.svc.cluster.local`, name: 'productpage', namespace: NS },
      ...(options.nativeHistograms ? { stats: { nativeHistograms: true } } : {}),
      logger,
    });
    const productpage = await startProductpage(
      {
        embedding,
        detailsPort: () => inbound.details,
        reviewsPorts: () => [inbound.reviewsV1, inbound.reviewsV2, inbound.reviewsV3],
        metricsPort: plan.next(),
      },
      plan.next(),
    );
    apps.push(productpage);

    const ep = (port: Record<string, number>, workload: string, canonical: string, rev: string) => ({
      address: '127.0.0.1',
      ports: port,
      sidecar: true,
      workload: `${workload};${NS};${canonical};${rev};${CLUSTER}`,
    });
    const mesh: MeshFileInput = {
      services: [
        // Proxyless: no sidecar, so callers speak plain text to it (and the gateway does not originate mTLS).
        { name: 'productpage', namespace: NS, ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [{ ...ep({ http: productpage.port }, 'productpage-v1', 'productpage', 'v1'), sidecar: false }] },
        { name: 'details', namespace: NS, ports: [{ name: 'http', protocol: 'http', port: 9080 }], endpoints: [ep({ http: inbound.details }, 'details-v1', 'details', 'v1')] },
        {
          name: 'reviews',
          namespace: NS,
          ports: [{ name: 'http', protocol: 'http', port: 9080 }],
          endpoints: [
            ep({ http: inbound.reviewsV1 }, 'reviews-v1', 'reviews', 'v1'),
            ep({ http: inbound.reviewsV2 }, 'reviews-v2', 'reviews', 'v2'),
            ep({ http: inbound.reviewsV3 }, 'reviews-v3', 'reviews', 'v3'),
          ],
        },
        { name: 'ratings', namespace: NS, ports: [{ name: 'grpc', protocol: 'grpc', port: 9080 }], endpoints: [ep({ grpc: inbound.ratings }, 'ratings-v1', 'ratings', 'v1')] },
        { name: 'mongodb', namespace: NS, ports: [{ name: 'tcp', protocol: 'tcp', port: 27017 }], endpoints: [ep({ tcp: inbound.mongodb }, 'mongodb-v1', 'mongodb', 'v1')] },
      ],
    };

    const sidecarPorts = (inboundPort: number) => ({
      inbound: inboundPort,
      outbound: plan.next(),
      prometheus: plan.next(),
      status: plan.next(),
      health: plan.next(),
      admin: plan.next(),
    });
    // Certificates as Istio's CA would issue them: one per service account, SPIFFE URI SAN only.
    let tlsFor: (m: WorkloadMetadata) => Partial<Parameters<typeof startSidecar>[0]> = () => ({});
    let mtlsSkipped: string | undefined;
    if (options.mtls ?? true) {
      certDir = mkdtempSync(path.join(tmpdir(), 'meshtel-demo-certs-'));
      const accounts = [...new Map(SIDECAR_ACCOUNTS.map((a) => [`${a.namespace}/${a.serviceAccount}`, a])).values()];
      try {
        const minted = mintCertificates({ outDir: certDir, workloads: accounts, days: 2 });
        const byAccount = new Map(minted.workloads.map((w) => [w.spiffeId, w]));
        tlsFor = (m) => {
          const w = byAccount.get(spiffeIdOf('cluster.local', m.namespace, m.serviceAccount));
          return w ? { tls: { certFile: w.certFile, keyFile: w.keyFile, caFile: w.caFile }, mtlsMode: 'PERMISSIVE' as const } : {};
        };
      } catch (err) {
        mtlsSkipped = isMeshtelError(err) ? err.message : String(err);
        logger.warn('demo runs without mutual TLS', { reason: mtlsSkipped });
      }
    }
    const common = { bindAddress: '127.0.0.1', mesh, reportingIntervalMs, logger, ...(options.nativeHistograms ? { nativeHistograms: true } : {}) };
    const specs: { metadata: WorkloadMetadata; mode: DemoWorkload['mode']; options: Parameters<typeof startSidecar>[0] }[] = [
      {
        metadata: meta('mongodb-v1', 'mongodb', 'v1'),
        mode: 'sidecar',
        options: { ...common, ports: sidecarPorts(inbound.mongodb), app: { host: '127.0.0.1', port: mongo.port, protocol: 'tcp' } },
      },
      {
        metadata: meta('ratings-v1', 'ratings', 'v1'),
        mode: 'sidecar',
        options: {
          ...common,
          ports: sidecarPorts(inbound.ratings),
          app: { host: '127.0.0.1', port: ratings.port, protocol: 'grpc' },
          serviceListeners: [{ host: `mongodb.${NS}`, port: 27017, listenPort: plan.next() }],
        },
      },
      ...(['v1', 'v2', 'v3'] as const).map((version, i) => ({
        metadata: meta(`reviews-${version}`, 'reviews', version),
        mode: 'sidecar' as const,
        options: {
          ...common,
          ports: sidecarPorts([inbound.reviewsV1, inbound.reviewsV2, inbound.reviewsV3][i] as number),
          app: { host: '127.0.0.1', port: (reviews[i] as DemoApp).port, protocol: 'http' as const },
          serviceListeners: [{ host: `ratings.${NS}`, port: 9080, listenPort: plan.next() }],
          // reviews serve their /metrics in OpenMetrics (v1), protobuf (v2) and text (v3): merged at :15020.
          prometheusAnnotations: JSON.stringify({ scrape: 'true', path: '/metrics', port: String((reviews[i] as DemoApp).port) }),
        },
      })),
      {
        metadata: meta('details-v1', 'details', 'v1'),
        mode: 'sidecar',
        options: {
          ...common,
          ports: sidecarPorts(inbound.details),
          app: { host: '127.0.0.1', port: details.port, protocol: 'http' },
          // What `meshtel inject` puts in the env for an app annotated prometheus.io/scrape: merged at :15020.
          prometheusAnnotations: JSON.stringify({ scrape: 'true', path: '/metrics', port: String(details.port) }),
        },
      },
      {
        metadata: meta('istio-ingressgateway', 'istio-ingressgateway', 'v1', {
          namespace: 'istio-system',
          sa: 'istio-ingressgateway-service-account',
          proxyType: 'router',
          labels: { istio: 'ingressgateway' },
        }),
        mode: 'gateway',
        // A gateway has no app: traffic enters on its listener for productpage, as on Envoy's :80 route.
        options: { ...common, ports: sidecarPorts(0), serviceListeners: [{ host: `productpage.${NS}`, port: 9080, listenPort: plan.next() }] },
      },
    ];
    const started = await Promise.all(
      specs.map(async (s) => {
        const tracer = tracerFor(s.metadata);
        const sidecar = await startSidecar({ ...s.options, ...tlsFor(s.metadata), metadata: s.metadata, ...(tracer ? { tracer } : {}) });
        sidecars.push(sidecar);
        return sidecar;
      }),
    );
    const byName = (w: string): Sidecar => started.find((s) => s.metadata.workload === w) as Sidecar;
    outboundOf.mongoFromRatings = byName('ratings-v1').ports.serviceListeners[0] ?? 0;
    outboundOf.ratingsFromReviews = ['reviews-v1', 'reviews-v2', 'reviews-v3'].map((w) => byName(w).ports.serviceListeners[0] ?? 0);
    const gateway = byName('istio-ingressgateway');
    const gatewayUrl = `http://127.0.0.1:${gateway.ports.serviceListeners[0]}/productpage`;

    const workloads: DemoWorkload[] = [
      ...started.map((s, i) => ({
        workload: s.metadata.workload,
        namespace: s.metadata.namespace,
        mode: (specs[i] as (typeof specs)[number]).mode,
        metricsUrl: `http://127.0.0.1:${s.ports.status}/stats/prometheus`,
        proxyMetricsUrl: `http://127.0.0.1:${s.ports.prometheus}/stats/prometheus`,
        nodeId: s.nodeId,
        tapUrl: `http://127.0.0.1:${s.ports.admin}/tap`,
      })),
      {
        workload: productpageMeta.workload,
        namespace: NS,
        mode: 'proxyless' as const,
        metricsUrl: `http://127.0.0.1:${productpage.metricsPort}/stats/prometheus`,
        nodeId: embedding.nodeId,
        tapUrl: `http://127.0.0.1:${productpage.metricsPort}/tap`,
      },
    ].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.workload.localeCompare(b.workload));

    const targets: ScrapeTarget[] = workloads.map((w) => {
      const u = new URL(w.metricsUrl);
      return { address: u.host, path: u.pathname, namespace: w.namespace, pod: `${w.workload}-6d8f9b7c5-demo0`, workload: w.workload };
    });
    const prometheusConfig = renderPrometheusConfig(targets, { intervalSeconds: options.scrapeIntervalSeconds ?? 5, ruleFiles: shippedRuleFiles() });
    let prometheusSkipped: string | undefined;
    if (options.prometheus) {
      if (hasPrometheusBinary()) prom = startPrometheus(prometheusConfig, prometheusPort === 0 ? (await findFreePorts(1))[0] as number : prometheusPort);
      else prometheusSkipped = 'no `prometheus` binary on PATH';
    }

    if (rate > 0) load = startLoad({ url: new URL(gatewayUrl).origin, rate });

    return {
      gatewayUrl,
      workloads,
      metricsUrls: workloads.map((w) => w.metricsUrl),
      prometheusConfig,
      ...(prom ? { prometheusUrl: prom.url } : {}),
      ...(prometheusSkipped ? { prometheusSkipped } : {}),
      ...(load ? { load } : {}),
      ...(options.tracing ? { tracingEndpoint: options.tracing.endpoint } : {}),
      mtls: certDir !== undefined && mtlsSkipped === undefined,
      ...(mtlsSkipped !== undefined ? { mtlsSkipped } : {}),
      options: { rate, failRate, delayMs },
      close,
    };
  } catch (err) {
    await close();
    if (isMeshtelError(err)) throw err;
    // An app that cannot bind (EADDRINUSE with --base-port) is a listen error like a sidecar's.
    throw new ConfigError('MESHTEL_ERR_LISTEN', `demo failed to start: ${(err as Error).message}`, {}, { cause: err });
  }
}

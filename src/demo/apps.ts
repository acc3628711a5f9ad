/**
 * The demo's applications, a small Bookinfo (istio/istio `samples/bookinfo`): productpage calls details
 * and reviews over HTTP; reviews v2/v3 call ratings over gRPC; ratings reads its data from a "mongodb"
 * over a plain TCP line protocol. Each app knows nothing about the mesh: the sidecars (or, for
 * productpage, the proxyless embedding) add the telemetry.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Counter, Registry } from 'prom-client';
import type { RegistryContentType } from 'prom-client';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { createMeshtelInterceptor, meshtelFastify } from '../embed/index.js';
import type { MeshtelEmbedding } from '../embed/index.js';
import { createTapHandler } from '../record/tap.js';
import { METRIC_TYPE } from '../stats/client-model.js';
import { encodeProtobufFamilies } from '../stats/exposition-protobuf.js';
import { PROTOBUF_CONTENT_TYPE } from '../stats/media-types.js';
import { getRatings, RATINGS_SERVICE } from './ratings-grpc.js';
import type { RatingsReply, RatingsRequest } from './ratings-grpc.js';

/** A running app. */
export interface DemoApp {
  readonly port: number;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

async function listenFastify(app: FastifyInstance, port = 0): Promise<DemoApp> {
  await app.listen({ port, host: HOST });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

/**
 * Decides which requests fail so that exactly `rate` of them do (every request where ⌊n·rate⌋ steps up),
 * not a random share: the demo's success rates are then exact, and tests can check them.
 */
export function createFaultSchedule(rate: number): () => boolean {
  let n = 0;
  return () => {
    const fail = Math.floor((n + 1) * rate) > Math.floor(n * rate);
    n++;
    return fail;
  };
}

// ------------------------------------------------------------------ mongodb (plain TCP)

/** The demo's "mongodb": one JSON line back for every `find <productId>` line. */
export async function startMongo(port = 0): Promise<DemoApp> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      // Bounded: a peer that never sends a newline is cut off instead of growing the buffer.
      if (buffered.length > 64 * 1024) {
        socket.destroy();
        return;
      }
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        const m = /^find (\d+)$/.exec(line);
        const productId = m ? Number(m[1]) : 0;
        socket.write(`${JSON.stringify({ productId, ratings: { Reviewer1: 5, Reviewer2: 4 } })}\n`);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A line-protocol client over one long-lived connection (reconnecting), with a bounded queue. */
export function createLineClient(port: () => number, maxPending = 256) {
  let socket: net.Socket | undefined;
  let buffered = '';
  const pending: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  const failAll = (err: Error): void => {
    for (const p of pending.splice(0)) p.reject(err);
  };
  const connect = (): net.Socket => {
    const s = net.connect(port(), HOST);
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        pending.shift()?.resolve(line);
      }
    });
    s.on('error', (err) => failAll(err));
    s.on('close', () => {
      if (socket === s) socket = undefined;
      buffered = '';
      failAll(new Error('connection closed'));
    });
    return s;
  };
  return {
    query(line: string): Promise<string> {
      if (pending.length >= maxPending) return Promise.reject(new Error('too many pending queries'));
      socket ??= connect();
      const s = socket;
      return new Promise<string>((resolve, reject) => {
        pending.push({ resolve, reject });
        s.write(`${line}\n`);
      });
    },
    close(): void {
      socket?.destroy();
      socket = undefined;
    },
  };
}

// ------------------------------------------------------------------ ratings (gRPC)

/** ratings: a gRPC server reading from mongodb (reached at `mongoPort()`, the sidecar's TCP listener). */
export async function startRatings(mongoPort: () => number, port = 0): Promise<DemoApp> {
  const db = createLineClient(mongoPort);
  const server = new grpc.Server();
  server.addService(RATINGS_SERVICE, {
    GetRatings: (call: grpc.ServerUnaryCall<RatingsRequest, RatingsReply>, callback: grpc.sendUnaryData<RatingsReply>) => {
      db.query(`find ${Number(call.request.productId) || 0}`).then(
        (line) => callback(null, JSON.parse(line) as RatingsReply),
        (err: Error) => callback({ code: grpc.status.UNAVAILABLE, details: `ratings database: ${err.message}` }),
      );
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${HOST}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        db.close();
        server.tryShutdown(() => resolve());
        // Calls still open after a second are cut, so Ctrl-C never waits on a slow client.
        setTimeout(() => server.forceShutdown(), 1000).unref();
      }),
  };
}

// ------------------------------------------------------------------ reviews (HTTP → gRPC)

/** Options of {@link startReviews}. */
export interface ReviewsOptions {
  readonly version: 'v1' | 'v2' | 'v3';
  /** Port of the sidecar's ratings listener (v2/v3 call ratings; v1 does not, as in Bookinfo). */
  readonly ratingsPort: () => number;
  /** Share of requests answered 500 (exact, see {@link createFaultSchedule}). */
  readonly failRate?: number;
  /** Added latency in ms. */
  readonly delayMs?: number;
}

/** Name of the app metric reviews serves on /metrics: reviews requests answered (any code). */
export const REVIEWS_REQUESTS_TOTAL = 'bookinfo_reviews_requests_total';
/**
 * The format each reviews version serves its /metrics page in, so the merged :15020 endpoint of the demo
 * meets every format an app speaks (details serves text 0.0.4 too).
 */
export const REVIEWS_METRICS_FORMAT = { v1: 'openmetrics', v2: 'protobuf', v3: 'text' } as const;

/** reviews: HTTP, v2/v3 enrich with ratings over gRPC; faults injected per version; its own metrics on /metrics. */
export async function startReviews(options: ReviewsOptions, port = 0): Promise<DemoApp> {
  const app = Fastify();
  const fail = createFaultSchedule(options.failRate ?? 0);
  let answered = 0;
  app.addHook('onResponse', async (req) => {
    if (req.url.startsWith('/reviews/')) answered++;
  });
  const format = REVIEWS_METRICS_FORMAT[options.version];
  const registry = new Registry<RegistryContentType>();
  if (format === 'openmetrics') registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  new Counter({ name: REVIEWS_REQUESTS_TOTAL, help: 'Reviews requests answered.', registers: [registry], collect() { this.reset(); this.inc(answered); } });
  app.get('/metrics', async (_req, reply) => {
    if (format === 'protobuf') {
      reply.header('content-type', PROTOBUF_CONTENT_TYPE);
      return encodeProtobufFamilies([{ name: REVIEWS_REQUESTS_TOTAL, help: 'Reviews requests answered.', type: METRIC_TYPE.COUNTER, metric: [{ label: [], counter: { value: answered } }] }]);
    }
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  let client: grpc.Client | undefined;
  app.get('/reviews/:id', async (req, reply) => {
    const productId = Number((req.params as { id: string }).id) || 0;
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    if (fail()) return reply.code(500).send({ error: `reviews-${options.version} injected fault` });
    const reviews = [
      { reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!' },
      { reviewer: 'Reviewer2', text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.' },
    ];
    if (options.version === 'v1') return { id: productId, podname: `reviews-${options.version}`, reviews };
    // The authority a Bookinfo pod sends (the service name), not the sidecar listener's address: the tap and
    // traces show what a cluster would.
    client ??= new grpc.Client(`${HOST}:${options.ratingsPort()}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'ratings.bookinfo.svc.cluster.local:9080' });
    try {
      const r = await getRatings(client, productId, 2000);
      return {
        id: productId,
        podname: `reviews-${options.version}`,
        reviews: reviews.map((x) => ({ ...x, rating: { stars: r.ratings[x.reviewer] ?? 0, color: options.version === 'v2' ? 'black' : 'red' } })),
      };
    } catch {
      return { id: productId, podname: `reviews-${options.version}`, reviews, ratingsError: 'ratings service is currently unavailable' };
    }
  });
  const running = await listenFastify(app, port);
  return {
    port: running.port,
    close: async () => {
      client?.close();
      await running.close();
    },
  };
}

// ------------------------------------------------------------------ details (HTTP)

/** Name of the app metric details serves on /metrics (merged into its sidecar's :15020 output). */
export const DETAILS_LOOKUPS_TOTAL = 'bookinfo_details_lookups_total';

/**
 * details: a static book description. It also serves its own Prometheus metrics on /metrics, which its
 * sidecar merges into :15020/stats/prometheus (ISTIO_PROMETHEUS_ANNOTATIONS), as Istio does for annotated apps.
 */
export async function startDetails(port = 0): Promise<DemoApp> {
  const app = Fastify();
  const registry = new Registry();
  const lookups = new Counter({ name: DETAILS_LOOKUPS_TOTAL, help: 'Book details served.', registers: [registry] });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  app.addHook('onResponse', (req, _reply, done) => {
    if (req.url.startsWith('/details/')) lookups.inc();
    done();
  });
  app.get('/details/:id', async (req) => ({
    id: Number((req.params as { id: string }).id) || 0,
    author: 'William Shakespeare',
    year: 1595,
    type: 'paperback',
    pages: 200,
    publisher: 'PublisherA',
    language: 'English',
    'ISBN-10': '1234567890',
    'ISBN-13': '123-1234567890',
  }));
  return listenFastify(app, port);
}

// ------------------------------------------------------------------ productpage (proxyless)

/** Options of {@link startProductpage}. */
export interface ProductpageOptions {
  readonly embedding: MeshtelEmbedding;
  /** Inbound port of the details sidecar. */
  readonly detailsPort: () => number;
  /** Inbound ports of the reviews v1/v2/v3 sidecars (round robin, as kube-proxy would spread them). */
  readonly reviewsPorts: () => readonly number[];
  /** Port for /stats/prometheus (the embedding's registry), kept off the app port so scrapes are not traffic. */
  readonly metricsPort?: number;
}

/** A running productpage with its metrics listener. */
export interface ProductpageApp extends DemoApp {
  readonly metricsPort: number;
}

/**
 * productpage without a sidecar: the fastify plugin does the inbound half of the mesh (MX, reporter=
 * destination, server span), the undici interceptor the outbound half (MX, reporter=source).
 */
export async function startProductpage(options: ProductpageOptions, port = 0): Promise<ProductpageApp> {
  const { embedding } = options;
  const agent: Dispatcher = new Agent({ keepAliveTimeout: 10_000 }).compose(createMeshtelInterceptor(embedding));
  let next = 0;
  const app = Fastify();
  await app.register(meshtelFastify, { embedding });
  app.get('/productpage', async (req, reply) => {
    const productId = Number((req.query as { id?: string }).id ?? 0);
    const reviewsPorts = options.reviewsPorts();
    const reviewsPort = reviewsPorts[next++ % reviewsPorts.length] ?? 0;
    // Service names in Host, as an app in Kubernetes would call them; the interceptor resolves them.
    const [details, reviews] = await Promise.allSettled([
      request(`http://${HOST}:${options.detailsPort()}/details/${productId}`, {
        dispatcher: agent,
        headers: { host: 'details.bookinfo.svc.cluster.local:9080' },
      }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as unknown })),
      request(`http://${HOST}:${reviewsPort}/reviews/${productId}`, {
        dispatcher: agent,
        headers: { host: 'reviews.bookinfo.svc.cluster.local:9080' },
      }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as unknown })),
    ]);
    // Bookinfo's productpage degrades: missing reviews still render the page, missing details do not.
    if (details.status !== 'fulfilled' || details.value.status !== 200) return reply.code(503).send({ error: 'details unavailable' });
    const reviewsOk = reviews.status === 'fulfilled' && reviews.value.status === 200;
    return { product: details.value.body, reviews: reviewsOk ? reviews.value.body : { error: 'Sorry, product reviews are currently unavailable for this book.' } };
  });
  const main = await listenFastify(app, port);
  // A tap stream never ends by itself: close() must not wait for it.
  const metricsApp = Fastify({ forceCloseConnections: true });
  metricsApp.get('/stats/prometheus', async (_req, reply) => {
    reply.header('content-type', embedding.registry.contentType);
    return embedding.metrics();
  });
  // The embedding's live tap, mounted by the app on its loopback metrics listener (src/core/tap.ts).
  const tap = createTapHandler({ local: embedding.metadata, registry: embedding.registry });
  metricsApp.get('/tap', (req, reply) => {
    reply.hijack();
    tap(req.raw, reply.raw);
  });
  const metrics = await listenFastify(metricsApp, options.metricsPort ?? 0);
  return {
    port: main.port,
    metricsPort: metrics.port,
    close: async () => {
      await Promise.allSettled([main.close(), metrics.close()]);
      await agent.close();
    },
  };
}

/**
 * `node --expose-gc rss-steps.mjs STEP...` (plain node, no tsx: tsx's loader thread would be counted): runs each
 * step in order in this one process and, after each, forces two GCs and prints one JSON line
 * `{"step":S,"rssBytes":N,"heapUsedBytes":N}`. A step is a module specifier (a package name or a path of the
 * checkout, imported), or one of the actions below, which use the compiled package in dist/.
 * Used by bench/rss.bench.ts: what each component of a sidecar costs in memory, in the order a sidecar loads it.
 */
import http from 'node:http';
import path from 'node:path';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dist = (file) => pathToFileURL(path.join(root, 'dist', file)).href;
const PORTS = { inbound: 0, outbound: 0, prometheus: 0, status: 0, health: 0, admin: 0 };
const held = [];

const actions = {
  /** A default sidecar (no mesh, tracing off) listening, agent ports up. */
  async 'start-sidecar'() {
    const { startSidecar } = await import(dist('sidecar/sidecar.js'));
    held.push(await startSidecar({ env: {}, bindAddress: '127.0.0.1', ports: PORTS, app: { port: 9 } }));
  },
  /** What the agent ports cost before issue 16: four fastify instances listening. */
  async 'four-fastify'() {
    const { default: Fastify } = await import('fastify');
    for (let i = 0; i < 4; i++) {
      const app = Fastify({ logger: false });
      app.get('/x', async () => 'x');
      await app.listen({ host: '127.0.0.1', port: 0 });
      held.push(app);
    }
  },
  /** A mesh file's validation: zod and its schema. */
  async 'mesh-schema'() {
    const { parseMesh } = await import(dist('sidecar/registry.js'));
    parseMesh({ services: [{ name: 'reviews', ports: [{ name: 'http', protocol: 'http', port: 9080 }] }] });
  },
  /** Tracing on: the OTel SDK's tracer provider and the OTLP exporter, as `--tracing otlp` loads them. */
  async 'tracing-sdk'() {
    await import(dist('tracing/node-sdk.js'));
    await import('@opentelemetry/exporter-trace-otlp-proto');
  },
  /** A bare node:http listener (the floor any Node proxy pays). */
  async 'http-listener'() {
    const server = http.createServer((_req, res) => res.end());
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    held.push(server);
  },
};

const gc = () => {
  globalThis.gc?.();
  globalThis.gc?.();
};
gc();
const report = (step) => {
  gc();
  const m = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ step, rssBytes: m.rss, heapUsedBytes: m.heapUsed })}\n`);
};
report('node');
for (const step of process.argv.slice(2)) {
  if (Object.hasOwn(actions, step)) await actions[step]();
  else {
    const parts = step.split('+');
    for (const p of parts) await import(p.startsWith('dist/') || p.startsWith('./') ? pathToFileURL(path.join(root, p)).href : p);
  }
  // Let lazily started work (timers, the first GC of new code) settle.
  await new Promise((r) => setTimeout(r, 200));
  report(step);
}
process.exit(0);

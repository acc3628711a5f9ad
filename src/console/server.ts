/**
 * `meshtel console`: a fastify app serving one static page (src/console/assets, cytoscape + cytoscape-dagre from
 * this package's own dependencies: no CDN, works offline, no build step) and JSON APIs over a
 * {@link ConsoleSource}: `/api/graph`, `/api/detail`, `/api/self`, `/api/config`, and `/api/tap`, which relays a
 * workload's tap stream (the sidecar's `:15000/tap`, the embedding's handler) to the page as Server-Sent Events.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { request } from 'undici';
import { ConfigError } from '../core/errors.js';
import type { ConsoleSource } from './sources.js';

/** A tap stream the console can relay. */
export interface ConsoleTap {
  /** `namespace/workload`. */
  readonly id: string;
  /** The tap URL, e.g. http://127.0.0.1:15000/tap. */
  readonly url: string;
}

/** Options of {@link startConsole}. */
export interface ConsoleOptions {
  readonly source: ConsoleSource;
  readonly taps?: readonly ConsoleTap[];
  /** Trace UI link with `{traceId}`, e.g. http://127.0.0.1:16686/trace/{traceId}. */
  readonly traceUrl?: string;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /**
   * Until when (ms since the epoch) the mesh is warming up: latencies still include start-up (first connections,
   * JIT), so the page says "warming up" instead of quantiles. The demo sets it; a console on a running mesh does not.
   */
  readonly warmUpUntil?: number;
}

/** A running console. */
export interface RunningConsole {
  readonly url: string;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

function assetsDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // Running from src (tsx) the assets sit beside this file; from dist they are shipped under src/console/assets.
  for (const dir of [path.join(here, 'assets'), path.resolve(here, '../../src/console/assets')]) {
    if (existsSync(path.join(dir, 'index.html'))) return dir;
  }
  throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', 'console assets not found (src/console/assets)', {});
}

const require = createRequire(import.meta.url);
/** Served files: name → [path, content type]. Read once at start. */
function assetTable(): Map<string, { body: Buffer; type: string }> {
  const dir = assetsDir();
  const files: [string, string, string][] = [
    ['index.html', path.join(dir, 'index.html'), 'text/html; charset=utf-8'],
    ['app.js', path.join(dir, 'app.js'), 'text/javascript; charset=utf-8'],
    ['style.css', path.join(dir, 'style.css'), 'text/css; charset=utf-8'],
    ['favicon.svg', path.join(dir, 'favicon.svg'), 'image/svg+xml'],
    ['cytoscape.min.js', require.resolve('cytoscape/dist/cytoscape.min.js'), 'text/javascript; charset=utf-8'],
    ['cytoscape-dagre.js', require.resolve('cytoscape-dagre'), 'text/javascript; charset=utf-8'],
  ];
  return new Map(files.map(([name, file, type]) => [name, { body: readFileSync(file), type }]));
}

/** Start the console server. It owns `options.source`: closing the console (or failing to bind) closes it. */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const assets = assetTable();
  const taps = new Map((options.taps ?? []).map((t) => [t.id, t.url]));
  const app = Fastify({ logger: false });
  const security = {
    // Same-origin everything: the page loads nothing from elsewhere.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-store',
  };
  const send = (name: string) => async (_req: unknown, reply: FastifyReply) => {
    const a = assets.get(name);
    if (!a) return reply.code(404).send();
    return reply.headers(security).type(a.type).send(a.body);
  };
  app.get('/', send('index.html'));
  for (const name of assets.keys()) if (name !== 'index.html') app.get(`/assets/${name}`, send(name));

  app.get('/api/config', async () => ({
    source: options.source.kind,
    taps: [...taps.keys()],
    ...(options.traceUrl ? { traceUrl: options.traceUrl } : {}),
    ...(options.warmUpUntil !== undefined ? { warmUpUntil: options.warmUpUntil } : {}),
  }));
  app.get('/api/graph', async (_req, reply) => {
    try {
      const graph = await options.source.graph();
      return graph ?? { warmingUp: true };
    } catch (err) {
      return reply.code(502).send({ error: (err as Error).message });
    }
  });
  app.get<{ Querystring: { id?: string; range?: string } }>('/api/detail', async (req, reply) => {
    const id = req.query.id ?? '';
    const range = Number(req.query.range ?? 900);
    if (id === '' || id.length > 600 || !(range >= 60 && range <= 86_400)) return reply.code(400).send({ error: 'id and range (60..86400 s) required' });
    try {
      return await options.source.detail(id, range);
    } catch (err) {
      return reply.code(502).send({ error: (err as Error).message });
    }
  });
  app.get('/api/self', async (_req, reply) => {
    try {
      return (await options.source.self()) ?? { warmingUp: true };
    } catch (err) {
      return reply.code(502).send({ error: (err as Error).message });
    }
  });
  app.get<{ Querystring: { workload?: string } }>('/api/tap', async (req, reply) => {
    const url = taps.get(req.query.workload ?? '');
    if (url === undefined) return reply.code(404).send({ error: 'no tap for this workload' });
    const upstream = new AbortController();
    let res;
    try {
      res = await request(`${url}?format=ndjson&rate=50`, { signal: upstream.signal, headersTimeout: 5000, bodyTimeout: 0 });
    } catch (err) {
      return reply.code(502).send({ error: (err as Error).message });
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      return reply.code(502).send({ error: `tap answered ${res.statusCode}: ${text.trim()}` });
    }
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    out.write(': meshtel console tap\n\n');
    const stop = (): void => upstream.abort();
    out.once('close', stop);
    let buf = '';
    res.body.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('{')) out.write(`data: ${line}\n\n`);
    });
    res.body.on('error', () => out.end());
    res.body.on('end', () => out.end());
  });

  try {
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  } catch (err) {
    // The console owns its source (close() closes it): a console that could not start stops it too.
    options.source.close();
    await app.close().catch(() => undefined);
    throw new ConfigError('MESHTEL_ERR_LISTEN', `console cannot bind ${options.host ?? '127.0.0.1'}:${options.port ?? 0}: ${(err as Error).message}`, {}, { cause: err });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    app,
    async close() {
      options.source.close();
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

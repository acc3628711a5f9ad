/**
 * The agent ports' HTTP server: node:http with an exact-path router, one server per port.
 *
 * Hand-written instead of fastify because the agent ports serve a handful of fixed GET/POST paths, and fastify with
 * four instances listening cost the sidecar ~8 MiB of RSS for nothing it uses (issue 16; `npm run bench -- rss`
 * prints that row). What fastify did for these routes is kept: HEAD answers every GET route (Node drops the
 * body), the query string is not part of the path, an unknown path or method is a JSON 404 and a handler that
 * throws is a JSON 500, and `close()` stops listening and ends every connection (a `/tap` stream never ends by
 * itself).
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { ConfigError } from '../core/errors.js';

/** A route handler; it answers on `res` itself (a rejected promise is a 500 when nothing was sent yet). */
export type AgentHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Routes of one port: exact path → method → handler. */
export type AgentRoutes = Readonly<Record<string, Readonly<Partial<Record<'GET' | 'POST', AgentHandler>>>>>;

/** One listening agent server. */
export interface AgentServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Bind `routes` on host:port; throws MESHTEL_ERR_LISTEN naming the endpoint when the port cannot be bound. */
export async function listenAgent(name: string, host: string, port: number, routes: AgentRoutes): Promise<AgentServer> {
  const server = http.createServer((req, res) => dispatch(routes, req, res));
  // Keep-alive as a scraper expects it (Prometheus reuses its connection between scrapes).
  server.keepAliveTimeout = 72_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_LISTEN', `${name} endpoint cannot bind ${host}:${port}: ${(err as Error).message}`, { listener: name, host, port }, { cause: err });
  }
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port: bound,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

function dispatch(routes: AgentRoutes, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const handler = Object.hasOwn(routes, path) && (method === 'GET' || method === 'POST') ? routes[path]?.[method] : undefined;
  // A request body is never read by these routes; it is not drained here either (node:http dumps it once the
  // response has finished): a read-to-end request emits 'close', which ends a /tap stream at once.
  if (handler === undefined) {
    sendJson(res, 404, { message: `Route ${req.method}:${path} not found`, error: 'Not Found', statusCode: 404 });
    return;
  }
  let result: void | Promise<void>;
  try {
    result = handler(req, res);
  } catch (err) {
    failed(res, err);
    return;
  }
  if (result instanceof Promise) result.catch((err: unknown) => failed(res, err));
}

function failed(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  sendJson(res, 500, { message: err instanceof Error ? err.message : String(err), error: 'Internal Server Error', statusCode: 500 });
}

/** Send a whole body with a content type (a string is sent as UTF-8). */
export function send(res: ServerResponse, status: number, contentType: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Send a value as JSON. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

/** Stream a body; a stream that fails half-way ends the connection (the scraper sees a truncated response, not a valid short page). */
export function sendStream(res: ServerResponse, headers: Readonly<Record<string, string>>, body: Readable): void {
  res.writeHead(200, headers);
  pipeline(body, res, (err) => {
    if (err) res.destroy();
  });
}

/**
 * The agent ports' node:http router (src/sidecar/agent-http.ts) keeps what fastify did for the agent routes:
 * HEAD on GET routes, the query string outside the path, JSON 404/500, a bind failure as MESHTEL_ERR_LISTEN, and
 * close() ending open connections (a tap stream never ends by itself).
 */
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { listenAgent, send, sendStream } from '../../src/sidecar/agent-http.js';
import type { AgentServer } from '../../src/sidecar/agent-http.js';

const servers: AgentServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()!.close();
});

function call(port: number, method: string, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function start(): Promise<number> {
  const server = await listenAgent('test', '127.0.0.1', 0, {
    '/ok': { GET: (_req, res) => send(res, 200, 'text/plain; charset=utf-8', 'hello\n') },
    '/quit': { POST: (_req, res) => send(res, 200, 'text/plain; charset=utf-8', 'OK\n') },
    '/throws': {
      GET: () => {
        throw new Error('boom');
      },
    },
    '/rejects': { GET: async () => Promise.reject(new Error('later')) },
    '/stream': { GET: (_req, res) => sendStream(res, { 'content-type': 'text/plain' }, Readable.from([Buffer.from('a'), Buffer.from('b')])) },
    '/forever': {
      GET: (_req, res) => {
        res.writeHead(200).write('open');
      },
    },
  });
  servers.push(server);
  return server.port;
}

describe('listenAgent()', () => {
  it('routes by exact path, without the query string', async () => {
    const port = await start();
    expect(await call(port, 'GET', '/ok?x=1')).toMatchObject({ status: 200, body: 'hello\n', headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': '6' } });
    expect((await call(port, 'GET', '/stream')).body).toBe('ab');
  });

  it('answers HEAD on a GET route with its headers and no body', async () => {
    const port = await start();
    const res = await call(port, 'HEAD', '/ok');
    expect(res).toMatchObject({ status: 200, body: '', headers: { 'content-length': '6' } });
  });

  it.each([
    ['GET', '/nope'],
    ['GET', '/quit'],
    ['POST', '/ok'],
    ['DELETE', '/ok'],
    ['GET', '/ok/'],
    ['GET', '/constructor'],
  ])('answers %s %s with a JSON 404', async (method, path) => {
    const port = await start();
    const res = await call(port, method, path);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(res.body)).toMatchObject({ statusCode: 404, error: 'Not Found' });
  });

  it.each(['/throws', '/rejects'])('answers a failing handler (%s) with a JSON 500 and keeps serving', async (path) => {
    const port = await start();
    const res = await call(port, 'GET', path);
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({ statusCode: 500 });
    expect((await call(port, 'GET', '/ok')).status).toBe(200);
  });

  it('refuses a port in use with MESHTEL_ERR_LISTEN naming the endpoint', async () => {
    const port = await start();
    await expect(listenAgent('admin', '127.0.0.1', port, {})).rejects.toMatchObject({ code: 'MESHTEL_ERR_LISTEN', message: expect.stringContaining('admin endpoint') });
  });

  it('close() ends a response that never finishes by itself', async () => {
    const port = await start();
    const server = servers.pop()!;
    const ended = new Promise<string>((resolve) => {
      http.get({ host: '127.0.0.1', port, path: '/forever', agent: false }, (res) => {
        res.on('data', () => {
          void server.close();
        });
        res.on('error', () => resolve('aborted'));
        res.on('close', () => resolve('closed'));
      });
    });
    expect(await ended).toMatch(/aborted|closed/);
    await server.close();
  });
});

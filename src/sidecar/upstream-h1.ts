/**
 * The node:http upstream (requests with a body, mTLS requests, WebSocket upgrades): keep-alive agents for
 * plain text and mTLS. A retry after a connection failure must not lose the body, so it is piped only once
 * the socket has connected and a refused connection leaves it untouched for the next attempt (Envoy
 * buffers for the same reason), and the upstream certificate (the principal) is read from node's socket.
 * An upgrade gets a connection of its own: an upgraded connection never returns to a pool.
 */
import http from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { ALPN_HTTP1_CLIENT, peerPrincipalOf } from './tls.js';
import type { SidecarTls } from './tls.js';
import type { UpstreamCall, UpstreamHandlers, UpstreamPool, UpstreamPoolOptions, UpstreamTarget, UpstreamUpgradeHandlers } from './upstream.js';
import { ReadableResponse } from './upstream-response.js';

/** The node:http side of the pool: requests with a body, mTLS requests, and upgrades. */
export interface NodeHttpUpstream {
  readonly request: UpstreamPool['request'];
  readonly upgrade: UpstreamPool['upgrade'];
  /** Destroy every pooled socket. */
  close(): void;
}

/** Create the keep-alive node:http (and, with TLS, node:https) agents. */
export function createNodeHttpUpstream(options: UpstreamPoolOptions, maxSockets: number, keepAliveTimeoutMs: number): NodeHttpUpstream {
  // `timeout` is the agent's free-socket idle timeout: node destroys a pooled socket idle that long, and
  // lowers it to the server's `Keep-Alive: timeout=` hint minus 1 s (a hint of 1 s: not reused at all).
  // It also arms the socket timer while a request runs, which the agent ignores for a busy socket.
  const plainAgent = new http.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo', timeout: keepAliveTimeoutMs });
  const tlsAgent = options.tls
    ? new https.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo', timeout: keepAliveTimeoutMs, ...agentTlsOptions(options.tls) })
    : undefined;


  function h1(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, body: Readable | null, handlers: UpstreamHandlers, onBodyChunk?: (chunk: Buffer) => void): UpstreamCall {
    let settled = false;
    let connected = false;
    const agent = target.tls && tlsAgent ? tlsAgent : plainAgent;
    headers.host = authority;
    const req =
      target.tls && tlsAgent && options.tls
        ? https.request({ agent, host: target.host, port: target.port, method, path, headers, setHost: false, checkServerIdentity: options.tls.identityCheck(target.identity) })
        : http.request({ agent, host: target.host, port: target.port, method, path, headers, setHost: false });
    const start = (): void => {
      connected = true;
      // The tap goes on together with the pipe: a 'data' listener added earlier would start the flow
      // before anyone consumes it.
      if (body) {
        if (onBodyChunk) body.on('data', onBodyChunk);
        body.pipe(req);
      } else req.end();
    };
    if (body === null) {
      // Nothing to lose on a failed connect: end at once (saves a listener and a tick per request).
      req.end();
      req.once('socket', (socket) => {
        if (socket.connecting) socket.once('connect', () => (connected = true));
        else connected = true;
      });
    } else {
      req.on('socket', (socket) => {
        if (socket.connecting) socket.once('connect', start);
        else start();
      });
    }
    req.on('response', (res) => {
      if (settled) return;
      settled = true;
      const principal = target.tls ? peerPrincipalOf(res.socket as TLSSocket) : '';
      handlers.onUpstreamResponse(new ReadableResponse(res.statusCode ?? 0, res.headers, res, () => res.trailers, false, principal, 0));
    });
    req.on('error', (err) => {
      if (settled) return;
      settled = true;
      // A stale keep-alive socket reset before anything was answered is a connection failure too,
      // provided no body byte was consumed (bodyless requests).
      const staleReuse = req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && body === null;
      handlers.onUpstreamError(!connected || staleReuse ? 'connect' : 'reset', err);
    });
    return {
      abort() {
        settled = true;
        req.destroy();
      },
    };
  }

  function upgrade(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, handlers: UpstreamUpgradeHandlers): UpstreamCall {
    let settled = false;
    let connected = false;
    headers.host = authority;
    const req =
      target.tls && options.tls
        ? https.request({ ...agentTlsOptions(options.tls), agent: false, host: target.host, port: target.port, method, path, headers, setHost: false, checkServerIdentity: options.tls.identityCheck(target.identity) })
        : http.request({ agent: false, host: target.host, port: target.port, method, path, headers, setHost: false });
    req.once('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => (connected = true));
      else connected = true;
    });
    req.on('upgrade', (res, socket: Socket, head: Buffer) => {
      if (settled) {
        socket.destroy();
        return;
      }
      settled = true;
      handlers.onUpstreamUpgrade(res.headers, socket, head, target.tls ? peerPrincipalOf(socket as TLSSocket) : '');
    });
    req.on('response', (res) => {
      if (settled) return;
      settled = true;
      handlers.onUpstreamResponse(new ReadableResponse(res.statusCode ?? 0, res.headers, res, () => res.trailers, false, target.tls ? peerPrincipalOf(res.socket as TLSSocket) : '', 0));
    });
    req.on('error', (err) => {
      if (settled) return;
      settled = true;
      handlers.onUpstreamError(connected ? 'reset' : 'connect', err);
    });
    req.end();
    return {
      abort() {
        settled = true;
        req.destroy();
      },
    };
  }

  return {
    request: h1,
    upgrade,
    close() {
      plainAgent.destroy();
      tlsAgent?.destroy();
    },
  };
}

/**
 * The agent's TLS options without an identity check: that goes per request (the endpoint's expected
 * identity), and node lets an agent's own options override the request's.
 */
function agentTlsOptions(t: SidecarTls): tls.ConnectionOptions {
  const o = t.clientOptions(ALPN_HTTP1_CLIENT);
  delete o.checkServerIdentity;
  return o;
}

/**
 * The undici upstream: bodyless plain-text requests (bench/sidecar.bench.ts measured a bare undici proxy
 * at ~1.2-1.5x the throughput of a bare node:http one), driven through undici's handler interface
 * (`dispatch`, on which its own `request()` is built) rather than `request()`: no promise,
 * AbortController, AsyncResource or body stream per request, the body goes from undici's parser to the
 * downstream response (see {@link UndiciAttempt}).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { UndiciAgent, parseHeaders as undiciParseHeaders } from './undici-agent.js';
import type { Dispatcher } from 'undici';
import { createBoundedMemo } from '../core/bounded-memo.js';
import type { UpstreamBodySink, UpstreamCall, UpstreamHandlers, UpstreamResponse, UpstreamTarget } from './upstream.js';

/** The undici side of the pool: bodyless plain-text requests. */
export interface UndiciUpstream {
  request(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, handlers: UpstreamHandlers): UpstreamCall;
  /** Resolves once undici's pool has released its sockets and timers. */
  close(): Promise<void>;
}

/** Create the undici Agent (keep-alive pools per origin). */
export function createUndiciUpstream(maxSockets: number, keepAliveTimeoutMs: number): UndiciUpstream {
  // No undici request timeouts: the route timeout (UT) is the only one, as in Envoy's default. An idle
  // pooled socket lives `keepAliveTimeoutMs`, or the upstream's `Keep-Alive: timeout=` hint minus undici's
  // 2 s threshold when that is shorter (keepAliveMaxTimeout caps a longer hint at the same value).
  const undici = new UndiciAgent({ connections: maxSockets, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: keepAliveTimeoutMs, keepAliveMaxTimeout: keepAliveTimeoutMs });


  function bodyless(target: UpstreamTarget, method: string, path: string, authority: string, headers: OutgoingHttpHeaders, handlers: UpstreamHandlers): UpstreamCall {
    headers.host = authority;
    const attempt = new UndiciAttempt(handlers);
    undici.dispatch({ origin: originOf(target), path, method: method as Dispatcher.HttpMethod, headers: headers as Record<string, string>, body: null }, attempt);
    return attempt;
  }

  return {
    request: bodyless,
    close: () => undici.destroy().catch(() => {}),
  };
}

/** Errors that mean no connection was made (nothing was sent, safe to retry). */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * undici origin of a target, memoised per host and port (the inbound app is one origin for ever). Bounded:
 * passthrough traffic can name any host, and the memo only saves a string build.
 */
const origins = createBoundedMemo<string, string>(1024, (hostPort) => {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i);
  return `http://${host.includes(':') ? `[${host}]` : host}:${hostPort.slice(i + 1)}`;
});
function originOf(target: UpstreamTarget): string {
  return origins.get(`${target.host}:${target.port}`);
}

const PENDING = 0;
const RESPONDED = 1;
const DONE = 2;

/**
 * One bodyless attempt through undici, as its dispatcher handler (the legacy `onConnect`/`onHeaders`/
 * `onData`/`onComplete`/`onError` interface that undici's own `request()` implements), and at the same
 * time the {@link UpstreamCall} and the {@link UpstreamResponse}: one object per request. Written by
 * hand because it is the hottest path of the proxy: `undici.request()` adds a promise, an
 * AbortController listener, an AsyncResource scope and a body Readable per request, which made the
 * sidecar with telemetry off cost ~1.7x the CPU per request of a bare undici proxy.
 */
class UndiciAttempt implements UpstreamCall, UpstreamResponse, Dispatcher.DispatchHandler {
  status = 0;
  headers: IncomingHttpHeaders = {};
  readonly endStream = false;
  readonly peerPrincipal = '';
  readonly headBytes = 0;
  private state = PENDING;
  private paused = false;
  private abortRequest: ((err?: Error) => void) | undefined = undefined;
  private resumeParser: (() => void) | undefined = undefined;
  private sink: UpstreamBodySink | undefined = undefined;

  constructor(private readonly handlers: UpstreamHandlers) {}

  // --- undici handler ---

  onConnect(abort: (err?: Error) => void): void {
    // Abandoned while queued for a connection: abort as soon as undici allows it.
    if (this.state === DONE) abort();
    else this.abortRequest = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx informational heads are not forwarded (the final head follows).
    if (statusCode < 200 || this.state !== PENDING) return true;
    this.state = RESPONDED;
    this.status = statusCode;
    // latin1, as node:http decodes header values: the bytes pass through unchanged.
    this.headers = undiciParseHeaders(rawHeaders) as IncomingHttpHeaders;
    this.resumeParser = resume;
    this.handlers.onUpstreamResponse(this);
    return !this.paused;
  }

  onData(chunk: Buffer): boolean {
    const sink = this.sink;
    // No sink: drained or abandoned, the bytes are dropped.
    if (sink === undefined) return true;
    if (sink.onBodyData(chunk) === false) this.paused = true;
    return !this.paused;
  }

  onComplete(rawTrailers: (Buffer | string)[] | null): void {
    if (this.state !== RESPONDED) return;
    this.state = DONE;
    const sink = this.sink;
    this.sink = undefined;
    sink?.onBodyEnd(rawTrailers !== null && rawTrailers.length > 0 ? (undiciParseHeaders(rawTrailers) as IncomingHttpHeaders) : undefined);
  }

  onError(err: Error & { code?: string }): void {
    const state = this.state;
    this.state = DONE;
    if (state === PENDING) {
      this.handlers.onUpstreamError(CONNECT_ERRORS.has(err.code ?? '') ? 'connect' : 'reset', err);
    } else if (state === RESPONDED) {
      const sink = this.sink;
      this.sink = undefined;
      sink?.onBodyError(err);
    }
  }

  // --- UpstreamCall / UpstreamResponse ---

  abort(): void {
    if (this.state === DONE) return;
    this.state = DONE;
    this.sink = undefined;
    this.abortRequest?.();
  }

  destroy(): void {
    this.abort();
  }

  pipeBody(sink: UpstreamBodySink): void {
    if (this.state === RESPONDED) this.sink = sink;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeParser?.();
  }

  drain(): void {
    this.sink = undefined;
    this.resume();
  }
}

/**
 * How one request is routed and forwarded: the target (registry route, passthrough with the destination
 * guard, absolute-form), the inbound MX read and the span, the upstream request headers, the upstream call
 * with Istio's retries, and the response (head, body, trailers, WebSocket splice) back to the downstream.
 * The state it fills and the record it ends in are {@link StreamRecord}'s (stream-record.ts).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import net from 'node:net';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { firstHeader } from '../core/headers.js';
import { h2HeaderBlockBytes } from '../record/bytes.js';
import { UPSTREAM_PROTOCOL_ERROR_CODE, upstreamFailureOutcome } from '../record/outcome.js';
import { ResponseFlag } from '../stats/types.js';
import type { ResolvedDestination } from './destination-guard.js';
import { createGrpcMessageCounter } from './grpc-frames.js';
import type { Listener } from './http-proxy.js';
import type { ResolvedEndpoint } from './registry.js';
import { splitAuthority } from '../core/service-names.js';
import { STREAM, StreamRecord, onResponseClose, onResponseDrain, onResponseFinish, onRouteTimeout } from './stream-record.js';
import type { TaggedResponse } from './stream-record.js';
import { peerOf } from './telemetry-contract.js';
import { isUpstreamIdentityError } from './tls.js';
import type { UpstreamBodySink, UpstreamFailure, UpstreamHandlers, UpstreamResponse, UpstreamTarget } from './upstream.js';

/** Headers that end at this hop (RFC 9110 §7.6.1, plus `host`, which the pool sets from the authority). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);

/** The port an authority names, if any (cached for a repeated authority). */
function authorityPort(l: Listener, authority: string): number | undefined {
  if (authority !== l.lastAuthority) {
    l.lastAuthorityPort = splitAuthority(authority).port;
    l.lastAuthority = authority;
  }
  return l.lastAuthorityPort;
}

/**
 * One request through the listener, from the downstream head to the upstream's last byte (its state and
 * record: {@link StreamRecord}).
 */
export class ProxyStream extends StreamRecord implements UpstreamHandlers, UpstreamBodySink {
  private absolutePort: number | undefined = undefined;
  private upHeaders: OutgoingHttpHeaders | undefined = undefined;
  private attempt = 0;
  /** Passthrough to a DNS name: resolved and checked before the upstream call, then connected by address. */
  private resolveName: string | undefined = undefined;
  /** WebSocket: the downstream socket and the bytes read past the head, spliced to the upstream on 101. */
  private tunnel: Socket | undefined = undefined;
  private tunnelHead: Buffer | undefined = undefined;
  private passthroughAddress: string | undefined = undefined;

  start(): void {
    const l = this.l;
    const { telemetry, options } = l;
    const { req, res, reqHeaders, h2 } = this;
    const inbound = l.inbound;

    // --- target ---------------------------------------------------------------------------
    const forced = this.forcedCode;
    if (!inbound && !h2 && forced === 0 && this.path.charCodeAt(0) !== 47 /* '/' */) {
      // Absolute-form request from an app using us as HTTP_PROXY (RFC 9112 §3.2.2).
      try {
        const u = new URL(this.path);
        this.authority = u.host;
        this.path = `${u.pathname}${u.search}`;
        this.absolutePort = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
      } catch {
        // Not a URL: routed as an origin-form path below, which fails to match any route.
      }
    }
    const authority = this.authority;

    let localReply = 0;
    if (forced === 404) {
      // No route matches a pathless CONNECT: NR.
      localReply = 404;
      this.flags |= ResponseFlag.NR;
    } else if (inbound) {
      this.service = options.inboundService ?? null;
    } else {
      const route = options.fixedRoute ?? options.registry?.resolve(authority, this.absolutePort ?? 80);
      this.route = route;
      if (route) {
        this.service = route.service;
        if (route.endpoints.length === 0) {
          localReply = 503;
          this.flags |= ResponseFlag.UH;
        }
        if (l.inMesh && route.external) this.mxOn = false;
      } else if (options.registry?.hasHost(authority) === true) {
        // Known host, unknown port: no route (Envoy 404 NR).
        localReply = 404;
        this.flags |= ResponseFlag.NR;
      } else if (l.registryOnly) {
        // Istio's block_all catch-all virtual host: direct response 502, cluster BlackHoleCluster.
        this.special = 'BlackHoleCluster';
        localReply = 502;
      } else {
        this.special = 'PassthroughCluster';
        if (l.inMesh) this.mxOn = false;
        const guard = options.destinationGuard;
        if (guard !== undefined) {
          const dst = splitAuthority(authority);
          const refused = guard.check(dst.host, dst.port ?? this.absolutePort ?? 80);
          // A name is checked once resolved (below, before the upstream call).
          if (refused === undefined && net.isIP(dst.host) === 0) this.resolveName = dst.host;
          if (refused !== undefined) {
            // What Envoy's blackhole filter chains do for such destinations (see destination-guard.ts).
            this.special = 'BlackHoleCluster';
            localReply = 502;
            options.refusals?.count('outbound', refused);
          }
        }
      }
    }

    // An upgrade the route does not allow: 403 before any filter runs (HCM `upgrade_failed`), when a route
    // matched at all (no route stays 404 NR).
    if (forced === 403 && localReply !== 404) {
      localReply = 403;
      this.flags = 0;
    }

    if (l.telemetryOn) {
      // --- downstream MX (inbound) --------------------------------------------------------
      if (inbound) {
        const extract = telemetry.readRequestPeer(reqHeaders, this.conn?.peerPrincipal);
        this.extract = extract;
        this.peer = peerOf(extract);
        if (!extract.result.ok) this.unknownReason = extract.result.reason;
      }
      const route = this.route;
      this.span = telemetry.tracer.startSpan(
        reqHeaders as Record<string, string | string[] | undefined>,
        l.tracing
          ? {
              kind: inbound ? 'server' : 'client',
              method: this.method,
              url: `http://${authority}${this.path}`,
              authority,
              protocol: h2 ? 'HTTP/2' : 'HTTP/1.1',
              peerAddress: req.socket?.remoteAddress,
              port: route !== undefined ? route.port : (authorityPort(l, authority) ?? options.app?.port ?? 80),
              serviceHost: this.service?.host,
            }
          : l.staticSpanInfo,
      );
      if (this.grpc) {
        this.reqCounter = createGrpcMessageCounter();
        this.respCounter = createGrpcMessageCounter();
      }
    }
    if (h2) this.h2ReqBytes = h2HeaderBlockBytes(reqHeaders);

    // Downstream went away before we finished: Envoy DC, code 0 when nothing was sent.
    (res as TaggedResponse)[STREAM] = this;
    res.on('close', onResponseClose);
    res.on('finish', onResponseFinish);

    if (localReply !== 0) {
      this.reply(localReply, 0);
      return;
    }

    // --- upstream request headers ---------------------------------------------------------
    const upHeaders: OutgoingHttpHeaders = {};
    for (const name in reqHeaders) {
      const v = reqHeaders[name];
      // undefined: an MX header the exchange stripped.
      if (v === undefined || HOP_BY_HOP.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
      upHeaders[name] = v;
    }
    if (firstHeader(reqHeaders.te) === 'trailers') upHeaders.te = 'trailers';
    if (this.tunnel !== undefined) {
      upHeaders.connection = 'upgrade';
      upHeaders.upgrade = reqHeaders.upgrade;
    }
    if (!inbound && this.mxOn) telemetry.writeRequestPeer(upHeaders);
    this.span?.inject(upHeaders as Record<string, string | string[] | undefined>);
    this.upHeaders = upHeaders;

    if (l.timeoutMs > 0) {
      this.timer = setTimeout(onRouteTimeout, l.timeoutMs, this);
      this.timer.unref();
    }
    if (this.resolveName !== undefined) {
      const port = splitAuthority(authority).port ?? this.absolutePort ?? 80;
      options.destinationGuard?.resolve(this.resolveName, port, (outcome) => this.onResolved(outcome));
      return;
    }
    this.send();
  }

  /** The passthrough name resolved: refused like the IP it names, else the connection goes to that address. */
  private onResolved(outcome: ResolvedDestination | undefined): void {
    if (this.done) return;
    if (outcome?.refused !== undefined) {
      this.special = 'BlackHoleCluster';
      this.l.options.refusals?.count('outbound', outcome.refused);
      this.reply(502, 0);
      return;
    }
    this.passthroughAddress = outcome?.address;
    this.send();
  }

  /**
   * The upstream's response head as the downstream gets it: the peer read from its MX (outbound),
   * hop-by-hop headers removed, this proxy's MX added (inbound).
   */
  private responseHead(upHead: IncomingHttpHeaders, peerPrincipal: string): OutgoingHttpHeaders {
    const l = this.l;
    if (!l.inbound && this.mxOn) {
      const ex = l.telemetry.readResponsePeer(upHead, peerPrincipal);
      this.peer = peerOf(ex);
      if (!ex.result.ok) this.unknownReason = ex.result.reason;
    } else if (!l.inbound && l.telemetryOn) {
      this.unknownReason = 'mx_disabled';
    }
    const out: OutgoingHttpHeaders = {};
    for (const name in upHead) {
      const v = upHead[name];
      // undefined: an MX header the exchange stripped.
      if (v === undefined || HOP_BY_HOP.has(name)) continue;
      out[name] = v;
    }
    if (this.extract) l.telemetry.writeResponsePeer(out, this.extract);
    return out;
  }

  /** This request asks for a WebSocket upgrade: on 101 the two sockets are spliced. */
  tunnelTo(socket: Socket, head: Buffer): void {
    this.tunnel = socket;
    this.tunnelHead = head;
  }

  /**
   * The upstream accepted the upgrade. Recorded as Envoy records an upgraded stream: code 101, the
   * stream's wire bytes both ways for its whole life, duration until it closes; DC when the downstream
   * closed it, no flag when the upstream ended it (the WebSocket server closes the TCP connection first).
   */
  onUpstreamUpgrade(headers: IncomingHttpHeaders, up: Socket, upHead: Buffer, peerPrincipal: string): void {
    const down = this.tunnel;
    if (this.done || this.headSent || down === undefined || down.destroyed) {
      up.destroy();
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.upstreamPrincipal = peerPrincipal;
    const out = this.responseHead(headers, peerPrincipal);
    this.respHeadersOut = out;
    this.status = 101;
    this.headSent = true;
    let head = `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${firstHeader(headers.upgrade) ?? 'websocket'}\r\n`;
    for (const name in out) {
      const v = out[name];
      for (const one of Array.isArray(v) ? v : [v]) head += `${name}: ${String(one)}\r\n`;
    }
    down.write(`${head}\r\n`);
    if (upHead.length > 0) down.write(upHead);
    const early = this.tunnelHead;
    if (early !== undefined && early.length > 0) up.write(early);
    up.setNoDelay(true);
    up.on('error', () => {});
    // The upstream ending is the stream's normal end; the downstream closing first is DC (onDownstreamClose).
    up.once('end', () => (this.ended = true));
    up.once('close', () => {
      this.ended = true;
      down.destroySoon();
    });
    down.once('close', () => up.destroy());
    down.pipe(up);
    up.pipe(down);
  }

  private targetFor(ep: ResolvedEndpoint | undefined): UpstreamTarget | undefined {
    if (this.l.inbound) return this.l.appTarget;
    const route = this.route;
    if (route) {
      if (!ep) return undefined;
      return { host: ep.address, port: ep.port, h2: route.protocol !== 'http', tls: this.l.mtls && ep.sidecar && !route.external, identity: ep.identity };
    }
    // Passthrough: the original destination of the Host header.
    const { host, port } = splitAuthority(this.authority);
    return { host: this.passthroughAddress ?? host, port: port ?? this.absolutePort ?? 80, h2: this.h2, tls: false };
  }

  private send(): void {
    const ep = this.route?.pick();
    if (ep) this.endpointPeer = ep.workload;
    const target = this.targetFor(ep);
    if (!target) {
      this.reply(503, ResponseFlag.UH);
      return;
    }
    const upHeaders = this.upHeaders as OutgoingHttpHeaders;
    if (this.tunnel !== undefined) {
      this.call = this.l.pool.upgrade(target, this.method, this.path, this.authority, this.attempt === 0 ? upHeaders : { ...upHeaders }, this);
      return;
    }
    this.call = this.l.pool.request(
      target,
      this.method,
      this.path,
      this.authority,
      // A retry gets its own copy: the pool adds `host` to the object it is given.
      this.attempt === 0 ? upHeaders : { ...upHeaders },
      this.body(),
      this,
      this.reqCounter || this.h2 ? (chunk: Buffer) => this.countRequestChunk(chunk) : undefined,
    );
  }

  private body(): Readable | null {
    const m = this.method;
    const reqHeaders = this.reqHeaders;
    // GET/HEAD without a declared body: send none (lets a stale keep-alive socket be retried).
    if ((m === 'GET' || m === 'HEAD') && reqHeaders['content-length'] === undefined && reqHeaders['transfer-encoding'] === undefined && !this.h2) return null;
    return this.req as Readable;
  }

  onUpstreamError(kind: UpstreamFailure, err: Error): void {
    if (this.done) return;
    if (isUpstreamIdentityError(err)) {
      // A certificate of the wrong workload fails the handshake: a connection failure (Envoy UF), and
      // retried on the next endpoint like one.
      kind = 'connect';
      this.l.options.refusals?.count('outbound', 'upstream_san_mismatch');
    }
    if (kind === 'connect' && !this.l.inbound && this.attempt < this.l.retries) {
      this.attempt++;
      this.send();
      return;
    }
    this.l.logger.debug('upstream failure', { kind, err, authority: this.authority });
    const outcome = upstreamFailureOutcome(kind, err, this.attempt > 0 && this.attempt >= this.l.retries);
    this.reply(outcome.responseCode, outcome.responseFlags);
  }

  onUpstreamResponse(up: UpstreamResponse): void {
    if (this.done || this.headSent) {
      up.destroy();
      return;
    }
    const l = this.l;
    const { res, h2, grpc } = this;
    this.upstreamPrincipal = up.peerPrincipal;
    const upHead = up.headers;
    const out = this.responseHead(upHead, up.peerPrincipal);
    const status = up.status;
    this.status = status;
    if (grpc) {
      const gs = firstHeader(upHead['grpc-status']);
      if (gs !== undefined) this.grpcStatus = gs;
    }
    this.respHeadersOut = out;
    this.headSent = true;
    if (h2) this.h2RespBytes += h2HeaderBlockBytes(out);
    if (this.reqCounter && this.respCounter && l.telemetryOn) {
      this.periodic = true;
      l.ticker.add(this);
    }
    if (h2 && up.endStream) {
      // gRPC trailers-only response (grpc-status in the head, END_STREAM): forward it the same way;
      // the compatibility API cannot, so the stream answers directly.
      this.ended = true;
      try {
        (res as Http2ServerResponse).stream.respond({ ':status': status, ...out }, { endStream: true });
      } catch (err) {
        l.logger.warnOnce('bad-upstream-head', 'upstream response head cannot be forwarded', { err });
        res.destroy();
      }
      up.drain();
      this.finish();
      return;
    }
    try {
      res.writeHead(status, out as Record<string, string>);
    } catch (err) {
      l.logger.warnOnce('bad-upstream-head', 'upstream response head cannot be forwarded', { err });
      up.destroy();
      this.headSent = false;
      this.reply(UPSTREAM_PROTOCOL_ERROR_CODE, ResponseFlag.UPE);
      return;
    }
    this.upstream = up;
    up.pipeBody(this);
  }

  onBodyData(chunk: Buffer): boolean {
    if (this.h2) this.h2RespBytes += chunk.length + 9;
    if (this.respCounter) this.respCounter.push(chunk);
    if ((this.res as ServerResponse).write(chunk)) return true;
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onBodyEnd(trailers: IncomingHttpHeaders | undefined): void {
    if (trailers) {
      const t: Record<string, string> = {};
      let any = false;
      for (const name in trailers) {
        if (name.charCodeAt(0) === 58) continue;
        const v = trailers[name];
        if (v === undefined) continue;
        t[name] = Array.isArray(v) ? v.join(', ') : v;
        any = true;
      }
      if (any) {
        // grpc-status is read from trailers first, then headers (envoy grpc Common::getGrpcStatus).
        if (this.grpc && t['grpc-status'] !== undefined) this.grpcStatus = t['grpc-status'];
        if (this.h2) this.h2RespBytes += h2HeaderBlockBytes(t);
        this.res.addTrailers(t);
      }
    }
    this.res.end();
  }

  onBodyError(): void {
    // Upstream died mid-body: Envoy resets the downstream and flags UC (its reset, so no DC).
    this.flags |= ResponseFlag.UC;
    this.resetByProxy = true;
    this.res.destroy();
  }

  onBodyAborted(): void {
    this.flags |= ResponseFlag.UC;
  }
}

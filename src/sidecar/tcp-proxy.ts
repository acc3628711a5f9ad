/**
 * TCP listeners with Istio's TCP metadata exchange (istio/proxy `source/extensions/filters/network/
 * metadata_exchange/metadata_exchange.cc`): each side writes its `istio-peer-exchange` frame before
 * its first application bytes and reads and drains the peer's frame from the incoming stream. A peer
 * that does not start with the magic is not MX: its bytes flow through untouched.
 *
 * Istio gates TCP MX on ALPN `istio-peer-exchange`, which needs TLS: under mutual TLS each side writes and
 * reads a frame only when the handshake chose it (the filter's `nextProtocol() != protocol` check in
 * `onData`/`onWrite`), so with PILOT_DISABLE_MX_ALPN (src/sidecar/tls.ts) no frame is written and the peer is
 * the endpoint's metadata (client) or unknown but for its certificate (server). In plain text this proxy
 * sends its frame only to registry endpoints marked `sidecar: true`, and the inbound side answers
 * with its frame only after it has read a peer frame, so a sidecar-less peer never sees one.
 *
 * Stats: opened once the peer is known (or at close); the stats stage reports byte deltas every
 * reporting interval and at close (istio/proxy `istio_stats.cc` network filter).
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../core/logger.js';
import type { PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import { inboundClusterName } from '../record/cluster.js';
import { tcpUpstreamErrorFlag } from '../record/outcome.js';
import type { ConnectionAttributes, ServiceInfo } from '../stats/types.js';
import { bind } from './http-listener.js';
import type { BoundListener } from './http-listener.js';
import { closeOnTlsClientError } from './listener-limits.js';
import type { ListenerLimits, ProxyRefusals } from './listener-limits.js';
import type { ServiceRoute } from './registry.js';
import type { SidecarTelemetry, TcpRecorder } from './telemetry-contract.js';
import { ALPN_PEER_EXCHANGE } from '../metadata/tcp-frame.js';
import { isUpstreamIdentityError, peerPrincipalOf } from './tls.js';
import type { SidecarTls } from './tls.js';
import { createPermissiveServer } from './permissive.js';
import type { MtlsMode } from './permissive.js';

/** Options shared by both TCP directions. */
export interface TcpProxyOptions {
  readonly telemetry: SidecarTelemetry;
  readonly logger: Logger;
  /** Connect timeout for the upstream, ms. */
  readonly connectTimeoutMs?: number;
  /** Listener limits (TCP applies `maxConnections`, and `headersTimeoutMs` to the TLS handshake). */
  readonly limits: ListenerLimits;
  readonly refusals: ProxyRefusals;
}

/** Options of {@link listenTcpInbound}. */
export interface TcpInboundOptions extends TcpProxyOptions {
  readonly host: string;
  readonly port: number;
  readonly app: { readonly host: string; readonly port: number };
  readonly service: ServiceInfo | null;
  readonly tls?: SidecarTls;
  /** With `tls`: `STRICT` (default) or `PERMISSIVE` (src/sidecar/permissive.ts). */
  readonly mtlsMode?: MtlsMode;
}

/** Options of {@link listenTcpOutbound}. */
export interface TcpOutboundOptions extends TcpProxyOptions {
  readonly host: string;
  readonly port: number;
  readonly route: ServiceRoute;
  readonly tls?: SidecarTls;
}

/** The per-connection stats bookkeeping, shared by both directions. */
class TcpStatsSession {
  private recorder: TcpRecorder | undefined;
  private received = 0;
  private sent = 0;
  private closed = false;
  constructor(
    private readonly telemetry: SidecarTelemetry,
    private readonly base: Omit<ConnectionAttributes, 'peer' | 'peerUnknownReason'>,
  ) {}

  /** Bytes from the downstream. */
  received_(n: number): void {
    if (this.recorder) this.recorder.addReceived(n);
    else this.received += n;
  }

  /** Bytes to the downstream. */
  sent_(n: number): void {
    if (this.recorder) this.recorder.addSent(n);
    else this.sent += n;
  }

  /** The peer is settled: open the connection series and start periodic reports. */
  open(peer: PeerMetadata | null, reason: UnknownPeerReason | undefined, extra: Partial<ConnectionAttributes> = {}): void {
    if (this.recorder || this.closed || !this.telemetry.enabled) return;
    if (peer === null && reason !== undefined) this.telemetry.recordPeerUnknown(reason, this.base.reporter);
    const attrs: ConnectionAttributes = { ...this.base, ...extra, peer, ...(peer === null && reason ? { peerUnknownReason: reason } : {}) };
    this.recorder = this.telemetry.openTcp(attrs);
    if (this.received > 0) this.recorder.addReceived(this.received);
    if (this.sent > 0) this.recorder.addSent(this.sent);
    this.received = 0;
    this.sent = 0;
  }

  close(fallbackReason: UnknownPeerReason, fallbackPeer: PeerMetadata | null = null, responseFlags = 0): void {
    if (this.closed) return;
    if (!this.recorder) this.open(fallbackPeer, fallbackReason);
    this.closed = true;
    this.recorder?.close(responseFlags);
  }
}

/**
 * Envoy's tcp_proxy `idle_timeout` (1 h by default): no byte in either direction for `ms` closes both
 * connections, counted (Envoy `tcp.<prefix>.idle_timeout`); the connection is recorded as closed, no flag.
 * Every byte of both directions crosses the downstream socket, so its inactivity timer is the one to arm.
 */
function idleTimeout(down: Socket, up: Socket, options: TcpProxyOptions, role: 'inbound' | 'outbound'): void {
  down.setTimeout(options.limits.tcpIdleTimeoutMs, () => {
    options.refusals.count(role, 'tcp_idle_timeout');
    up.destroy();
    down.destroy();
  });
}

/** Pipe `from` into `to` with backpressure, counting bytes. */
function pump(from: Socket, to: Socket, count: (n: number) => void): void {
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('end', () => to.end());
}

/** Inbound TCP: the peer sidecar (or a plain client) → this app. */
export async function listenTcpInbound(options: TcpInboundOptions): Promise<BoundListener> {
  const { telemetry, logger } = options;
  const mx = telemetry.enabled;
  const inboundCluster = inboundClusterName(options.app.port);
  // `alpn`: what the TLS handshake chose (false: none), or null in plain text.
  const handle = (down: Socket, peerPrincipal: string, localPrincipal: string, alpn: string | false | null): void => {
    const stats = new TcpStatsSession(telemetry, {
      reporter: 'destination',
      peerPrincipal,
      localPrincipal,
      service: options.service,
      remoteAddress: down.remoteAddress,
      clusterName: inboundCluster,
    });
    // Half-open on every socket: a client's FIN must reach the app without cutting its answer.
    const up = net.connect({ host: options.app.host, port: options.app.port, allowHalfOpen: true });
    up.setNoDelay(true);
    idleTimeout(down, up, options, 'inbound');
    let upReady = false;
    // Backpressure toward the app: node queues writes made while connecting and reports false past
    // its high-water mark (16 KiB), so the downstream is paused until the app side drains, both while
    // connecting and after. At most one chunk beyond the mark is ever held (it was 512 MiB and more
    // with an app that did not read).
    const resumeDown = (): void => {
      down.resume();
    };
    // Only the bytes that reach the app are counted, never the istio-peer-exchange frames either way: Envoy's MX
    // network filter drains the peer's frame and writes its own outside tcp_proxy, whose byte counts istio_stats
    // reports (istio/proxy testdata/metric/tcp_server_{received,sent}_bytes.yaml.tmpl: 10 connections of "world\n"
    // in, "hello world\n" out are 60 and 120, frames excluded).
    const toUp = (b: Buffer): void => {
      stats.received_(b.length);
      if (!up.write(b) && !down.isPaused()) {
        down.pause();
        up.once('drain', resumeDown);
      }
    };
    up.once('connect', () => {
      upReady = true;
    });
    // Under TLS the exchange runs only over its ALPN; plain text is sniffed for a frame.
    const alpnMx = alpn === ALPN_PEER_EXCHANGE;
    const exchange = mx && (alpn === null || alpnMx);
    // Downstream bytes: first through the MX parser, then straight to the app.
    const parser = exchange ? telemetry.createTcpParser() : undefined;
    let decided = !exchange;
    let frameSent = false;
    const sendFrame = (): void => {
      if (frameSent) return;
      frameSent = true;
      down.write(telemetry.tcpFrame);
    };
    // Under mTLS with the MX ALPN the peer expects our frame before anything else.
    if (alpnMx && mx) sendFrame();
    // Another ALPN: no exchange, the peer is known by its certificate only (Envoy sets NoPeer at once).
    if (mx && !exchange) stats.open(null, 'mx_disabled');
    const decide = (peer: PeerMetadata | null, reason: UnknownPeerReason | undefined, isMx: boolean): void => {
      decided = true;
      if (isMx && mx) sendFrame();
      stats.open(peer, reason);
    };
    down.on('data', (chunk: Buffer) => {
      if (decided || !parser) {
        toUp(chunk);
        return;
      }
      const step = parser.push(chunk);
      if (!step.done) return;
      const isMx = step.result.ok || step.result.reason !== 'not_mx';
      decide(step.result.ok ? step.result.peer : null, step.result.ok ? undefined : step.result.reason, isMx);
      if (step.rest.length > 0) toUp(step.rest);
    });
    down.on('end', () => {
      if (!decided && parser) {
        const step = parser.end();
        if (step.done) {
          decide(null, step.result.ok ? undefined : step.result.reason, false);
          if (step.rest.length > 0) toUp(step.rest);
        }
      }
      if (upReady) up.end();
      else up.once('connect', () => up.end());
    });
    // App → downstream. A server-first app on a plain-text connection decides "not MX".
    up.on('data', (chunk: Buffer) => {
      if (!decided) decide(null, 'no_header', false);
      stats.sent_(chunk.length);
      if (!down.write(chunk)) {
        up.pause();
        down.once('drain', () => up.resume());
      }
    });
    up.on('end', () => down.end());
    let closedCount = 0;
    const onClose = (): void => {
      closedCount++;
      if (closedCount === 2) stats.close('no_header', null, appFlags);
    };
    const onError = (err: Error): void => {
      logger.debug('tcp inbound error', { err });
      down.destroy();
      up.destroy();
    };
    // The app refused (UF) or reset (UC) the connection: Envoy's tcp_proxy flags.
    let appFlags = 0;
    down.on('error', onError);
    up.on('error', (err) => {
      appFlags |= tcpUpstreamErrorFlag(upReady);
      onError(err);
    });
    down.on('close', () => {
      up.destroy();
      onClose();
    });
    up.on('close', () => {
      if (!down.writableEnded) down.end();
      onClose();
    });
  };

  let server: net.Server;
  if (options.tls) {
    const t = options.tls;
    const tlsServer = tls.createServer({ ...t.serverOptions(), allowHalfOpen: true, handshakeTimeout: options.limits.headersTimeoutMs }, (socket: TLSSocket) => handle(socket, peerPrincipalOf(socket), t.localPrincipal, socket.alpnProtocol ?? false));
    closeOnTlsClientError(tlsServer, options.refusals, 'inbound');
    // PERMISSIVE: plain-text clients share the port (client-first protocols only, as with Envoy's tls_inspector).
    server =
      options.mtlsMode === 'PERMISSIVE'
        ? createPermissiveServer({
            tlsServer,
            onPlain: (socket) => handle(socket, '', '', null),
            firstByteTimeoutMs: options.limits.headersTimeoutMs,
            onTimeout: () => options.refusals.count('inbound', 'headers_timeout'),
            serverOptions: { allowHalfOpen: true },
          })
        : tlsServer;
  } else {
    server = net.createServer({ allowHalfOpen: true }, (socket) => handle(socket, '', '', null));
  }
  return bind(server, { host: options.host, port: options.port, name: 'tcp-inbound', logger, role: 'inbound', limits: options.limits, refusals: options.refusals });
}

/** Outbound TCP: this app → a registry service's endpoints. */
export async function listenTcpOutbound(options: TcpOutboundOptions): Promise<BoundListener> {
  const { telemetry, logger, route } = options;
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    down.setNoDelay(true);
    const ep = route.pick();
    const useTls = options.tls !== undefined && ep?.sidecar === true && !route.external;
    // Plain text: to sidecar endpoints; mutual TLS: also only when the handshake chose istio-peer-exchange.
    const wantMx = telemetry.enabled && ep?.sidecar === true;
    let upstreamPrincipal = '';
    const stats = new TcpStatsSession(telemetry, {
      reporter: 'source',
      peerPrincipal: '',
      localPrincipal: '',
      service: route.service,
      remoteAddress: down.remoteAddress,
      clusterName: route.cluster,
    });
    const fallback = ep?.workload ?? null;
    if (!ep) {
      stats.close('no_peer_proxy');
      down.destroy();
      return;
    }
    const up: Socket = useTls && options.tls
      ? // node's tls.connect passes allowHalfOpen to the TLSSocket; @types/node does not list it.
        tls.connect({ ...options.tls.clientOptions(options.tls.tcpClientAlpn, ep.identity), host: ep.address, port: ep.port, ...({ allowHalfOpen: true } as object) })
      : net.connect({ host: ep.address, port: ep.port, allowHalfOpen: true });
    up.setNoDelay(true);
    idleTimeout(down, up, options, 'outbound');
    const principals = (): Partial<ConnectionAttributes> => (upstreamPrincipal ? { peerPrincipal: upstreamPrincipal, localPrincipal: options.tls?.localPrincipal ?? '' } : {});
    let parser: ReturnType<SidecarTelemetry['createTcpParser']> | undefined;
    let decided = true;
    // Our frame goes first on the upstream stream, before any app byte (node keeps write order).
    const startMx = (): void => {
      up.write(telemetry.tcpFrame);
      parser = telemetry.createTcpParser();
      decided = false;
    };
    const noMx = (): void => stats.open(fallback, telemetry.enabled ? 'mx_disabled' : undefined, principals());
    const toUp = (): void => pump(down, up, (n) => stats.received_(n));
    if (useTls) {
      // The app's bytes wait for the handshake: they must follow the frame when there is one.
      up.once('secureConnect', () => {
        upstreamPrincipal = peerPrincipalOf(up as TLSSocket);
        if (wantMx && (up as TLSSocket).alpnProtocol === ALPN_PEER_EXCHANGE) startMx();
        else noMx();
        toUp();
      });
    } else {
      if (wantMx) startMx();
      else up.once('connect', noMx);
      toUp();
    }
    up.on('data', (chunk: Buffer) => {
      if (!decided && parser) {
        const step = parser.push(chunk);
        if (!step.done) return;
        decided = true;
        stats.open(step.result.ok ? step.result.peer : fallback, step.result.ok ? undefined : step.result.reason, principals());
        chunk = step.rest;
        if (chunk.length === 0) return;
      }
      stats.sent_(chunk.length);
      if (!down.write(chunk)) {
        up.pause();
        down.once('drain', () => up.resume());
      }
    });
    up.on('end', () => {
      if (!decided && parser) {
        decided = true;
        const step = parser.end();
        if (step.done && step.rest.length > 0) {
          stats.sent_(step.rest.length);
          down.write(step.rest);
        }
        stats.open(fallback, step.done && !step.result.ok ? step.result.reason : 'truncated', principals());
      }
      down.end();
    });
    let closedCount = 0;
    const onClose = (): void => {
      closedCount++;
      if (closedCount === 2) stats.close('no_peer_proxy', fallback, closeFlags);
    };
    // Envoy's tcp_proxy flags a connection whose upstream never connected UF, one reset later UC.
    let connected = false;
    let closeFlags = 0;
    up.once(useTls ? 'secureConnect' : 'connect', () => (connected = true));
    up.on('error', (err) => {
      logger.debug('tcp upstream error', { err });
      if (isUpstreamIdentityError(err)) options.refusals.count('outbound', 'upstream_san_mismatch');
      closeFlags |= tcpUpstreamErrorFlag(connected);
      down.destroy();
    });
    down.on('error', () => up.destroy());
    down.on('close', () => {
      up.destroy();
      onClose();
    });
    up.on('close', () => {
      if (!down.destroyed) down.end();
      onClose();
    });
  });
  return bind(server, { host: options.host, port: options.port, name: `tcp-outbound ${route.service.host}:${route.port}`, logger, role: 'outbound', limits: options.limits, refusals: options.refusals });
}

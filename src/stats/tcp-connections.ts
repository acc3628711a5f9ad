/**
 * Which TCP connections are open and what they have not reported yet: each connection's byte deltas, reported
 * every `tcpReportingIntervalMs` (Istio's `tcp_reporting_duration`) and at close, under the label group fixed at
 * its first report (istio_stats.cc `TcpStatsFilter`).
 */
import type { ConnectionAttributes } from './types.js';
import { METRIC } from './definitions.js';
import type { Group, PeerContext, SeriesCache } from './series-cache.js';
import type { ModeState } from './stats-plan.js';
import type { TcpConnectionStats } from './istio-stats.js';

/** What a connection reports through (the recorder). */
export interface TcpRecorder {
  readonly cache: SeriesCache;
  /** Add a non-negative finite delta to a counter series of a group. */
  addCounter(g: Group, m: number, delta: number): void;
  /** Count a failed recording. */
  fail(err: unknown): void;
  /** The connection closed: forget it, record custom metrics. */
  connClosed(conn: TcpConn, attrs: ConnectionAttributes | undefined, ctx: PeerContext): void;
}

/** One TCP connection's pending byte deltas. */
export class TcpConn implements TcpConnectionStats {
  private ctx: PeerContext | undefined;
  private mode: ModeState | undefined;
  private vals: string[] | undefined;
  private rx = 0;
  private tx = 0;
  private done = false;
  private cached: Group | undefined;
  private attrs: ConnectionAttributes | undefined;
  constructor(private readonly stats: TcpRecorder) {}

  /** Bind the connection to its peer context, mode and tag values (evaluated once, at open). */
  init(ctx: PeerContext, mode: ModeState, vals: string[] | undefined, attrs: ConnectionAttributes): void {
    this.attrs = attrs;
    this.ctx = ctx;
    this.mode = mode;
    this.vals = vals;
  }

  /** The label group for the given response flags (the flag-less one is kept). */
  group(flags: number): Group {
    if (flags === 0 && this.cached !== undefined && this.cached.gen === this.stats.cache.gen) return this.cached;
    const g = this.stats.cache.tcpGroup(this.ctx as PeerContext, this.mode as ModeState, this.vals, flags);
    if (flags === 0) this.cached = g;
    return g;
  }

  addReceived(bytes: number): void {
    if (!this.done && bytes > 0 && Number.isFinite(bytes)) this.rx += bytes;
  }

  addSent(bytes: number): void {
    if (!this.done && bytes > 0 && Number.isFinite(bytes)) this.tx += bytes;
  }

  flush(): void {
    this.flushWith(0);
  }

  private flushWith(flags: number): void {
    if (this.ctx === undefined || (this.rx === 0 && this.tx === 0)) return;
    try {
      const g = this.group(flags);
      this.stats.addCounter(g, METRIC.TCP_SENT, this.tx);
      this.stats.addCounter(g, METRIC.TCP_RECEIVED, this.rx);
    } catch (err) {
      this.stats.fail(err);
    }
    this.rx = 0;
    this.tx = 0;
  }

  close(responseFlags = 0): void {
    if (this.done) return;
    this.done = true;
    if (this.ctx === undefined) return;
    const flags = Number.isInteger(responseFlags) ? responseFlags & 0x1fffffff : 0;
    this.flushWith(flags);
    try {
      this.stats.addCounter(this.group(flags), METRIC.TCP_CLOSED, 1);
    } catch (err) {
      this.stats.fail(err);
    }
    this.stats.connClosed(this, this.attrs, this.ctx);
    this.attrs = undefined;
  }
}

/** The open connections of one recorder. */
export class TcpConnections {
  private readonly open = new Set<TcpConn>();

  add(conn: TcpConn): void {
    this.open.add(conn);
  }

  delete(conn: TcpConn): void {
    this.open.delete(conn);
  }

  /** Report every open connection's pending deltas now (the reporting timer calls it). */
  flushAll(): void {
    for (const c of this.open) c.flush();
  }

  /** Close every open connection (the recorder is closing). */
  closeAll(): void {
    for (const c of [...this.open]) c.close();
  }
}

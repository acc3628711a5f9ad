/**
 * How a finished request or connection changes the numbers (istio_stats.cc `onStreamComplete`, the TCP filter's
 * reports, `recordCustomMetrics`): the recorder finds the label group through the series cache and adds to the
 * series it points at — a counter and three bucket lookups for HTTP; no label string is built and prom-client's
 * label API is never used on this path. Nothing here throws into the caller: failures are counted in
 * `meshtel_stats_errors_total`.
 */
import type { UnknownPeerReason } from '../metadata/types.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter } from './types.js';
import type { Logger } from '../core/logger.js';
import { METRIC } from './definitions.js';
import { grpcStatusCode } from './grpc-status.js';
import { escapeLabelValue, observe, type Family, type HistogramSeries, type ScalarSeries } from './series.js';
import type { ExpressionScope } from './expression.js';
import { simpleAtoiUnsigned, type CompiledCustomMetric } from './custom-metrics.js';
import { MAX_EXEMPLAR_TRACE_ID_LENGTH } from './series-budget.js';
import type { LabelLimits } from './label-limits.js';
import type { TagInputs, TagValues } from './tag-values.js';
import type { Group, PeerContext, SeriesCache } from './series-cache.js';
import { modeOf, type ModeState, type StatsPlan } from './stats-plan.js';
import { TcpConn, type TcpConnections, type TcpRecorder } from './tcp-connections.js';
import type { TcpConnectionStats } from './istio-stats.js';

/** What the recorder is built from. */
export interface RecorderParts {
  readonly plan: StatsPlan;
  readonly cache: SeriesCache;
  readonly tags: TagValues;
  readonly limits: LabelLimits;
  readonly istio: readonly Family[];
  readonly custom: readonly CompiledCustomMetric[];
  readonly peerUnknown: Family;
  readonly connections: TcpConnections;
  readonly clock: () => number;
  readonly logger: Logger;
}

/** The recording methods of the stats stage. */
export class Recorder implements TcpRecorder {
  readonly cache: SeriesCache;
  private readonly modes: readonly ModeState[];
  private readonly tags: TagValues;
  private readonly limits: LabelLimits;
  private readonly istio: readonly Family[];
  private readonly custom: readonly CompiledCustomMetric[];
  private readonly peerUnknown: Family;
  private readonly connections: TcpConnections;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private readonly unknownCache: Record<string, Record<string, ScalarSeries>> = Object.create(null) as Record<string, Record<string, ScalarSeries>>;
  /** Recordings dropped because of an internal error. */
  errors = 0;
  /** Set by close: recording is ignored from then on. */
  closed = false;

  constructor(p: RecorderParts) {
    this.cache = p.cache;
    this.modes = p.plan.modes;
    this.tags = p.tags;
    this.limits = p.limits;
    this.istio = p.istio;
    this.custom = p.custom;
    this.peerUnknown = p.peerUnknown;
    this.connections = p.connections;
    this.clock = p.clock;
    this.logger = p.logger;
  }

  /** One finished HTTP/gRPC stream: requests_total +1 and the three histograms. */
  recordHttp(a: HttpStreamAttributes): void {
    if (this.closed) return;
    let inputs: TagInputs | undefined;
    try {
      const mode = this.modes[modeOf(a.reporter)] as ModeState;
      const ctx = this.cache.context(a, a.authority);
      const code = a.responseCode;
      const grpc = grpcStatusCode(a.protocol, a.grpcStatus, code);
      const flags = a.responseFlags & 0x1fffffff;
      const proto = a.protocol === 'grpc' ? 1 : 0;
      let vals: string[] | undefined;
      if (mode.exprIds.length > 0 || this.custom.length > 0) {
        inputs = this.tags.acquire(a, a, ctx.reporter);
        if (mode.exprIds.length > 0) {
          this.tags.evaluate(mode, inputs);
          vals = inputs.vals;
        }
      }
      const g = this.cache.httpGroup(ctx, mode, proto, code, grpc, flags, vals);
      const ep = this.cache.epoch;
      const fams = this.istio;
      const c = g.s[METRIC.REQUESTS] as ScalarSeries | undefined;
      if (c !== undefined) {
        c.value += 1;
        c.epoch = ep;
        if (c.overflow) (fams[METRIC.REQUESTS] as Family).overflowCount++;
        if (hasExemplar(a.traceId)) c.exemplar = { traceId: a.traceId, value: 1, timestamp: this.clock() / 1000 };
      }
      // Envoy: requestComplete() in integer milliseconds (truncated).
      const d = a.durationMs > 0 ? Math.trunc(a.durationMs) : 0;
      this.observe(g, METRIC.DURATION, d, ep, a.traceId);
      this.observe(g, METRIC.REQUEST_BYTES, a.requestBytes > 0 ? a.requestBytes : 0, ep, undefined);
      this.observe(g, METRIC.RESPONSE_BYTES, a.responseBytes > 0 ? a.responseBytes : 0, ep, undefined);
      if (inputs !== undefined) {
        if (this.custom.length > 0) this.recordCustom(mode, this.tags.scopeOf(inputs), plainTextScope(ctx));
        this.tags.release(inputs);
      }
    } catch (err) {
      if (inputs !== undefined) this.tags.release(inputs);
      this.fail(err);
    }
  }

  private observe(g: Group, m: number, v: number, ep: number, traceId: string | undefined): void {
    const h = g.s[m] as HistogramSeries | undefined;
    if (h === undefined) return;
    const fam = this.istio[m] as Family;
    const i = observe(h, fam, v);
    h.epoch = ep;
    if (h.overflow) fam.overflowCount++;
    if (hasExemplar(traceId)) {
      h.exemplars ??= new Array<undefined>(h.counts.length);
      const e = { traceId, value: v, timestamp: this.clock() / 1000 };
      h.exemplars[i] = e;
      // As client_golang: the classic bucket keeps its latest exemplar, the native buckets a bounded recent set.
      h.native?.addExemplar(e);
    }
  }

  /** gRPC message-count deltas (periodic and final reports of streaming calls). */
  recordGrpcMessages(a: HttpStreamAttributes, requestMessages: number, responseMessages: number): void {
    if (this.closed) return;
    try {
      const mode = this.modes[modeOf(a.reporter)] as ModeState;
      const ctx = this.cache.context(a, a.authority);
      let g: Group;
      if (mode.exprIds.length === 0) g = this.cache.msgGroup(ctx, mode, undefined);
      else {
        const inputs = this.tags.acquire(a, a, ctx.reporter);
        try {
          this.tags.evaluate(mode, inputs);
          g = this.cache.msgGroup(ctx, mode, inputs.vals);
        } finally {
          this.tags.release(inputs);
        }
      }
      this.addCounter(g, METRIC.REQUEST_MESSAGES, requestMessages);
      this.addCounter(g, METRIC.RESPONSE_MESSAGES, responseMessages);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Add a non-negative finite delta to a counter series of a group. */
  addCounter(g: Group, m: number, delta: number): void {
    if (!(delta > 0) || !Number.isFinite(delta)) return;
    let s = g.s[m] as ScalarSeries | undefined;
    if (s === undefined) {
      const key = g.keys[m];
      if (key === undefined) return;
      s = (this.istio[m] as Family).get(key, this.cache.epoch, g.plainText) as ScalarSeries;
      g.s[m] = s;
    }
    s.value += delta;
    s.epoch = this.cache.epoch;
    if (s.overflow) (this.istio[m] as Family).overflowCount++;
  }

  /** A TCP connection whose peer is known: opened_total +1 now. */
  openTcp(a: ConnectionAttributes): TcpConnectionStats {
    const conn = new TcpConn(this);
    if (this.closed) return conn;
    try {
      const mode = this.modes[modeOf(a.reporter)] as ModeState;
      const ctx = this.cache.context(a, '');
      // Envoy evaluates TCP expressions once, just before the first emission.
      let vals: string[] | undefined;
      if (mode.exprIds.length > 0) {
        const inputs = this.tags.acquire(a, undefined, ctx.reporter);
        try {
          this.tags.evaluate(mode, inputs);
          vals = inputs.vals.slice(0, mode.exprIds.length);
        } finally {
          this.tags.release(inputs);
        }
      }
      conn.init(ctx, mode, vals, a);
      this.addCounter(conn.group(0), METRIC.TCP_OPENED, 1);
      this.connections.add(conn);
    } catch (err) {
      this.fail(err);
    }
    return conn;
  }

  connClosed(conn: TcpConn, attrs: ConnectionAttributes | undefined, ctx: PeerContext): void {
    this.connections.delete(conn);
    if (this.custom.length > 0 && attrs !== undefined) {
      try {
        const inputs = this.tags.acquire(attrs, undefined, attrs.reporter);
        try {
          this.recordCustom(this.modes[modeOf(attrs.reporter)] as ModeState, this.tags.scopeOf(inputs), plainTextScope(ctx));
        } finally {
          this.tags.release(inputs);
        }
      } catch (err) {
        this.fail(err);
      }
    }
  }

  /**
   * Custom metrics (istio_stats.cc `recordCustomMetrics`): tags and value evaluated now; the series is
   * found by its rendered tags (a string lookup: custom metrics are opt-in and off the fast path).
   */
  private recordCustom(mode: ModeState, scope: ExpressionScope, plainText: boolean): void {
    const epoch = this.cache.epoch;
    for (const c of this.custom) {
      let labels = '';
      for (const t of mode.customTags.get(c.family.name) ?? []) labels += `${t.prefix}${escapeLabelValue(this.limits.capValue(t.expr.evaluate(scope), t.name))}"`;
      const raw = c.value.evaluate(scope);
      const amount = raw === 'unknown' ? 0 : simpleAtoiUnsigned(raw);
      const s = c.family.get(labels, epoch, plainText);
      s.epoch = epoch;
      if (c.type === 'HISTOGRAM') observe(s as HistogramSeries, c.family, amount);
      else if (c.type === 'GAUGE') (s as ScalarSeries).value = amount;
      else (s as ScalarSeries).value += amount;
    }
  }

  /** Count why a peer was unknown: `meshtel_peer_unknown_total{reason,reporter}`. */
  recordPeerUnknown(reason: UnknownPeerReason, reporter: Reporter): void {
    try {
      // Called per request with an unknown peer: resolve the series once per (reporter, reason) pair
      // and keep it in a two-level plain-object cache instead of building and hashing a label string.
      const byReason = (this.unknownCache[reporter] ??= Object.create(null) as Record<string, ScalarSeries>);
      let s = byReason[reason];
      if (s === undefined) {
        s = this.peerUnknown.get(`reason="${escapeLabelValue(String(reason))}",reporter="${escapeLabelValue(String(reporter))}"`, 0) as ScalarSeries;
        // Only the 12 typed reasons × 3 reporters are cached; anything else still counts, uncached.
        if (this.peerUnknown.series.size <= 64) byReason[reason] = s;
      }
      s.value += 1;
    } catch (err) {
      this.fail(err);
    }
  }

  /** Count a failure of a recording (never rethrown). */
  fail(err: unknown): void {
    this.errors++;
    this.logger.warnOnce('stats-record-error', 'meshtel stats: a recording failed and was dropped', { err });
  }
}

/** Only trace ids of a known longest form become exemplars, so an exemplar line has a bounded size. */
function hasExemplar(traceId: string | undefined): traceId is string {
  return traceId !== undefined && traceId !== '' && traceId.length <= MAX_EXEMPLAR_TRACE_ID_LENGTH;
}

/** Custom metric tags are the request's to choose: plain-text unless the caller is verified (or local). */
function plainTextScope(ctx: PeerContext): boolean {
  return ctx.plainText || (ctx.peerPrincipal === '' && ctx.reporter !== 'source');
}

/**
 * The stats stage: records Istio's standard metrics exactly as istio/proxy's `istio_stats` filter does
 * (`source/extensions/filters/http/istio_stats/istio_stats.cc`, spec §4) and exposes them through a
 * prom-client `Registry` and the streaming renderer in `exposition.ts`.
 *
 * Hot path (STYLE.md §5–7). A finished request:
 * 1. finds its peer context by object identity: `WeakMap<peer, PeerContext[]>`, then a few `===`
 *    compares of reporter/principals/service (the peer object comes from the MX cache, so it is the
 *    same object for every request of a peer). The 20 peer labels were derived once per context.
 * 2. finds its label group in the context by a numeric key built from small ints
 *    (flags × protocol × grpc status × response code); no string is built or hashed.
 * 3. adds numbers to the series the group points at (a counter, three bucket scans on Float64Array).
 * With Telemetry tag overrides, step 2 first evaluates the mode's expressions (a direct read of the request for
 * plain attribute paths, attribute-readers.ts; else the compiled expression against a reused, lazily built scope),
 * interns each value to a small integer per expression and finds the group under the numeric key by those integers
 * combined (issue 12.3: no values array, scope map or joined string per request).
 * Label strings are rendered once, when a group is first built; prom-client's label API is never used
 * on the request path.
 *
 * Bounded: each metric has a series cap (then one overflow series, counted in
 * `meshtel_series_overflow_total{metric}`), per-label allow-lists replace refused values with
 * `overflow` (`meshtel_label_value_rejected_total{label}`), caches are capped and reset when full,
 * and series untouched for `seriesTtlMs` leave memory and the exposition (`meshtel_series_expired_total`).
 * Nothing here throws into the caller: failures are counted in `meshtel_stats_errors_total`.
 */
import { Registry, type RegistryContentType } from 'prom-client';
import type { WorkloadMetadata, PeerMetadata, UnknownPeerReason } from '../metadata/types.js';
import type { ConnectionAttributes, HttpStreamAttributes, Reporter, ServiceInfo, SpecialCluster } from './types.js';
import { ConfigError, quote } from '../core/errors.js';
import { parseIntInRange } from '../core/config.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  DEFAULT_BUCKETS,
  HTTP_LABELS,
  ISTIO_BUILD,
  LABEL_INDEX,
  MESHTEL_LABEL_VALUE_REJECTED_TOTAL,
  MESHTEL_LABEL_VALUE_TRUNCATED_TOTAL,
  MESHTEL_SERIES_BUDGET_LIMIT_BYTES,
  MESHTEL_SERIES_BUDGET_REFUSED_TOTAL,
  MESHTEL_SERIES_BUDGET_USED_BYTES,
  MESHTEL_PEER_UNKNOWN_TOTAL,
  MESHTEL_SERIES_ACTIVE,
  MESHTEL_SERIES_EXPIRED_TOTAL,
  MESHTEL_SERIES_OVERFLOW_TOTAL,
  MESHTEL_STATS_ERRORS_TOTAL,
  MESHTEL_TELEMETRY_EXPRESSION_ERRORS_TOTAL,
  METRIC,
  METRICS,
  validateBuckets,
} from './definitions.js';
import { derivePeerLabels, localLabelValues, type LocalLabelValues } from './labels.js';
import { formatResponseFlags } from './response-flags.js';
import { grpcStatusCode, grpcStatusLabel } from './grpc-status.js';
import type { HistogramSeries, ScalarSeries} from './series.js';
import { Family, escapeLabelValue, observe, sanitizeLabelName, type Series } from './series.js';
import type { TelemetryConfig } from './telemetry-api.js';
import type { CompiledExpression, ExpressionScope } from './expression.js';
import { AttributeScope } from './attributes.js';
import { DirectReads } from './attribute-readers.js';
import { compileCustomMetrics, simpleAtoiUnsigned, type CompiledCustomMetric } from './custom-metrics.js';
import { createRegistryCollectors } from './registry-bridge.js';
import { NativeHistogramConfig, type NativeHistogramOptions } from './native-histogram.js';
import { MAX_EXEMPLAR_TRACE_ID_LENGTH, SeriesBudget, truncateLabelValue } from './series-budget.js';
import { resolveRecorderBounds, type RecorderBoundsOptions } from './recorder-bounds.js';

/**
 * Options of {@link createIstioStats}. The bounds (series cap, byte budgets, label length cap, TTL,
 * allow-lists, buckets, custom metrics) are {@link RecorderBoundsOptions}, validated by
 * `resolveRecorderBounds` (recorder-bounds.ts), the same function the sidecar calls at start.
 */
export interface IstioStatsOptions extends RecorderBoundsOptions {
  /** This workload's metadata (local labels, ISTIO_VERSION for istio_build). */
  readonly local: WorkloadMetadata;
  /** prom-client registry the metrics are registered in (text or OpenMetrics); default a new Registry. */
  readonly registry?: Registry<RegistryContentType>;
  /** Parsed Telemetry API configuration (`parseTelemetry`). */
  readonly telemetry?: TelemetryConfig;
  /**
   * Native (sparse exponential) buckets on the three istio histograms, beside the classic ones; served in
   * the protobuf exposition only. Off by default (see docs/architecture.md "Exposition"): `true` for
   * schema 3, or the schema, zero threshold and bucket bound (native-histogram.ts).
   */
  readonly nativeHistograms?: boolean | NativeHistogramOptions;
  /** Never use the Host header as destination_service (Istio: gateways; inbound never uses it). */
  readonly disableHostHeaderFallback?: boolean;
  /** Periodic TCP/gRPC report interval, Istio's `tcp_reporting_duration` (default 5000 ms; 0 = only at close). */
  readonly tcpReportingIntervalMs?: number;
  /** Clock in ms (tests). */
  readonly now?: () => number;
  readonly logger?: Logger;
}

/** Byte counters of one TCP connection; deltas are reported periodically and at close. */
export interface TcpConnectionStats {
  /** Count bytes received from the downstream (`istio_tcp_received_bytes_total`). */
  addReceived(bytes: number): void;
  /** Count bytes sent to the downstream (`istio_tcp_sent_bytes_total`). */
  addSent(bytes: number): void;
  /** Report the pending byte deltas now. */
  flush(): void;
  /**
   * Final flush and `istio_tcp_connections_closed_total` +1. Envoy fixes a connection's labels when it
   * first reports; meshtel does too, except that non-zero `responseFlags` given here label the close
   * and the final byte deltas (so failed connections show their flags). Idempotent.
   */
  close(responseFlags?: number): void;
}

/** The stats stage. */
export interface IstioStats {
  /** Registry the istio_* and meshtel_* metrics are visible through. */
  readonly registry: Registry<RegistryContentType>;
  /** One finished HTTP/gRPC stream: requests_total +1 and the three histograms. Never throws. */
  recordHttp(attrs: HttpStreamAttributes): void;
  /** gRPC message-count deltas (periodic and final reports of streaming calls). Never throws. */
  recordGrpcMessages(attrs: HttpStreamAttributes, requestMessages: number, responseMessages: number): void;
  /** A TCP connection whose peer is known: opened_total +1 now. Never throws. */
  openTcp(attrs: ConnectionAttributes): TcpConnectionStats;
  /** Count why a peer was unknown: `meshtel_peer_unknown_total{reason,reporter}`. */
  recordPeerUnknown(reason: UnknownPeerReason, reporter: Reporter): void;
  /** Run the TTL sweep now (the timer calls it every `seriesTtlMs / 4`). Returns series removed. */
  sweep(): number;
  /** Report every open TCP connection's pending deltas now (the timer calls it). */
  flushTcp(): void;
  /** Families in exposition order, for `exposition.ts`. Self metrics are refreshed by this call. */
  families(): readonly Family[];
  /** Stop timers and unregister nothing; recording after close is ignored. */
  close(): void;
}

const MODE_CLIENT = 0;
const MODE_SERVER = 1;
/** Peer contexts kept per peer object (distinct principals/services/authorities seen with it). */
const CONTEXTS_PER_PEER = 8;
/** Label groups kept per context before the map is reset (code × flags × status combinations). */
const GROUPS_PER_CONTEXT = 512;
/**
 * Distinct values interned per tag expression before its table is reset (then every expression index is rebuilt).
 * 2^12, so four value ids combine into one exact integer key (48 bits).
 */
const INTERN_CAP = 4096;
const IDS_PER_KEY = 4;

interface PlanEntry {
  /** `name="` or `,name="`, pre-rendered. */
  readonly prefix: string;
  readonly name: string;
  /** Index into the 25-slot standard vector, or -1. */
  readonly std: number;
  /** Index into the expression list, or -1. */
  readonly expr: number;
}

interface MetricPlan {
  readonly disabled: boolean;
  readonly entries: readonly PlanEntry[];
  /** Plans with the same entries share an id, so a group renders their label string once. */
  readonly keyId: number;
}

interface ModeState {
  readonly plans: readonly MetricPlan[];
  /** Expressions any enabled plan of this mode uses. */
  readonly exprIds: readonly number[];
  /** Direct reads of those expressions' attribute paths, by position in {@link exprIds}. */
  readonly direct: DirectReads;
  /** Tags per custom metric family name: ALL_METRICS and matching `customMetric` dimensions, sorted by name. */
  readonly customTags: ReadonlyMap<string, readonly { readonly prefix: string; readonly name: string; readonly expr: CompiledExpression }[]>;
}

/**
 * A label group: the series of every metric for one full label set. HTTP groups resolve their four
 * series eagerly (all four are updated per request); TCP and message groups lazily, so a series
 * appears only once something is added to it, as in Envoy (no `closed_total 0` while a connection
 * is open).
 */
interface Group {
  gen: number;
  /** Charged to the plain-text share of the budget (see {@link PeerContext.plainText}). */
  readonly plainText: boolean;
  readonly s: (Series | undefined)[];
  /** Rendered label string per metric; undefined for metrics not in the group or disabled. */
  readonly keys: (string | undefined)[];
}

/** Everything derived from the peer and connection: the 20 peer labels and the groups under them. */
interface PeerContext {
  readonly reporter: Reporter;
  readonly upstreamPeer: PeerMetadata | null;
  readonly peerPrincipal: string;
  readonly localPrincipal: string;
  readonly service: ServiceInfo | null;
  readonly special: SpecialCluster | undefined;
  readonly authority: string;
  readonly values: string[];
  /** The identity is a plain-text claim: a peer from MX without an mTLS-verified principal. */
  readonly plainText: boolean;
  groups: Map<number, Group>;
  /**
   * Groups of a mode with tag expressions: by the same numeric key as {@link groups}, then by the interned ids of
   * the expression values (see {@link ExprIndex}).
   */
  exprGroups: Map<number, ExprIndex> | undefined;
  /** Groups of requests whose response code is not an integer 0..999 (bad input), by a string key. */
  strGroups: Map<string, Group> | undefined;
}

/** Nested by up to {@link IDS_PER_KEY} value ids per level: `id0 + id1·2^12 + …` → next level or group. */
type ExprLevel = Map<number, Group | ExprLevel>;

/** The expression groups under one numeric key; stale when a value table was reset since it was built. */
interface ExprIndex {
  readonly internGen: number;
  readonly level: ExprLevel;
}

/** What one recording evaluates expressions with: the attribute scope and the values, reused per request. */
interface ExprInputs {
  busy: boolean;
  /** Pointed at the recording's request or connection on first use ({@link ready}). */
  readonly scope: AttributeScope;
  ready: boolean;
  c: ConnectionAttributes | undefined;
  a: HttpStreamAttributes | undefined;
  reporter: Reporter;
  /** Values of the mode's expressions, by position in `ModeState.exprIds`, capped (after `evalExprs`). */
  readonly vals: string[];
}

const HTTP_STD = HTTP_LABELS.map((_, i) => i);
const MSG_STD = HTTP_STD.slice(0, 20);
const TCP_STD = [...MSG_STD, LABEL_INDEX.request_protocol, LABEL_INDEX.response_flags, LABEL_INDEX.connection_security_policy];

function standardIndices(metric: number): readonly number[] {
  if (metric <= METRIC.RESPONSE_BYTES) return HTTP_STD;
  if (metric <= METRIC.RESPONSE_MESSAGES) return MSG_STD;
  return TCP_STD;
}

const HTTP_METRICS = [METRIC.REQUESTS, METRIC.DURATION, METRIC.REQUEST_BYTES, METRIC.RESPONSE_BYTES];
const MSG_METRICS = [METRIC.REQUEST_MESSAGES, METRIC.RESPONSE_MESSAGES];
const TCP_METRICS = [METRIC.TCP_OPENED, METRIC.TCP_CLOSED, METRIC.TCP_SENT, METRIC.TCP_RECEIVED];

/** Create the stats stage. Validates options (throws ConfigError), then never throws again. */
export function createIstioStats(options: IstioStatsOptions): IstioStats {
  return new IstioStatsImpl(options);
}

class IstioStatsImpl implements IstioStats {
  readonly registry: Registry<RegistryContentType>;
  private readonly local: WorkloadMetadata;
  private readonly localValues: LocalLabelValues;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly hostFallback: boolean;
  private readonly istio: Family[];
  private readonly build: Family;
  private readonly peerUnknown: Family;
  private readonly overflowFam: Family;
  private readonly rejectedFam: Family;
  private readonly expiredFam: Family;
  private readonly errorsFam: Family;
  private readonly activeFam: Family;
  private readonly exprErrorsFam: Family;
  private readonly truncatedFam: Family;
  private readonly budgetRefusedFam: Family;
  private readonly budgetUsedFam: Family;
  private readonly budgetLimitFam: Family;
  private readonly budget: SeriesBudget;
  private readonly maxLabelLength: number;
  private readonly truncated = new Map<string, number>();
  /** Label name per expression id (the first tag that uses it), for the truncation counter. */
  private readonly exprLabels: string[] = [];
  private readonly modes: readonly ModeState[];
  private readonly custom: readonly CompiledCustomMetric[];
  private readonly exprs: CompiledExpression[] = [];
  private readonly allow: Map<string, Set<string>> | undefined;
  private readonly rejected = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly tcpIntervalMs: number;
  private readonly byPeer = new WeakMap<PeerMetadata, PeerContext[]>();
  private nullPeer: PeerContext[] = [];
  private readonly openConns = new Set<TcpConn>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Bumped when series are removed: groups built before must re-resolve their series. */
  gen = 0;
  /** TTL epoch: series record the epoch of their last update. */
  epoch = 0;
  private epochStarts: { epoch: number; start: number }[];
  private errors = 0;
  private closed = false;
  private readonly scratch: string[] = new Array<string>(HTTP_LABELS.length).fill('');
  /** Per expression id: value → small integer, and back. */
  private readonly internIds: Map<string, number>[] = [];
  private readonly internValues: string[][] = [];
  /** Bumped when a value table is reset: every {@link ExprIndex} built before is stale. */
  private internGen = 0;
  private readonly idScratch: number[] = [];
  private inputs!: ExprInputs;
  private readonly unknownCache: Record<string, Record<string, ScalarSeries>> = Object.create(null) as Record<string, Record<string, ScalarSeries>>;

  constructor(o: IstioStatsOptions) {
    if (o === null || typeof o !== 'object' || o.local === null || typeof o.local !== 'object') {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', 'createIstioStats: options.local (WorkloadMetadata) is required', { field: 'local' });
    }
    this.local = o.local;
    this.localValues = localLabelValues(o.local);
    this.logger = o.logger ?? silentLogger;
    this.clock = o.now ?? Date.now;
    this.hostFallback = o.disableHostHeaderFallback !== true;
    const bounds = resolveRecorderBounds(o);
    const cap = bounds.maxSeriesPerMetric;
    this.ttlMs = bounds.seriesTtlMs;
    this.tcpIntervalMs =
      parseIntInRange(o.tcpReportingIntervalMs ?? o.telemetry?.reportingIntervalMs, 'tcpReportingIntervalMs', 0, 24 * 3_600_000) ?? 5000;
    this.maxLabelLength = bounds.maxLabelValueLength;
    const maxBytes = bounds.maxExpositionBytes;
    const maxPlain = bounds.maxPlainTextExpositionBytes;
    const plainCap = bounds.maxPlainTextSeriesPerMetric;
    this.budget = new SeriesBudget({ maxBytes, maxPlainTextBytes: maxPlain });
    const buckets = bounds.buckets;
    this.istio = METRICS.map(
      (m) =>
        new Family(
          m.name,
          m.type,
          m.help,
          cap,
          m.type === 'histogram' ? validateBuckets(m.name, (buckets as Record<string, unknown>)[m.name] ?? DEFAULT_BUCKETS) : [],
        ),
    );
    if (o.nativeHistograms !== undefined && o.nativeHistograms !== false) {
      const native = new NativeHistogramConfig(o.nativeHistograms === true ? {} : o.nativeHistograms);
      for (const f of this.istio) if (f.type === 'histogram') f.native = native;
    }
    for (const f of this.istio) {
      f.budget = this.budget;
      f.plainTextCap = plainCap;
    }
    this.build = new Family(ISTIO_BUILD, 'gauge', 'Istio component build: 1 with the proxy version as tag.', 1);
    const buildSeries = this.build.get(`component="proxy",tag="${escapeLabelValue(o.local.istioVersion || 'unknown')}"`, 0);
    buildSeries.epoch = Number.MAX_SAFE_INTEGER;
    (buildSeries as ScalarSeries).value = 1;
    this.peerUnknown = new Family(MESHTEL_PEER_UNKNOWN_TOTAL, 'counter', 'Peers reported as unknown, by reason and reporter.', 256);
    this.overflowFam = new Family(MESHTEL_SERIES_OVERFLOW_TOTAL, 'counter', 'Observations routed to the overflow series of a full metric.', 64);
    this.rejectedFam = new Family(
      MESHTEL_LABEL_VALUE_REJECTED_TOTAL,
      'counter',
      'Label values replaced by "overflow" because the allow-list refused them (counted when a label set is resolved, not per request).',
      64,
    );
    this.expiredFam = new Family(MESHTEL_SERIES_EXPIRED_TOTAL, 'counter', 'Series removed after seriesTtlMs without updates.', 64);
    this.errorsFam = new Family(MESHTEL_STATS_ERRORS_TOTAL, 'counter', 'Recordings dropped because of an internal error.', 1);
    this.activeFam = new Family(MESHTEL_SERIES_ACTIVE, 'gauge', 'Live series per istio metric.', 64);
    this.truncatedFam = new Family(
      MESHTEL_LABEL_VALUE_TRUNCATED_TOTAL,
      'counter',
      'Label values cut to maxLabelValueLength (counted once per peer context or label set, not per request).',
      256,
    );
    this.budgetRefusedFam = new Family(
      MESHTEL_SERIES_BUDGET_REFUSED_TOTAL,
      'counter',
      'New label sets sent to the overflow series because the exposition budget or the plain-text share was spent.',
      2,
    );
    this.budgetUsedFam = new Family(MESHTEL_SERIES_BUDGET_USED_BYTES, 'gauge', 'Bytes the live series take at their longest rendered form.', 2);
    this.budgetLimitFam = new Family(MESHTEL_SERIES_BUDGET_LIMIT_BYTES, 'gauge', 'Configured exposition byte budgets.', 2);
    (this.budgetLimitFam.get('budget="exposition"', 0) as ScalarSeries).value = maxBytes;
    (this.budgetLimitFam.get('budget="plain_text"', 0) as ScalarSeries).value = maxPlain;

    if (bounds.labelAllowList !== undefined) {
      this.allow = new Map(Object.entries(bounds.labelAllowList).map(([label, values]) => [label, new Set(values)]));
    }

    this.custom = compileCustomMetrics(bounds.definitions, cap);
    for (const c of this.custom) {
      c.family.budget = this.budget;
      c.family.plainTextCap = plainCap;
    }
    this.modes = [this.compileMode('CLIENT', o.telemetry), this.compileMode('SERVER', o.telemetry)];
    for (let i = 0; i < this.exprs.length; i++) {
      this.internIds.push(new Map());
      this.internValues.push([]);
    }
    this.inputs = this.newInputs();
    this.exprErrorsFam = new Family(
      MESHTEL_TELEMETRY_EXPRESSION_ERRORS_TOTAL,
      'counter',
      'Telemetry tag expressions that did not compile; the tag is dropped as Envoy does, the rest of the configuration applies.',
      256,
    );
    for (const f of o.telemetry?.expressionErrors ?? []) {
      (this.exprErrorsFam.get(`metric="${escapeLabelValue(f.metric)}",tag="${escapeLabelValue(f.tag)}"`, 0) as ScalarSeries).value += 1;
      this.logger.warn('meshtel stats: Telemetry tag expression does not compile; the tag is dropped', {
        field: f.field,
        metric: f.metric,
        tag: f.tag,
        error: f.message,
      });
    }
    const start = this.clock();
    this.epochStarts = [{ epoch: 0, start }];

    this.registry = o.registry ?? new Registry();
    createRegistryCollectors(this.registry, () => this.families(), (name) => this.resetFamily(name));

    if (this.ttlMs > 0) {
      const t = setInterval(() => this.sweep(), Math.max(250, Math.floor(this.ttlMs / 4)));
      t.unref();
      this.timers.push(t);
    }
    if (this.tcpIntervalMs > 0) {
      const t = setInterval(() => this.flushTcp(), this.tcpIntervalMs);
      t.unref();
      this.timers.push(t);
    }
  }

  // ------------------------------------------------------------ configuration

  private compileMode(mode: 'CLIENT' | 'SERVER', telemetry: TelemetryConfig | undefined): ModeState {
    const signatures = new Map<string, number>();
    const exprIds = new Set<number>();
    const plans = METRICS.map((def, mi) => {
      const std = standardIndices(mi);
      let disabled = false;
      const removed = new Set<string>();
      const replaced = new Map<string, CompiledExpression>();
      const added = new Map<string, CompiledExpression>();
      for (const ov of telemetry?.overrides ?? []) {
        if (ov.customMetric !== undefined) continue;
        if (ov.metric !== 'ALL_METRICS' && ov.metric !== def.telemetryName) continue;
        if (ov.mode !== 'CLIENT_AND_SERVER' && ov.mode !== mode) continue;
        if (ov.disabled !== undefined) disabled = ov.disabled;
        for (const [tag, t] of Object.entries(ov.tagOverrides)) {
          const standard = (HTTP_LABELS as readonly string[]).includes(tag);
          if (t.operation === 'INVALID') {
            // istio_stats.cc: a standard tag whose expression has no id is dropped; an added one is skipped.
            if (standard) {
              removed.add(tag);
              replaced.delete(tag);
            }
          } else if (t.operation === 'REMOVE') {
            if (standard) {
              removed.add(tag);
              replaced.delete(tag);
            } else added.delete(tag);
          } else if (standard) {
            replaced.set(tag, t.expression);
            removed.delete(tag);
          } else {
            added.set(tag, t.expression);
          }
        }
      }
      const entries: PlanEntry[] = [];
      const push = (name: string, stdIdx: number, expr: CompiledExpression | undefined): void => {
        const e = expr === undefined ? -1 : this.internExpr(expr);
        const n = sanitizeLabelName(name);
        if (e >= 0) {
          exprIds.add(e);
          this.exprLabels[e] ??= n;
        }
        entries.push({ prefix: `${entries.length === 0 ? '' : ','}${n}="`, name: n, std: stdIdx, expr: e });
      };
      for (const i of std) {
        const name = HTTP_LABELS[i] as string;
        if (removed.has(name)) continue;
        push(name, replaced.has(name) ? -1 : i, replaced.get(name));
      }
      // New tags go after all standard tags, sorted by name (istio_stats.cc sorts dimension keys).
      for (const name of [...added.keys()].sort()) push(name, -1, added.get(name));
      const sig = entries.map((e) => `${e.name}:${e.std}:${e.expr}`).join('|');
      let keyId = signatures.get(sig);
      if (keyId === undefined) {
        keyId = signatures.size;
        signatures.set(sig, keyId);
      }
      return { disabled, entries, keyId };
    });
    const used = [...exprIds].filter((id) => plans.some((p) => !p.disabled && p.entries.some((e) => e.expr === id)));
    // istio_stats.cc: a dimension without a metric name is added to every custom metric too; one
    // with `match.customMetric` to that custom metric only. Tags are per custom metric, sorted by name.
    const customTags = new Map<string, readonly { readonly prefix: string; readonly name: string; readonly expr: CompiledExpression }[]>();
    for (const c of this.custom) {
      const name = c.family.name.slice('istio_'.length);
      const dims = new Map<string, CompiledExpression>();
      for (const ov of telemetry?.overrides ?? []) {
        if (ov.mode !== 'CLIENT_AND_SERVER' && ov.mode !== mode) continue;
        if (ov.customMetric !== undefined ? ov.customMetric !== name : ov.metric !== 'ALL_METRICS') continue;
        for (const [tag, t] of Object.entries(ov.tagOverrides)) {
          if (t.operation === 'UPSERT') dims.set(tag, t.expression);
          else if (t.operation === 'REMOVE') dims.delete(tag);
        }
      }
      customTags.set(
        c.family.name,
        [...dims.keys()].sort().map((tag, i) => ({
          prefix: `${i === 0 ? '' : ','}${sanitizeLabelName(tag)}="`,
          name: sanitizeLabelName(tag),
          expr: dims.get(tag) as CompiledExpression,
        })),
      );
    }
    return { plans, exprIds: used, direct: new DirectReads(used.map((id) => (this.exprs[id] as CompiledExpression).path)), customTags };
  }

  private internExpr(e: CompiledExpression): number {
    const i = this.exprs.findIndex((x) => x.source === e.source);
    if (i >= 0) return i;
    this.exprs.push(e);
    return this.exprs.length - 1;
  }

  // ------------------------------------------------------------ request path

  recordHttp(a: HttpStreamAttributes): void {
    if (this.closed) return;
    let exprs: ExprInputs | undefined;
    try {
      const mode = this.modes[a.reporter === 'source' ? MODE_CLIENT : MODE_SERVER] as ModeState;
      const ctx = this.context(a, a.authority);
      const code = a.responseCode;
      const grpc = grpcStatusCode(a.protocol, a.grpcStatus, code);
      const flags = a.responseFlags & 0x1fffffff;
      const proto = a.protocol === 'grpc' ? 1 : 0;
      if (mode.exprIds.length > 0 || this.custom.length > 0) exprs = this.acquireInputs(a, a, ctx.reporter);
      let g: Group | undefined;
      if (code >= 0 && code <= 999 && Number.isInteger(code)) {
        // Numeric key: code < 1000, grpc status -2..16 (19 values), protocol 2, flags < 2^29.
        const key = ((flags * 2 + proto) * 19 + (grpc + 2)) * 1000 + code;
        if (mode.exprIds.length === 0) {
          g = ctx.groups.get(key);
          if (g === undefined || g.gen !== this.gen) {
            g = this.buildGroup(ctx, mode, HTTP_METRICS, this.requestValues(ctx, proto, code, grpc, flags), undefined);
            if (ctx.groups.size >= GROUPS_PER_CONTEXT) ctx.groups.clear();
            ctx.groups.set(key, g);
          }
        } else {
          this.evalExprs(mode, exprs as ExprInputs);
          g = this.exprGroup(ctx, key, mode, HTTP_METRICS, (exprs as ExprInputs).vals, proto, code, grpc, flags);
        }
      } else {
        // A response code no HTTP stack sends (bad input): a string key, off the fast path.
        if (exprs !== undefined) this.evalExprs(mode, exprs);
        const vals = this.exprValues(mode, exprs?.vals);
        const key = `${flags}|${proto}|${grpc}|${code}|${vals.join('\u0000')}`;
        g = this.strGroup(ctx, key, mode, proto, code, grpc, flags, vals);
      }
      const ep = this.epoch;
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
      if (exprs !== undefined) {
        if (this.custom.length > 0) this.recordCustom(mode, this.scopeOf(exprs), plainTextScope(ctx));
        this.releaseInputs(exprs);
      }
    } catch (err) {
      if (exprs !== undefined) this.releaseInputs(exprs);
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
      h.exemplars[i] = { traceId, value: v, timestamp: this.clock() / 1000 };
    }
  }

  recordGrpcMessages(a: HttpStreamAttributes, requestMessages: number, responseMessages: number): void {
    if (this.closed) return;
    try {
      const mode = this.modes[a.reporter === 'source' ? MODE_CLIENT : MODE_SERVER] as ModeState;
      const ctx = this.context(a, a.authority);
      // Envoy reports message deltas with the peer tags only (reportHelper runs before the request
      // tags are pushed; istio/proxy testdata/metric/server_request_messages.yaml.tmpl has 20 labels).
      let g: Group;
      if (mode.exprIds.length === 0) {
        let found = ctx.groups.get(-1);
        if (found === undefined || found.gen !== this.gen) {
          found = this.buildGroup(ctx, mode, MSG_METRICS, ctx.values, undefined);
          ctx.groups.set(-1, found);
        }
        g = found;
      } else {
        const exprs = this.acquireInputs(a, a, ctx.reporter);
        try {
          this.evalExprs(mode, exprs);
          g = this.exprGroup(ctx, -1, mode, MSG_METRICS, exprs.vals, 0, 0, 0, 0);
        } finally {
          this.releaseInputs(exprs);
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
      s = (this.istio[m] as Family).get(key, this.epoch, g.plainText) as ScalarSeries;
      g.s[m] = s;
    }
    s.value += delta;
    s.epoch = this.epoch;
    if (s.overflow) (this.istio[m] as Family).overflowCount++;
  }

  openTcp(a: ConnectionAttributes): TcpConnectionStats {
    const conn = new TcpConn(this);
    if (this.closed) return conn;
    try {
      const mode = this.modes[a.reporter === 'source' ? MODE_CLIENT : MODE_SERVER] as ModeState;
      const ctx = this.context(a, '');
      // Envoy evaluates TCP expressions once, just before the first emission.
      let vals: string[] | undefined;
      if (mode.exprIds.length > 0) {
        const exprs = this.acquireInputs(a, undefined, ctx.reporter);
        try {
          this.evalExprs(mode, exprs);
          vals = exprs.vals.slice(0, mode.exprIds.length);
        } finally {
          this.releaseInputs(exprs);
        }
      }
      conn.init(ctx, mode, vals, a);
      this.addCounter(conn.group(0), METRIC.TCP_OPENED, 1);
      this.openConns.add(conn);
    } catch (err) {
      this.fail(err);
    }
    return conn;
  }

  /** @internal group of a TCP connection for the given flags. */
  tcpGroup(ctx: PeerContext, mode: ModeState, vals: string[] | undefined, flags: number): Group {
    // Negative keys: TCP groups live beside HTTP groups in the same map.
    const key = -2 - flags;
    if (vals !== undefined) return this.exprGroup(ctx, key, mode, TCP_METRICS, vals, 0, 0, 0, flags);
    let g = ctx.groups.get(key);
    if (g === undefined || g.gen !== this.gen) {
      g = this.buildGroup(ctx, mode, TCP_METRICS, this.tcpValues(ctx, flags), undefined);
      if (ctx.groups.size >= GROUPS_PER_CONTEXT) ctx.groups.clear();
      ctx.groups.set(key, g);
    }
    return g;
  }

  private tcpValues(ctx: PeerContext, flags: number): string[] {
    const v = this.scratch;
    for (let i = 0; i < 20; i++) v[i] = ctx.values[i] as string;
    v[LABEL_INDEX.request_protocol] = 'tcp';
    v[LABEL_INDEX.response_flags] = formatResponseFlags(flags);
    v[LABEL_INDEX.connection_security_policy] = ctx.values[LABEL_INDEX.connection_security_policy] as string;
    return v;
  }

  /** @internal */
  connClosed(conn: TcpConn, attrs: ConnectionAttributes | undefined, ctx: PeerContext): void {
    this.openConns.delete(conn);
    if (this.custom.length > 0 && attrs !== undefined) {
      try {
        const exprs = this.acquireInputs(attrs, undefined, attrs.reporter);
        try {
          this.recordCustom(this.modes[attrs.reporter === 'source' ? MODE_CLIENT : MODE_SERVER] as ModeState, this.scopeOf(exprs), plainTextScope(ctx));
        } finally {
          this.releaseInputs(exprs);
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
    for (const c of this.custom) {
      let labels = '';
      for (const t of mode.customTags.get(c.family.name) ?? []) labels += `${t.prefix}${escapeLabelValue(this.capValue(t.expr.evaluate(scope), t.name))}"`;
      const raw = c.value.evaluate(scope);
      const amount = raw === 'unknown' ? 0 : simpleAtoiUnsigned(raw);
      const s = c.family.get(labels, this.epoch, plainText);
      s.epoch = this.epoch;
      if (c.type === 'HISTOGRAM') observe(s as HistogramSeries, c.family, amount);
      else if (c.type === 'GAUGE') (s as ScalarSeries).value = amount;
      else (s as ScalarSeries).value += amount;
    }
  }

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

  flushTcp(): void {
    for (const c of this.openConns) c.flush();
  }

  // ------------------------------------------------------------ resolution (cache misses)

  private context(a: ConnectionAttributes, authority: string): PeerContext {
    const reporter = a.reporter;
    const up = a.upstreamPeer ?? null;
    const service = a.service ?? null;
    const special = a.specialCluster;
    const peerPrincipal = a.peerPrincipal ?? '';
    const localPrincipal = a.localPrincipal ?? '';
    // The Host header matters only when it can become destination_service (client, no registry service).
    const auth = this.hostFallback && reporter === 'source' && service === null ? (authority ?? '') : '';
    const peer = a.peer ?? null;
    let list = peer === null ? this.nullPeer : this.byPeer.get(peer);
    if (list !== undefined) {
      for (let i = 0; i < list.length; i++) {
        const c = list[i] as PeerContext;
        if (
          c.reporter === reporter &&
          c.peerPrincipal === peerPrincipal &&
          c.localPrincipal === localPrincipal &&
          (c.service === service || sameService(c.service, service)) &&
          c.special === special &&
          c.authority === auth &&
          c.upstreamPeer === up
        ) {
          return c;
        }
      }
    } else {
      list = [];
      if (peer !== null) this.byPeer.set(peer, list);
    }
    // Validated on the miss path only: a hit above already matched a context with a valid reporter.
    if (reporter !== 'source' && reporter !== 'destination' && reporter !== 'waypoint') {
      throw new TypeError(`invalid reporter ${quote(reporter)}`);
    }
    const values = new Array<string>(HTTP_LABELS.length).fill('');
    derivePeerLabels(this.localValues, a, auth !== '', auth, values);
    // The length cap, once per peer context (the context is cached by peer object, so once per peer).
    for (let i = 0; i < values.length; i++) values[i] = this.capValue(values[i] as string, HTTP_LABELS[i] as string);
    const ctx: PeerContext = {
      reporter,
      upstreamPeer: up,
      peerPrincipal,
      localPrincipal,
      service,
      special,
      authority: auth,
      values,
      plainText: peerPrincipal === '' && (peer !== null || up !== null),
      groups: new Map(),
      exprGroups: undefined,
      strGroups: undefined,
    };
    // Bounded per peer: drop the oldest context (its series stay in the families).
    if (list.length >= CONTEXTS_PER_PEER) list.shift();
    list.push(ctx);
    return ctx;
  }

  private requestValues(ctx: PeerContext, proto: number, code: number, grpc: number, flags: number): string[] {
    const v = this.scratch;
    const src = ctx.values;
    for (let i = 0; i < src.length; i++) v[i] = src[i] as string;
    v[LABEL_INDEX.request_protocol] = proto === 1 ? 'grpc' : 'http';
    v[LABEL_INDEX.response_code] = String(code);
    v[LABEL_INDEX.grpc_response_status] = grpcStatusLabel(grpc);
    v[LABEL_INDEX.response_flags] = formatResponseFlags(flags);
    return v;
  }

  /** The HTTP group of a request with a response code outside 0..999, by a string key. */
  private strGroup(ctx: PeerContext, key: string, mode: ModeState, proto: number, code: number, grpc: number, flags: number, exprVals: string[]): Group {
    ctx.strGroups ??= new Map();
    let g = ctx.strGroups.get(key);
    if (g === undefined || g.gen !== this.gen) {
      g = this.buildGroup(ctx, mode, HTTP_METRICS, this.requestValues(ctx, proto, code, grpc, flags), exprVals);
      if (ctx.strGroups.size >= GROUPS_PER_CONTEXT) ctx.strGroups.clear();
      ctx.strGroups.set(key, g);
    }
    return g;
  }

  /**
   * The group of a mode with tag expressions: the numeric `key` of the standard labels, then the expression values
   * (`vals`, by position in `mode.exprIds`) each interned to a small integer and combined into integer keys. No
   * string is joined or hashed beyond the value lookups themselves. `proto..flags` build the standard labels on a
   * miss.
   */
  private exprGroup(ctx: PeerContext, key: number, mode: ModeState, metrics: readonly number[], vals: readonly string[], proto: number, code: number, grpc: number, flags: number): Group {
    const n = mode.exprIds.length;
    const ids = this.idScratch;
    // Intern first: a table reset bumps internGen, which the index lookup below must see.
    for (let t = 0; t < n; t++) ids[t] = this.intern(mode.exprIds[t] as number, vals[t] as string);
    ctx.exprGroups ??= new Map();
    let index = ctx.exprGroups.get(key);
    if (index === undefined || index.internGen !== this.internGen) {
      index = { internGen: this.internGen, level: new Map() };
      if (ctx.exprGroups.size >= GROUPS_PER_CONTEXT) ctx.exprGroups.clear();
      ctx.exprGroups.set(key, index);
    }
    let level = index.level;
    if (n <= IDS_PER_KEY) {
      // One level (up to four tags): the common case, without the loop below.
      let sub = 0;
      for (let u = n - 1; u >= 0; u--) sub = sub * INTERN_CAP + (ids[u] as number);
      let g = level.get(sub) as Group | undefined;
      if (g === undefined || g.gen !== this.gen) g = this.newExprGroup(ctx, level, sub, mode, metrics, vals, proto, code, grpc, flags);
      return g;
    }
    for (let t = 0; ; ) {
      const end = Math.min(t + IDS_PER_KEY, n);
      let sub = 0;
      for (let u = end - 1; u >= t; u--) sub = sub * INTERN_CAP + (ids[u] as number);
      t = end;
      if (t >= n) {
        let g = level.get(sub) as Group | undefined;
        if (g === undefined || g.gen !== this.gen) g = this.newExprGroup(ctx, level, sub, mode, metrics, vals, proto, code, grpc, flags);
        return g;
      }
      let next = level.get(sub) as ExprLevel | undefined;
      if (next === undefined) {
        next = new Map();
        if (level.size >= GROUPS_PER_CONTEXT) level.clear();
        level.set(sub, next);
      }
      level = next;
    }
  }

  /** Build an expression group (cache miss) and file it under `sub` in `level`. */
  private newExprGroup(
    ctx: PeerContext,
    level: ExprLevel,
    sub: number,
    mode: ModeState,
    metrics: readonly number[],
    vals: readonly string[],
    proto: number,
    code: number,
    grpc: number,
    flags: number,
  ): Group {
    const std = metrics === HTTP_METRICS ? this.requestValues(ctx, proto, code, grpc, flags) : metrics === TCP_METRICS ? this.tcpValues(ctx, flags) : ctx.values;
    const g = this.buildGroup(ctx, mode, metrics, std, this.exprValues(mode, vals));
    if (level.size >= GROUPS_PER_CONTEXT) level.clear();
    level.set(sub, g);
    return g;
  }

  /** The small integer of expression `id`'s value `v`; a full table is reset (and every index with it). */
  private intern(id: number, v: string): number {
    const table = this.internIds[id] as Map<string, number>;
    let n = table.get(v);
    if (n === undefined) {
      const values = this.internValues[id] as string[];
      if (table.size >= INTERN_CAP) {
        table.clear();
        values.length = 0;
        this.internGen++;
      }
      n = table.size;
      table.set(v, n);
      values.push(v);
    }
    return n;
  }

  /** A label value within the length cap; a cut value is counted under its label name. */
  private capValue(v: string, label: string): string {
    if (v.length <= this.maxLabelLength) return v;
    this.truncated.set(label, (this.truncated.get(label) ?? 0) + 1);
    return truncateLabelValue(v, this.maxLabelLength);
  }

  private buildGroup(ctx: PeerContext, mode: ModeState, metrics: readonly number[], values: string[], exprVals: string[] | undefined): Group {
    // Server-side tag values of a request without a verified principal are the caller's to choose.
    const plainText = ctx.plainText || (exprVals !== undefined && ctx.peerPrincipal === '' && ctx.reporter !== 'source');
    const s = new Array<Series | undefined>(METRICS.length).fill(undefined);
    const keys = new Array<string | undefined>(METRICS.length).fill(undefined);
    const rendered = new Map<number, string>();
    const eager = metrics === HTTP_METRICS;
    for (const m of metrics) {
      const plan = mode.plans[m] as MetricPlan;
      if (plan.disabled) continue;
      let key = rendered.get(plan.keyId);
      if (key === undefined) {
        key = this.renderKey(plan, values, exprVals);
        rendered.set(plan.keyId, key);
      }
      keys[m] = key;
      if (eager) s[m] = (this.istio[m] as Family).get(key, this.epoch, plainText);
    }
    return { gen: this.gen, plainText, s, keys };
  }

  private renderKey(plan: MetricPlan, values: string[], exprVals: string[] | undefined): string {
    let out = '';
    for (const e of plan.entries) {
      let v = e.std >= 0 ? (values[e.std] as string) : (exprVals?.[e.expr] ?? 'unknown');
      if (this.allow !== undefined) {
        const allowed = this.allow.get(e.name);
        if (allowed !== undefined && !allowed.has(v)) {
          this.rejected.set(e.name, (this.rejected.get(e.name) ?? 0) + 1);
          v = 'overflow';
        }
      }
      out += `${e.prefix}${escapeLabelValue(v)}"`;
    }
    return out;
  }

  private newInputs(): ExprInputs {
    return { busy: false, scope: new AttributeScope(this.local), ready: false, c: undefined, a: undefined, reporter: 'source', vals: [] };
  }

  /**
   * The scope and value slots for one recording, pointed at its request or connection. One set is reused; a
   * recording started while it is in use (a header getter that records) gets its own.
   */
  private acquireInputs(c: ConnectionAttributes, a: HttpStreamAttributes | undefined, reporter: Reporter): ExprInputs {
    const inputs = this.inputs.busy ? this.newInputs() : this.inputs;
    inputs.busy = true;
    inputs.ready = false;
    inputs.c = c;
    inputs.a = a;
    inputs.reporter = reporter;
    return inputs;
  }

  /** The attribute scope of the recording, reset for it on first use (direct reads need none). */
  private scopeOf(inputs: ExprInputs): AttributeScope {
    if (!inputs.ready) {
      inputs.scope.reset(inputs.c, inputs.a, inputs.reporter);
      inputs.ready = true;
    }
    return inputs.scope;
  }

  private releaseInputs(inputs: ExprInputs): void {
    // The reused inputs must not keep the request alive.
    if (inputs.ready) inputs.scope.release();
    inputs.c = undefined;
    inputs.a = undefined;
    inputs.busy = false;
  }

  /**
   * Evaluate the mode's expressions into `inputs.vals` (by position in `mode.exprIds`), capped: a direct reader
   * where the path has one, else the compiled expression against the scope.
   */
  private evalExprs(mode: ModeState, inputs: ExprInputs): void {
    const ids = mode.exprIds;
    // Filled by the direct reads with a value or undefined (evaluate), then with every value.
    const out = inputs.vals as (string | undefined)[];
    if (mode.direct.any) mode.direct.read(inputs.a, out);
    else for (let t = 0; t < ids.length; t++) out[t] = undefined;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t] as number;
      let v = out[t];
      if (v === undefined) v = (this.exprs[id] as CompiledExpression).evaluate(this.scopeOf(inputs));
      out[t] = this.capValue(v, this.exprLabels[id] ?? '');
    }
  }

  /**
   * The expression values by expression id (`unknown` for ids the mode does not use) from `vals` by position in
   * `mode.exprIds`, for rendering a group.
   */
  private exprValues(mode: ModeState, vals: readonly string[] | undefined): string[] {
    const out = new Array<string>(this.exprs.length).fill('unknown');
    if (vals === undefined) return out;
    for (let t = 0; t < mode.exprIds.length; t++) out[mode.exprIds[t] as number] = vals[t] as string;
    return out;
  }

  /** @internal count a failure of a recording (never rethrown). */
  fail(err: unknown): void {
    this.errors++;
    this.logger.warnOnce('stats-record-error', 'meshtel stats: a recording failed and was dropped', { err });
  }

  // ------------------------------------------------------------ expiry and exposition

  sweep(): number {
    if (this.ttlMs <= 0) return 0;
    const now = this.clock();
    this.epoch++;
    this.epochStarts.push({ epoch: this.epoch, start: now });
    // A series updated in epoch k was last touched before the start of epoch k+1; it has been idle
    // for at least ttl when that start is at least ttl ago. minEpoch = first epoch still alive.
    let minEpoch = 0;
    for (const e of this.epochStarts) {
      if (now - e.start >= this.ttlMs) minEpoch = e.epoch;
      else break;
    }
    this.epochStarts = this.epochStarts.filter((e) => e.epoch >= minEpoch - 1);
    let removed = 0;
    for (const f of this.istio) removed += f.expire(minEpoch);
    for (const c of this.custom) c.family.expire(minEpoch);
    if (removed > 0) {
      this.gen++;
      // Drop cached contexts so dead peers' label arrays go too.
      this.nullPeer = [];
    }
    return removed;
  }

  /** Drop every series of one istio family (prom-client `registry.resetMetrics()`). */
  private resetFamily(name: string): void {
    const f = this.istio.find((x) => x.name === name);
    if (f === undefined) return;
    f.clear();
    // Groups still point at the dropped series: make them re-resolve.
    this.gen++;
  }

  families(): readonly Family[] {
    // Refresh the self metrics from the counters the hot path keeps as plain numbers.
    for (const f of this.istio) {
      (this.overflowFam.get(`metric="${f.name}"`, 0) as ScalarSeries).value = f.overflowCount;
      (this.expiredFam.get(`metric="${f.name}"`, 0) as ScalarSeries).value = f.expiredCount;
      (this.activeFam.get(`metric="${f.name}"`, 0) as ScalarSeries).value = f.series.size + (f.overflowSeries ? 1 : 0);
    }
    for (const [label, n] of this.rejected) (this.rejectedFam.get(`label="${escapeLabelValue(label)}"`, 0) as ScalarSeries).value = n;
    for (const [label, n] of this.truncated) (this.truncatedFam.get(`label="${escapeLabelValue(label)}"`, 0) as ScalarSeries).value = n;
    const b = this.budget;
    (this.budgetRefusedFam.get('budget="exposition"', 0) as ScalarSeries).value = b.refused;
    (this.budgetRefusedFam.get('budget="plain_text"', 0) as ScalarSeries).value = b.plainTextRefused;
    (this.budgetUsedFam.get('budget="exposition"', 0) as ScalarSeries).value = b.used;
    (this.budgetUsedFam.get('budget="plain_text"', 0) as ScalarSeries).value = b.plainTextUsed;
    (this.errorsFam.get('', 0) as ScalarSeries).value = this.errors;
    return [...this.istio, ...this.custom.map((c) => c.family), this.build, this.peerUnknown, this.overflowFam, this.rejectedFam, this.truncatedFam, this.expiredFam, this.activeFam, this.errorsFam, this.exprErrorsFam, this.budgetRefusedFam, this.budgetUsedFam, this.budgetLimitFam];
  }

  close(): void {
    if (this.closed) return;
    for (const c of [...this.openConns]) c.close();
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

}

/**
 * Services are usually the registry's own objects (identity hit above), but a filter may build one
 * per request; compare the three fields then so the context cache still hits.
 */
function sameService(a: ServiceInfo | null, b: ServiceInfo | null): boolean {
  return a !== null && b !== null && a.host === b.host && a.name === b.name && a.namespace === b.namespace;
}

/** Only trace ids of a known longest form become exemplars, so an exemplar line has a bounded size. */
function hasExemplar(traceId: string | undefined): traceId is string {
  return traceId !== undefined && traceId !== '' && traceId.length <= MAX_EXEMPLAR_TRACE_ID_LENGTH;
}

/** Custom metric tags are the request's to choose: plain-text unless the caller is verified (or local). */
function plainTextScope(ctx: PeerContext): boolean {
  return ctx.plainText || (ctx.peerPrincipal === '' && ctx.reporter !== 'source');
}

/** One TCP connection's pending byte deltas. */
class TcpConn implements TcpConnectionStats {
  private ctx: PeerContext | undefined;
  private mode: ModeState | undefined;
  private vals: string[] | undefined;
  private rx = 0;
  private tx = 0;
  private done = false;
  private cached: Group | undefined;
  private attrs: ConnectionAttributes | undefined;
  constructor(private readonly stats: IstioStatsImpl) {}

  init(ctx: PeerContext, mode: ModeState, vals: string[] | undefined, attrs: ConnectionAttributes): void {
    this.attrs = attrs;
    this.ctx = ctx;
    this.mode = mode;
    this.vals = vals;
  }

  group(flags: number): Group {
    if (flags === 0 && this.cached !== undefined && this.cached.gen === this.stats.gen) return this.cached;
    const g = this.stats.tcpGroup(this.ctx as PeerContext, this.mode as ModeState, this.vals, flags);
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

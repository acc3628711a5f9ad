/**
 * Which series a finished request or connection updates: the peer-context and label-group caches of the recorder,
 * and the TTL sweep that removes idle series from them.
 *
 * 1. A peer context is found by object identity: `WeakMap<peer, PeerContext[]>`, then a few `===` compares of
 *    reporter/principals/service (the peer object comes from the MX cache, so it is the same object for every
 *    request of a peer). The 20 peer labels are derived once per context.
 * 2. A label group is found in the context by a numeric key built from small ints (flags × protocol × grpc status ×
 *    response code); no string is built or hashed. With Telemetry tag overrides, each tag value is interned to a
 *    small integer per expression and the group found under the numeric key by those integers combined
 *    (issue 12.3).
 * 3. A group points at the series of every metric for its full label set; label strings are rendered once, when a
 *    group is built.
 *
 * Bounded: contexts per peer and groups per context are capped (the oldest context goes, a full group map is
 * reset), value tables per expression too (then every expression index is rebuilt). Series untouched for
 * `seriesTtlMs` are removed by {@link SeriesCache.sweep}; groups that point at removed series re-resolve (`gen`).
 */
import type { PeerMetadata } from '../metadata/types.js';
import type { ConnectionAttributes, Reporter, ServiceInfo, SpecialCluster } from './types.js';
import { quote } from '../core/errors.js';
import { HTTP_LABELS, LABEL_INDEX, METRICS } from './definitions.js';
import { derivePeerLabels, type LocalLabelValues } from './labels.js';
import { formatResponseFlags } from './response-flags.js';
import { grpcStatusLabel } from './grpc-status.js';
import { escapeLabelValue, type Family, type Series } from './series.js';
import type { CompiledCustomMetric } from './custom-metrics.js';
import type { LabelLimits } from './label-limits.js';
import type { TagValues } from './tag-values.js';
import { HTTP_METRICS, MSG_METRICS, TCP_METRICS, type MetricPlan, type ModeState } from './stats-plan.js';

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

/**
 * A label group: the series of every metric for one full label set. HTTP groups resolve their four
 * series eagerly (all four are updated per request); TCP and message groups lazily, so a series
 * appears only once something is added to it, as in Envoy (no `closed_total 0` while a connection
 * is open).
 */
export interface Group {
  gen: number;
  /** Charged to the plain-text share of the budget (see {@link PeerContext.plainText}). */
  readonly plainText: boolean;
  readonly s: (Series | undefined)[];
  /** Rendered label string per metric; undefined for metrics not in the group or disabled. */
  readonly keys: (string | undefined)[];
}

/** Everything derived from the peer and connection: the 20 peer labels and the groups under them. */
export interface PeerContext {
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

/** What the cache is built from. */
export interface SeriesCacheOptions {
  /** The ten istio families, by metric index. */
  readonly istio: readonly Family[];
  /** Custom metric families, expired with the rest. */
  readonly custom: readonly CompiledCustomMetric[];
  readonly localValues: LocalLabelValues;
  readonly hostFallback: boolean;
  readonly limits: LabelLimits;
  readonly tags: TagValues;
  /** Number of tag expressions of the plan (one value table each). */
  readonly exprCount: number;
  readonly ttlMs: number;
  readonly clock: () => number;
}

/** The peer contexts and label groups of one recorder, and the series expiry. */
export class SeriesCache {
  private readonly istio: readonly Family[];
  private readonly custom: readonly CompiledCustomMetric[];
  private readonly localValues: LocalLabelValues;
  private readonly hostFallback: boolean;
  private readonly limits: LabelLimits;
  private readonly tags: TagValues;
  private readonly ttlMs: number;
  private readonly clock: () => number;
  private readonly byPeer = new WeakMap<PeerMetadata, PeerContext[]>();
  private nullPeer: PeerContext[] = [];
  /** Bumped when series are removed: groups built before must re-resolve their series. */
  gen = 0;
  /** TTL epoch: series record the epoch of their last update. */
  epoch = 0;
  private epochStarts: { epoch: number; start: number }[];
  private readonly scratch: string[] = new Array<string>(HTTP_LABELS.length).fill('');
  /** Per expression id: value → small integer, and back. */
  private readonly internIds: Map<string, number>[] = [];
  private readonly internValues: string[][] = [];
  /** Bumped when a value table is reset: every {@link ExprIndex} built before is stale. */
  private internGen = 0;
  private readonly idScratch: number[] = [];

  constructor(o: SeriesCacheOptions) {
    this.istio = o.istio;
    this.custom = o.custom;
    this.localValues = o.localValues;
    this.hostFallback = o.hostFallback;
    this.limits = o.limits;
    this.tags = o.tags;
    this.ttlMs = o.ttlMs;
    this.clock = o.clock;
    for (let i = 0; i < o.exprCount; i++) {
      this.internIds.push(new Map());
      this.internValues.push([]);
    }
    this.epochStarts = [{ epoch: 0, start: this.clock() }];
  }

  /** The peer context of a request or connection (`authority`: the Host header, `''` for TCP). */
  context(a: ConnectionAttributes, authority: string): PeerContext {
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
    for (let i = 0; i < values.length; i++) values[i] = this.limits.capValue(values[i] as string, HTTP_LABELS[i] as string);
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

  /**
   * The group of a finished HTTP stream. `vals`: the mode's tag values by position (`TagValues.evaluate`), given
   * exactly when the mode has tag expressions.
   */
  httpGroup(ctx: PeerContext, mode: ModeState, proto: number, code: number, grpc: number, flags: number, vals: readonly string[] | undefined): Group {
    if (code >= 0 && code <= 999 && Number.isInteger(code)) {
      // Numeric key: code < 1000, grpc status -2..16 (19 values), protocol 2, flags < 2^29.
      const key = ((flags * 2 + proto) * 19 + (grpc + 2)) * 1000 + code;
      if (vals !== undefined) return this.exprGroup(ctx, key, mode, HTTP_METRICS, vals, proto, code, grpc, flags);
      let g = ctx.groups.get(key);
      if (g === undefined || g.gen !== this.gen) {
        g = this.buildGroup(ctx, mode, HTTP_METRICS, this.requestValues(ctx, proto, code, grpc, flags), undefined);
        if (ctx.groups.size >= GROUPS_PER_CONTEXT) ctx.groups.clear();
        ctx.groups.set(key, g);
      }
      return g;
    }
    // A response code no HTTP stack sends (bad input): a string key, off the fast path.
    const exprVals = this.tags.byId(mode, vals);
    const key = `${flags}|${proto}|${grpc}|${code}|${exprVals.join('\u0000')}`;
    return this.strGroup(ctx, key, mode, proto, code, grpc, flags, exprVals);
  }

  /**
   * The group of gRPC message deltas: the peer tags only (Envoy's reportHelper runs before the request tags are
   * pushed; istio/proxy testdata/metric/server_request_messages.yaml.tmpl has 20 labels).
   */
  msgGroup(ctx: PeerContext, mode: ModeState, vals: readonly string[] | undefined): Group {
    if (vals !== undefined) return this.exprGroup(ctx, -1, mode, MSG_METRICS, vals, 0, 0, 0, 0);
    let found = ctx.groups.get(-1);
    if (found === undefined || found.gen !== this.gen) {
      found = this.buildGroup(ctx, mode, MSG_METRICS, ctx.values, undefined);
      ctx.groups.set(-1, found);
    }
    return found;
  }

  /** The group of a TCP connection for the given flags (`vals` as for {@link httpGroup}, evaluated at open). */
  tcpGroup(ctx: PeerContext, mode: ModeState, vals: readonly string[] | undefined, flags: number): Group {
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
    const g = this.buildGroup(ctx, mode, metrics, std, this.tags.byId(mode, vals));
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
      const v = e.std >= 0 ? (values[e.std] as string) : (exprVals?.[e.expr] ?? 'unknown');
      out += `${e.prefix}${escapeLabelValue(this.limits.allowed(e.name, v))}"`;
    }
    return out;
  }

  /**
   * Start a new TTL epoch and remove the series last updated before the first epoch that is still alive. Returns
   * the istio series removed.
   */
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
  resetFamily(name: string): void {
    const f = this.istio.find((x) => x.name === name);
    if (f === undefined) return;
    f.clear();
    // Groups still point at the dropped series: make them re-resolve.
    this.gen++;
  }
}

/**
 * Services are usually the registry's own objects (identity hit above), but a filter may build one
 * per request; compare the three fields then so the context cache still hits.
 */
function sameService(a: ServiceInfo | null, b: ServiceInfo | null): boolean {
  return a !== null && b !== null && a.host === b.host && a.name === b.name && a.namespace === b.namespace;
}

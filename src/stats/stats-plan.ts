/**
 * What the recorder records, decided once at start: the validated options, the istio families, and per mode
 * (CLIENT = outbound sidecar and gateways, SERVER = inbound) which metrics are on and the labels of each, standard
 * or Telemetry tag override, in istio_stats.cc's order (`source/extensions/filters/http/istio_stats/istio_stats.cc`
 * builds the same from its PluginConfig). Nothing here runs per request.
 */
import type { Registry, RegistryContentType } from 'prom-client';
import type { WorkloadMetadata } from '../metadata/types.js';
import type { Reporter } from './types.js';
import type { IstioStatsOptions } from './istio-stats.js';
import { ConfigError } from '../core/errors.js';
import { parseIntInRange } from '../core/config.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { DEFAULT_BUCKETS, HTTP_LABELS, LABEL_INDEX, METRIC, METRICS, validateBuckets } from './definitions.js';
import { Family, sanitizeLabelName } from './series.js';
import type { TelemetryConfig } from './telemetry-api.js';
import type { CompiledExpression } from './expression.js';
import { compileCustomMetrics, type CompiledCustomMetric } from './custom-metrics.js';
import { DirectReads } from './attribute-readers.js';
import { NativeHistogramConfig } from './native-histogram.js';
import { SeriesBudget } from './series-budget.js';
import { resolveRecorderBounds, type RecorderBounds } from './recorder-bounds.js';

/** Index of the CLIENT mode in {@link StatsPlan.modes}. */
export const MODE_CLIENT = 0;
/** Index of the SERVER mode in {@link StatsPlan.modes}. */
export const MODE_SERVER = 1;

/** The mode a reporter records in: `source` is CLIENT, `destination` and `waypoint` SERVER. */
export function modeOf(reporter: Reporter): number {
  return reporter === 'source' ? MODE_CLIENT : MODE_SERVER;
}

/** One label of a metric: a standard label or a tag expression. */
export interface PlanEntry {
  /** `name="` or `,name="`, pre-rendered. */
  readonly prefix: string;
  readonly name: string;
  /** Index into the 25-slot standard vector, or -1. */
  readonly std: number;
  /** Index into the expression list, or -1. */
  readonly expr: number;
}

/** The labels of one metric in one mode. */
export interface MetricPlan {
  readonly disabled: boolean;
  readonly entries: readonly PlanEntry[];
  /** Plans with the same entries share an id, so a group renders their label string once. */
  readonly keyId: number;
}

/** A tag of a custom metric. */
export interface CustomTag {
  readonly prefix: string;
  readonly name: string;
  readonly expr: CompiledExpression;
}

/** Everything one mode records. */
export interface ModeState {
  /** By metric index (`METRIC`). */
  readonly plans: readonly MetricPlan[];
  /** Expressions any enabled plan of this mode uses. */
  readonly exprIds: readonly number[];
  /** Direct reads of those expressions' attribute paths, by position in {@link exprIds}. */
  readonly direct: DirectReads;
  /** Tags per custom metric family name: ALL_METRICS and matching `customMetric` dimensions, sorted by name. */
  readonly customTags: ReadonlyMap<string, readonly CustomTag[]>;
}

/** The metrics a finished HTTP stream updates (all four, eagerly). */
export const HTTP_METRICS: readonly number[] = [METRIC.REQUESTS, METRIC.DURATION, METRIC.REQUEST_BYTES, METRIC.RESPONSE_BYTES];
/** The gRPC message counters. */
export const MSG_METRICS: readonly number[] = [METRIC.REQUEST_MESSAGES, METRIC.RESPONSE_MESSAGES];
/** The TCP metrics. */
export const TCP_METRICS: readonly number[] = [METRIC.TCP_OPENED, METRIC.TCP_CLOSED, METRIC.TCP_SENT, METRIC.TCP_RECEIVED];

const HTTP_STD = HTTP_LABELS.map((_, i) => i);
const MSG_STD = HTTP_STD.slice(0, 20);
const TCP_STD = [...MSG_STD, LABEL_INDEX.request_protocol, LABEL_INDEX.response_flags, LABEL_INDEX.connection_security_policy];

function standardIndices(metric: number): readonly number[] {
  if (metric <= METRIC.RESPONSE_BYTES) return HTTP_STD;
  if (metric <= METRIC.RESPONSE_MESSAGES) return MSG_STD;
  return TCP_STD;
}

/** The options of `createIstioStats`, validated, with defaults applied and the families they describe. */
export interface StatsSettings {
  readonly local: WorkloadMetadata;
  readonly logger: Logger;
  readonly clock: () => number;
  /** Use the Host header as destination_service when the registry has no service (outbound only). */
  readonly hostFallback: boolean;
  readonly bounds: RecorderBounds;
  readonly tcpIntervalMs: number;
  readonly telemetry: TelemetryConfig | undefined;
  readonly registry: Registry<RegistryContentType> | undefined;
  readonly budget: SeriesBudget;
  /** The ten istio families, by metric index, budgeted. */
  readonly istio: Family[];
  /** The custom metric families, budgeted. */
  readonly custom: readonly CompiledCustomMetric[];
}

/** Validate the options (throws ConfigError naming the field) and build the families they describe. */
export function resolveStatsOptions(o: IstioStatsOptions): StatsSettings {
  if (o === null || typeof o !== 'object' || o.local === null || typeof o.local !== 'object') {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', 'createIstioStats: options.local (WorkloadMetadata) is required', { field: 'local' });
  }
  const bounds = resolveRecorderBounds(o);
  const cap = bounds.maxSeriesPerMetric;
  const tcpIntervalMs =
    parseIntInRange(o.tcpReportingIntervalMs ?? o.telemetry?.reportingIntervalMs, 'tcpReportingIntervalMs', 0, 24 * 3_600_000) ?? 5000;
  const plainCap = bounds.maxPlainTextSeriesPerMetric;
  const budget = new SeriesBudget({ maxBytes: bounds.maxExpositionBytes, maxPlainTextBytes: bounds.maxPlainTextExpositionBytes });
  const buckets = bounds.buckets;
  const istio = METRICS.map(
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
    for (const f of istio) if (f.type === 'histogram') f.native = native;
  }
  const custom = compileCustomMetrics(bounds.definitions, cap);
  for (const f of [...istio, ...custom.map((c) => c.family)]) {
    f.budget = budget;
    f.plainTextCap = plainCap;
  }
  return {
    local: o.local,
    logger: o.logger ?? silentLogger,
    clock: o.now ?? Date.now,
    hostFallback: o.disableHostHeaderFallback !== true,
    bounds,
    tcpIntervalMs,
    telemetry: o.telemetry,
    registry: o.registry,
    budget,
    istio,
    custom,
  };
}

/** The compiled Telemetry plan. */
export interface StatsPlan {
  /** By mode ({@link MODE_CLIENT}, {@link MODE_SERVER}). */
  readonly modes: readonly ModeState[];
  /** Every tag expression either mode uses, deduplicated by source; ids index this list. */
  readonly exprs: readonly CompiledExpression[];
  /** Label name per expression id (the first tag that uses it), for the truncation counter. */
  readonly exprLabels: readonly string[];
}

/** The expressions of a plan, deduplicated by source, with the label name of each. */
class ExprTable {
  readonly exprs: CompiledExpression[] = [];
  readonly labels: string[] = [];

  intern(e: CompiledExpression): number {
    const i = this.exprs.findIndex((x) => x.source === e.source);
    if (i >= 0) return i;
    this.exprs.push(e);
    return this.exprs.length - 1;
  }
}

/** Compile the Telemetry overrides into both modes' plans (istio_stats.cc's metric and tag resolution). */
export function compileStatsPlan(telemetry: TelemetryConfig | undefined, custom: readonly CompiledCustomMetric[]): StatsPlan {
  const table = new ExprTable();
  const modes = [compileMode('CLIENT', telemetry, custom, table), compileMode('SERVER', telemetry, custom, table)];
  return { modes, exprs: table.exprs, exprLabels: table.labels };
}

function compileMode(mode: 'CLIENT' | 'SERVER', telemetry: TelemetryConfig | undefined, custom: readonly CompiledCustomMetric[], table: ExprTable): ModeState {
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
      const e = expr === undefined ? -1 : table.intern(expr);
      const n = sanitizeLabelName(name);
      if (e >= 0) {
        exprIds.add(e);
        table.labels[e] ??= n;
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
  const customTags = new Map<string, readonly CustomTag[]>();
  for (const c of custom) {
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
  return { plans, exprIds: used, direct: new DirectReads(used.map((id) => (table.exprs[id] as CompiledExpression).path)), customTags };
}

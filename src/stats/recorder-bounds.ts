/**
 * The recorder's bounds and shape settings (series cap, byte budgets, label length cap, series TTL,
 * label allow-lists, histogram buckets, custom metrics): one validation for every way they are given.
 * `createIstioStats` calls it with its options; the sidecar calls it at start with options, `MESHTEL_*`
 * variables or `meshtel sidecar` flags, passing `origin` so an error names what the user wrote
 * (`MESHTEL_MAX_EXPOSITION_BYTES must be an integer between …, got "lots"`), not an internal field.
 */
import { ConfigError, isMeshtelError, quote } from '../core/errors.js';
import { parseDurationMs, parseIntInRange } from '../core/config.js';
import { METRICS, validateBuckets, type BucketOverrides } from './definitions.js';
import { compileCustomMetrics, type CustomMetricDefinition } from './custom-metrics.js';
import {
  DEFAULT_MAX_EXPOSITION_BYTES,
  DEFAULT_MAX_LABEL_VALUE_LENGTH,
  DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES,
  PLAINTEXT_SERIES_SHARE,
} from './series-budget.js';

/** Default series per metric before the overflow series takes over. */
export const DEFAULT_MAX_SERIES_PER_METRIC = 10_000;

/** The settings, as an embedding passes them (numbers and objects). */
export interface RecorderBoundsOptions {
  /** Series per metric before the overflow series takes over (default 10 000). */
  readonly maxSeriesPerMetric?: number;
  /** Longest label value in UTF-16 code units (default 600); longer values are cut and counted. */
  readonly maxLabelValueLength?: number;
  /** Byte budget of the istio_* and custom series at their longest rendered form (default 64 MiB). */
  readonly maxExpositionBytes?: number;
  /** Share of the budget label sets of plain-text peers may take (default 16 MiB, at most a quarter). */
  readonly maxPlainTextExpositionBytes?: number;
  /** Series per metric plain-text peers' label sets may take (default a quarter of `maxSeriesPerMetric`). */
  readonly maxPlainTextSeriesPerMetric?: number;
  /** Remove series untouched for this long (ms); 0 = never (default). */
  readonly seriesTtlMs?: number;
  /** Per-label allowed values; other values become `overflow`. */
  readonly labelAllowList?: Readonly<Record<string, readonly string[]>>;
  /** Per-metric histogram buckets (default Envoy's 19 bounds). */
  readonly buckets?: BucketOverrides;
  /** Custom metrics (`istio_<name>` with a CEL value). */
  readonly definitions?: readonly CustomMetricDefinition[];
}

/** The same settings as text (environment variables, flags): numbers, durations (`5m`) and JSON. */
export type RecorderBoundsText = { readonly [K in keyof RecorderBoundsOptions]?: string };

/** Validated settings, defaults applied. */
export interface RecorderBounds {
  readonly maxSeriesPerMetric: number;
  readonly maxLabelValueLength: number;
  readonly maxExpositionBytes: number;
  readonly maxPlainTextExpositionBytes: number;
  readonly maxPlainTextSeriesPerMetric: number;
  readonly seriesTtlMs: number;
  readonly labelAllowList: Readonly<Record<string, readonly string[]>> | undefined;
  readonly buckets: BucketOverrides;
  readonly definitions: readonly CustomMetricDefinition[] | undefined;
}

/** Names the setting in errors: the option name by default, or an env variable / flag. */
export type BoundsOrigin = (field: keyof RecorderBoundsOptions) => string;

const byName: BoundsOrigin = (field) => field;

/**
 * Validate the settings once (throws `MESHTEL_ERR_INVALID_CONFIG`, `MESHTEL_ERR_INVALID_BUCKETS`,
 * `MESHTEL_ERR_INVALID_EXPRESSION` or `MESHTEL_ERR_METRIC_CONFLICT` naming the setting) and apply defaults.
 */
export function resolveRecorderBounds(o: RecorderBoundsOptions | RecorderBoundsText = {}, origin: BoundsOrigin = byName): RecorderBounds {
  const cap = parseIntInRange(o.maxSeriesPerMetric, origin('maxSeriesPerMetric'), 1, 10_000_000) ?? DEFAULT_MAX_SERIES_PER_METRIC;
  const maxBytes = parseIntInRange(o.maxExpositionBytes, origin('maxExpositionBytes'), 65_536, 2 ** 40) ?? DEFAULT_MAX_EXPOSITION_BYTES;
  const ttlRaw = o.seriesTtlMs;
  const ttl = typeof ttlRaw === 'string' ? parseDurationMs(ttlRaw, origin('seriesTtlMs')) : ttlRaw;
  return Object.freeze({
    maxSeriesPerMetric: cap,
    maxLabelValueLength: parseIntInRange(o.maxLabelValueLength, origin('maxLabelValueLength'), 16, 65_536) ?? DEFAULT_MAX_LABEL_VALUE_LENGTH,
    maxExpositionBytes: maxBytes,
    maxPlainTextExpositionBytes:
      parseIntInRange(o.maxPlainTextExpositionBytes, origin('maxPlainTextExpositionBytes'), 0, maxBytes) ??
      Math.min(DEFAULT_MAX_PLAINTEXT_EXPOSITION_BYTES, Math.floor(maxBytes / 4)),
    maxPlainTextSeriesPerMetric:
      parseIntInRange(o.maxPlainTextSeriesPerMetric, origin('maxPlainTextSeriesPerMetric'), 0, cap) ?? Math.ceil(cap / PLAINTEXT_SERIES_SHARE),
    seriesTtlMs: parseIntInRange(ttl, origin('seriesTtlMs'), 0, 365 * 24 * 3_600_000) ?? 0,
    labelAllowList: allowList(json(o.labelAllowList, origin('labelAllowList')), origin('labelAllowList')),
    buckets: buckets(json(o.buckets, origin('buckets')), origin('buckets')),
    definitions: definitions(json(o.definitions, origin('definitions')), origin('definitions')),
  });
}

/** A JSON text (env, flag) or the value itself. */
function json(v: unknown, origin: string): unknown {
  if (typeof v !== 'string') return v;
  if (v.trim() === '') return undefined;
  try {
    return JSON.parse(v) as unknown;
  } catch (err) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} must be JSON, got ${quote(v)}`, { field: origin, value: v }, { cause: err });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function allowList(v: unknown, origin: string): Readonly<Record<string, readonly string[]>> | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v)) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin} must map label names to lists of strings, got ${quote(v)}`, { field: origin, value: v });
  }
  const out: Record<string, readonly string[]> = {};
  for (const [label, values] of Object.entries(v)) {
    if (!Array.isArray(values) || values.some((x) => typeof x !== 'string')) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${origin}.${label} must be a list of strings, got ${quote(values)}`, { field: `${origin}.${label}`, value: values });
    }
    out[label] = Object.freeze([...(values as string[])]);
  }
  return Object.freeze(out);
}

function buckets(v: unknown, origin: string): BucketOverrides {
  if (v === undefined) return {};
  if (!isRecord(v)) {
    throw new ConfigError('MESHTEL_ERR_INVALID_BUCKETS', `${origin} must map histogram names to bounds, got ${quote(v)}`, { field: origin, value: v });
  }
  const out: Record<string, readonly number[]> = {};
  for (const [k, bounds] of Object.entries(v)) {
    const def = METRICS.find((m) => m.name === k);
    if (def === undefined || def.type !== 'histogram') {
      throw new ConfigError('MESHTEL_ERR_INVALID_BUCKETS', `${origin}: ${quote(k)} is not an istio histogram`, { field: `${origin}.${k}` });
    }
    out[k] = validateBuckets(k, bounds);
  }
  return Object.freeze(out) as BucketOverrides;
}

function definitions(v: unknown, origin: string): readonly CustomMetricDefinition[] | undefined {
  if (v === undefined) return undefined;
  try {
    // Compiled here only to validate (a configuration error at start, not at the first request).
    compileCustomMetrics(v as readonly CustomMetricDefinition[], 1);
  } catch (err) {
    if (isMeshtelError(err) && origin !== 'definitions') {
      throw new ConfigError(err.code, `${origin}: ${err.message}`, { ...err.details, origin }, { cause: err });
    }
    throw err;
  }
  return Object.freeze([...(v as CustomMetricDefinition[])]);
}

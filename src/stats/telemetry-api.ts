/**
 * Istio's Telemetry API (`telemetry.istio.io/v1` `Telemetry`, `spec.metrics[].overrides[]`) parsed and
 * validated into the overrides the recorder applies. Semantics follow istio/istio
 * `pilot/pkg/model/telemetry.go` (`mergeMetrics`, `generateStatsConfig`) and istio/proxy
 * `istio_stats.cc` (`Config`): later resources and later overrides win; `disabled` drops a metric per
 * mode; REMOVE deletes a standard tag in place; UPSERT of a standard tag replaces its value in place;
 * UPSERT of a new tag appends it after the standard tags, new tags sorted by name.
 *
 * Errors are `MESHTEL_ERR_INVALID_TELEMETRY` whose message and `details.field` name the bad field
 * path, e.g. `spec.metrics[0].overrides[1].match.mode`. A tag value that does not compile does NOT
 * reject the resource (issue 10.3): Istio's validation does not check CEL, and istio_stats.cc
 * (`Config`, `getOrCreateExpression` returning no id) only logs it; the tag then behaves as Envoy's:
 * a standard tag is dropped from the metric, an added tag is not added. The failure is kept in
 * {@link TelemetryConfig.expressionErrors} so the recorder logs and counts it and `meshtel lint`
 * warns about it.
 */
import { ConfigError, isMeshtelError, quote } from '../core/errors.js';
import { parseDurationMs } from '../core/config.js';
import { compileExpression, type CompiledExpression } from './expression.js';
import { METRICS, type TelemetryMetricName } from './definitions.js';
import { yamlModule } from '../core/lazy-yaml.js';

/** Modes a Telemetry override can match (istio/api `WorkloadMode`). */
export type TelemetryMode = 'CLIENT' | 'SERVER' | 'CLIENT_AND_SERVER';

/** One tag override after validation. */
export type TagOverride =
  | { readonly operation: 'REMOVE' }
  | { readonly operation: 'UPSERT'; readonly value: string; readonly expression: CompiledExpression }
  /** An UPSERT whose value did not compile: Envoy drops a standard tag, ignores an added one. */
  | { readonly operation: 'INVALID'; readonly value: string; readonly error: string };

/** A tag value that failed to compile (the rest of the configuration still applies). */
export interface ExpressionFailure {
  /** Field path, e.g. `spec.metrics[0].overrides[0].tagOverrides.x.value`. */
  readonly field: string;
  /** `match.metric` / `match.customMetric` of the override (`ALL_METRICS` when absent). */
  readonly metric: string;
  readonly tag: string;
  readonly value: string;
  /** The compiler's message (MESHTEL_ERR_INVALID_EXPRESSION). */
  readonly message: string;
}

/** One `overrides[]` entry after validation. */
export interface MetricOverride {
  /** `ALL_METRICS` or one of the standard metrics (ignored when {@link customMetric} is set). */
  readonly metric: TelemetryMetricName | 'ALL_METRICS';
  /**
   * `match.customMetric`: the override applies to the custom metric of that name (istio/api
   * `MetricSelector.custom_metric`, e.g. `istio_custom_total` → definition `custom_total`) only.
   */
  readonly customMetric?: string;
  readonly mode: TelemetryMode;
  /** `undefined` leaves the previous setting. */
  readonly disabled?: boolean;
  /** Tag name → override, in source order. */
  readonly tagOverrides: Readonly<Record<string, TagOverride>>;
  /** Where it came from, e.g. `spec.metrics[0].overrides[1]`, for diagnostics. */
  readonly path: string;
}

/** Parsed Telemetry configuration: the overrides in application order. */
export interface TelemetryConfig {
  readonly overrides: readonly MetricOverride[];
  /** Tag values that did not compile, in source order (their tags are dropped, the rest applies). */
  readonly expressionErrors: readonly ExpressionFailure[];
  /** `spec.metrics[].reportingInterval` (the last one given), milliseconds. */
  readonly reportingIntervalMs?: number;
}

const METRIC_NAMES = new Set<string>(['ALL_METRICS', ...METRICS.map((m) => m.telemetryName)]);
const MODES = new Set<string>(['CLIENT', 'SERVER', 'CLIENT_AND_SERVER']);
const TAG_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function bad(field: string, message: string, value: unknown): never {
  throw new ConfigError('MESHTEL_ERR_INVALID_TELEMETRY', `${field}: ${message}, got ${quote(value)}`, { field, value });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parse one or more Telemetry resources: a YAML string (one or many `---` documents), a parsed
 * object, or an array of them. Resources are applied in the order given.
 */
export function parseTelemetry(input: string | object | readonly object[]): TelemetryConfig {
  let docs: unknown[];
  if (typeof input === 'string') {
    const parsed = yamlModule().parseAllDocuments(input);
    docs = [];
    for (const [i, d] of parsed.entries()) {
      if (d.errors.length > 0) {
        const e = d.errors[0];
        throw new ConfigError('MESHTEL_ERR_INVALID_TELEMETRY', `document ${i + 1}: YAML error: ${e?.message ?? 'unknown'}`, {
          field: `document ${i + 1}`,
        });
      }
      const js: unknown = d.toJS();
      if (js !== null && js !== undefined) docs.push(js);
    }
  } else {
    docs = Array.isArray(input) ? [...(input as unknown[])] : [input];
  }
  const overrides: MetricOverride[] = [];
  const expressionErrors: ExpressionFailure[] = [];
  let reportingIntervalMs: number | undefined;
  docs.forEach((doc, di) => {
    // Documents are numbered from 1, as `meshtel inject` numbers them.
    const prefix = docs.length > 1 ? `document ${di + 1}: ` : '';
    if (!isObject(doc)) bad(`${prefix}(root)`, 'must be a Telemetry object', doc);
    if (doc.apiVersion !== undefined && !/^telemetry\.istio\.io\/v1(alpha1|beta1)?$/.test(String(doc.apiVersion))) {
      bad(`${prefix}apiVersion`, 'must be telemetry.istio.io/v1', doc.apiVersion);
    }
    if (doc.kind !== undefined && doc.kind !== 'Telemetry') bad(`${prefix}kind`, 'must be Telemetry', doc.kind);
    const spec = doc.spec;
    if (spec === undefined || spec === null) return;
    if (!isObject(spec)) bad(`${prefix}spec`, 'must be an object', spec);
    const metrics = spec.metrics;
    if (metrics === undefined || metrics === null) return;
    if (!Array.isArray(metrics)) bad(`${prefix}spec.metrics`, 'must be a list', metrics);
    metrics.forEach((m: unknown, mi) => {
      const mp = `${prefix}spec.metrics[${mi}]`;
      if (!isObject(m)) bad(mp, 'must be an object', m);
      if (m.providers !== undefined) {
        if (!Array.isArray(m.providers)) bad(`${mp}.providers`, 'must be a list', m.providers);
        // Only the prometheus provider is ours; a list without it does not apply here.
        const names = m.providers.map((p: unknown, pi) => {
          if (!isObject(p) || typeof p.name !== 'string') bad(`${mp}.providers[${pi}].name`, 'must be a string', isObject(p) ? p.name : p);
          return p.name;
        });
        if (names.length > 0 && !names.includes('prometheus')) return;
      }
      if (m.reportingInterval !== undefined) {
        try {
          reportingIntervalMs = parseDurationMs(m.reportingInterval as string | number, `${mp}.reportingInterval`);
        } catch {
          bad(`${mp}.reportingInterval`, 'must be a duration such as "5s"', m.reportingInterval);
        }
      }
      if (m.overrides === undefined || m.overrides === null) return;
      if (!Array.isArray(m.overrides)) bad(`${mp}.overrides`, 'must be a list', m.overrides);
      m.overrides.forEach((o: unknown, oi) => overrides.push(parseOverride(o, `${mp}.overrides[${oi}]`, expressionErrors)));
    });
  });
  return Object.freeze({
    overrides: Object.freeze(overrides),
    expressionErrors: Object.freeze(expressionErrors),
    ...(reportingIntervalMs !== undefined ? { reportingIntervalMs } : {}),
  });
}

function parseOverride(o: unknown, op: string, failures: ExpressionFailure[]): MetricOverride {
  if (!isObject(o)) bad(op, 'must be an object', o);
  let metric: TelemetryMetricName | 'ALL_METRICS' = 'ALL_METRICS';
  let customMetric: string | undefined;
  let mode: TelemetryMode = 'CLIENT_AND_SERVER';
  if (o.match !== undefined && o.match !== null) {
    const match = o.match;
    if (!isObject(match)) bad(`${op}.match`, 'must be an object', match);
    if (match.customMetric !== undefined && match.customMetric !== null) {
      if (match.metric !== undefined && match.metric !== null) bad(`${op}.match`, 'give metric or customMetric, not both', match);
      if (typeof match.customMetric !== 'string' || !/^(istio_)?[a-zA-Z_][a-zA-Z0-9_]*$/.test(match.customMetric)) {
        bad(`${op}.match.customMetric`, 'must be a metric name such as istio_custom_total', match.customMetric);
      }
      // Istio prefixes definitions with istio_; accept the name with or without it.
      customMetric = match.customMetric.startsWith('istio_') ? match.customMetric.slice('istio_'.length) : match.customMetric;
    } else if (match.metric !== undefined) {
      if (typeof match.metric !== 'string' || !METRIC_NAMES.has(match.metric)) {
        bad(`${op}.match.metric`, `must be one of ${[...METRIC_NAMES].join(', ')}`, match.metric);
      }
      metric = match.metric as TelemetryMetricName | 'ALL_METRICS';
    }
    if (match.mode !== undefined) {
      if (typeof match.mode !== 'string' || !MODES.has(match.mode)) bad(`${op}.match.mode`, 'must be CLIENT, SERVER or CLIENT_AND_SERVER', match.mode);
      mode = match.mode as TelemetryMode;
    }
  }
  let disabled: boolean | undefined;
  if (o.disabled !== undefined && o.disabled !== null) {
    if (typeof o.disabled !== 'boolean') bad(`${op}.disabled`, 'must be true or false', o.disabled);
    disabled = o.disabled;
  }
  const tagOverrides: Record<string, TagOverride> = {};
  if (o.tagOverrides !== undefined && o.tagOverrides !== null) {
    if (!isObject(o.tagOverrides)) bad(`${op}.tagOverrides`, 'must be a map of tag name to override', o.tagOverrides);
    for (const [tag, t] of Object.entries(o.tagOverrides)) {
      const tp = `${op}.tagOverrides.${tag}`;
      if (!TAG_NAME.test(tag)) bad(tp, 'tag names must match [a-zA-Z_][a-zA-Z0-9_]*', tag);
      if (!isObject(t)) bad(tp, 'must be an object', t);
      const operation = t.operation ?? 'UPSERT';
      if (operation === 'REMOVE') {
        tagOverrides[tag] = Object.freeze({ operation: 'REMOVE' });
      } else if (operation === 'UPSERT') {
        if (typeof t.value !== 'string' || t.value.trim() === '') bad(`${tp}.value`, 'UPSERT needs a non-empty expression', t.value);
        let expression: CompiledExpression;
        try {
          expression = compileExpression(t.value);
        } catch (e) {
          if (!isMeshtelError(e, 'MESHTEL_ERR_INVALID_EXPRESSION')) throw e;
          failures.push(
            Object.freeze({ field: `${tp}.value`, metric: customMetric !== undefined ? `istio_${customMetric}` : metric, tag, value: t.value, message: e.message }),
          );
          tagOverrides[tag] = Object.freeze({ operation: 'INVALID', value: t.value, error: e.message });
          continue;
        }
        tagOverrides[tag] = Object.freeze({ operation: 'UPSERT', value: t.value, expression });
      } else {
        bad(`${tp}.operation`, 'must be UPSERT or REMOVE', operation);
      }
    }
  }
  return Object.freeze({
    metric,
    ...(customMetric !== undefined ? { customMetric } : {}),
    mode,
    ...(disabled !== undefined ? { disabled } : {}),
    tagOverrides: Object.freeze(tagOverrides),
    path: op,
  });
}

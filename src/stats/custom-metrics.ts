/**
 * Custom metric definitions of istio/proxy's stats config (`stats.PluginConfig.definitions[]`:
 * `{name, value, type}`), e.g. `istio_get_calls{} 22` from mx-vectors #15. Each becomes `istio_<name>`
 * with no standard tags; its value is a CEL expression evaluated at stream end (HTTP) or connection
 * close (TCP), read as an unsigned integer the way `absl::SimpleAtoi` does (anything else adds 0).
 * Redefining a standard metric is refused (istio_stats.cc logs and skips it; meshtel fails at
 * configuration time with `MESHTEL_ERR_METRIC_CONFLICT`).
 */
import { ConfigError, isMeshtelError, quote } from '../core/errors.js';
import { compileExpression, type CompiledExpression } from './expression.js';
import { DEFAULT_BUCKETS, ISTIO_BUILD, METRICS } from './definitions.js';
import { Family } from './series.js';

/** One custom metric definition as configured. */
export interface CustomMetricDefinition {
  /** Name without the `istio_` prefix, e.g. `get_calls`. */
  readonly name: string;
  /** CEL expression giving a non-negative integer, e.g. `request.method == 'GET' ? 1 : 0`. */
  readonly value: string;
  /** Default COUNTER. Histograms use Envoy's default buckets (istio_stats.cc records them as bytes). */
  readonly type?: 'COUNTER' | 'GAUGE' | 'HISTOGRAM';
}

/** A validated definition with its family. */
export interface CompiledCustomMetric {
  readonly family: Family;
  readonly type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM';
  readonly value: CompiledExpression;
}

const NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Validate and compile definitions; throws ConfigError naming `definitions[i].field`. */
export function compileCustomMetrics(defs: readonly CustomMetricDefinition[] | undefined, cap: number): CompiledCustomMetric[] {
  if (defs === undefined) return [];
  if (!Array.isArray(defs)) {
    throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `definitions must be a list, got ${quote(defs)}`, { field: 'definitions' });
  }
  const taken = new Set<string>([...METRICS.map((m) => m.name), ISTIO_BUILD]);
  return defs.map((d: CustomMetricDefinition, i) => {
    const at = `definitions[${i}]`;
    if (d === null || typeof d !== 'object' || typeof d.name !== 'string' || !NAME.test(d.name)) {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${at}.name must match [a-zA-Z_][a-zA-Z0-9_]*, got ${quote(d?.name)}`, {
        field: `${at}.name`,
        value: d?.name,
      });
    }
    const full = `istio_${d.name}`;
    if (taken.has(full)) {
      throw new ConfigError('MESHTEL_ERR_METRIC_CONFLICT', `${at}.name: ${full} is a standard metric or defined twice`, {
        field: `${at}.name`,
        value: d.name,
      });
    }
    taken.add(full);
    const type = d.type ?? 'COUNTER';
    if (type !== 'COUNTER' && type !== 'GAUGE' && type !== 'HISTOGRAM') {
      throw new ConfigError('MESHTEL_ERR_INVALID_CONFIG', `${at}.type must be COUNTER, GAUGE or HISTOGRAM, got ${quote(type)}`, {
        field: `${at}.type`,
        value: type,
      });
    }
    let value: CompiledExpression;
    try {
      value = compileExpression(d.value);
    } catch (e) {
      if (isMeshtelError(e)) {
        throw new ConfigError('MESHTEL_ERR_INVALID_EXPRESSION', `${at}.value: ${e.message}`, { ...e.details, field: `${at}.value` }, { cause: e });
      }
      throw e;
    }
    const family = new Family(
      full,
      type === 'COUNTER' ? 'counter' : type === 'GAUGE' ? 'gauge' : 'histogram',
      `Custom metric ${full} = ${d.value}`,
      cap,
      type === 'HISTOGRAM' ? DEFAULT_BUCKETS : [],
    );
    family.emptyBraces = true;
    return { family, type, value };
  });
}

/** `absl::SimpleAtoi` into an unsigned 64-bit integer: digits (optional `+`, surrounding spaces), else 0. */
export function simpleAtoiUnsigned(s: string): number {
  const t = s.trim();
  return /^\+?\d+$/.test(t) ? Number(t) : 0;
}

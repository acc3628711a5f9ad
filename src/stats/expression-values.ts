/**
 * What the values of a Telemetry tag expression are and how they behave when evaluated: the CEL value model of the
 * subset, the attribute scope interface, the evaluation error and the operations the compiled closures call
 * (equality, size, field selection, indexing, Envoy's `print`). Used per request; nothing here allocates beyond
 * its result.
 */

/** A CEL value as this subset models it. */
export type CelValue = string | number | boolean | null | CelMap | readonly CelValue[];
/** A CEL map (headers, labels, metadata). */
export interface CelMap {
  readonly [key: string]: CelValue | undefined;
}

/**
 * Resolves top-level identifiers (`request`, `response`, `source`, `destination`, `connection`, `xds`,
 * `filter_state`, and the aliases `upstream_peer`, `downstream_peer`, `node`) to values; `undefined` = not
 * available (error).
 */
export interface ExpressionScope {
  resolve(name: string): CelValue | undefined;
}

/** Thrown internally during evaluation; never escapes `CompiledExpression.evaluate` (expression.ts). */
export class EvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalError';
  }
}

/** Value of a tag whose expression failed (istio_stats.cc pushes `unknown_`). */
export const EVAL_ERROR_VALUE = 'unknown';

/** Throw the evaluation error (the expression's value becomes `unknown`). */
export function err(msg: string): never {
  throw new EvalError(msg);
}

/** A map value (not a list, not null). */
export function isMap(v: CelValue | undefined): v is CelMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The CEL type name of a value, for messages and `==`. */
export function typeOf(v: CelValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  return typeof v === 'object' ? 'map' : typeof v;
}

/** CEL `==`: same type and value, lists element-wise, maps key-wise. */
export function celEquals(a: CelValue, b: CelValue): boolean {
  if (typeOf(a) !== typeOf(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i] as CelValue));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => b[k] !== undefined && celEquals(a[k] as CelValue, b[k] as CelValue));
  }
  return a === b;
}

/** The value as a string, or an evaluation error naming the function. */
export function asString(v: CelValue, what: string): string {
  if (typeof v !== 'string') err(`${what} expects a string, got ${typeOf(v)}`);
  return v;
}

/** CEL `size()`: code points of a string, elements of a list, keys of a map. */
export function sizeOf(v: CelValue): number {
  if (typeof v === 'string') return [...v].length;
  if (Array.isArray(v)) return v.length;
  if (isMap(v)) return Object.keys(v).length;
  return err(`size() of ${typeOf(v)}`);
}

/** Envoy CEL `print`: strings as-is, ints in decimal, bools `true`/`false`. */
export function printValue(v: CelValue): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null) return 'null';
  // Lists and maps have no printable form in a metric tag.
  return err(`cannot print ${typeOf(v)}`);
}

/** `obj.field` on a map; a missing field is an evaluation error. */
export function select(obj: CelValue, field: string): CelValue {
  if (!isMap(obj)) return err(`no field ${field} on ${typeOf(obj)}`);
  const v = Object.prototype.hasOwnProperty.call(obj, field) ? obj[field] : undefined;
  return v === undefined ? err(`no such field ${field}`) : v;
}

/** `obj[key]`: a list element by index or a map value by string key; out of range or missing is an error. */
export function index(obj: CelValue, key: CelValue): CelValue {
  if (Array.isArray(obj)) {
    if (typeof key !== 'number' || key < 0 || key >= obj.length) return err('index out of range');
    return obj[key] as CelValue;
  }
  if (isMap(obj)) {
    if (typeof key !== 'string') return err('map key must be a string');
    const v = Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
    return v === undefined ? err(`no such key ${key}`) : v;
  }
  return err(`cannot index ${typeOf(obj)}`);
}


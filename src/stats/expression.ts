/**
 * A safe, compiled subset of CEL for Telemetry API tag values (istio/api `telemetry/v1alpha1`
 * `tagOverrides[].value`, evaluated by istio/proxy `istio_stats.cc` with Envoy's CEL attributes).
 *
 * Parsed once at configuration time into a tree of closures: no `eval`, no `new Function`, no regex
 * built from user input, bounded source length and nesting. Supported:
 * - attribute paths in Envoy's vocabulary (`request.headers['x-user']`, `response.code`, `connection.mtls`,
 *   `xds.node.metadata['MESH_ID']`, `xds.cluster_name`, `filter_state.upstream_peer.labels['role']`, ...) and
 *   meshtel's aliases (`node.metadata[...]`, `upstream_peer.app`); the set is in attributes.ts;
 * - literals: strings ('…' or "…" with escapes), integers, `true`, `false`, `null`;
 * - operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, `!`, unary `-`, `+` (int add, string
 *   concat), `-`, `? :`, `in` (map key / list element);
 * - functions: `has(a.b)`, `size(x)`, `string(x)`, `int(x)`, `x.startsWith(s)`, `x.endsWith(s)`,
 *   `x.contains(s)`, `x.size()`.
 *
 * Parse errors throw `MESHTEL_ERR_INVALID_EXPRESSION` (configuration time). Evaluation never throws:
 * a missing attribute, key or type mismatch makes the value `unknown`, as Envoy does for an error.
 */
import { ConfigError, quote } from '../core/errors.js';
import { literalPath, tokenize } from './expression-lexer.js';
import { Parser } from './expression-parser.js';
import { EVAL_ERROR_VALUE, printValue, type CelValue, type ExpressionScope } from './expression-values.js';

export { EvalError, EVAL_ERROR_VALUE, printValue } from './expression-values.js';
export type { CelMap, CelValue, ExpressionScope } from './expression-values.js';

/** A compiled expression. */
export interface CompiledExpression {
  /** The source text. */
  readonly source: string;
  /**
   * Grammar steps the parser took: linear in the number of tokens (at most a small constant times it).
   * Kept so a test can pin the compile cost, which once was exponential in nested `has()`.
   */
  readonly parseSteps: number;
  /**
   * The expression as an attribute path when it is nothing else: an identifier followed only by `.field` and
   * `['literal']` selections (`request.headers['x-user']` is `['request', 'headers', 'x-user']`); otherwise
   * undefined. The recorder reads the commonest paths straight from the request (attribute-readers.ts) instead
   * of building the attribute maps; evaluating the path gives the same value.
   */
  readonly path?: readonly string[];
  /** Evaluate to a label value, Envoy CEL `print` style; `unknown` on any evaluation error. */
  evaluate(scope: ExpressionScope): string;
  /** Evaluate to a raw value; throws {@link EvalError} on errors (internal use and tests). */
  evaluateRaw(scope: ExpressionScope): CelValue;
}

const MAX_SOURCE = 4096;

/**
 * Compile an expression. Throws `MESHTEL_ERR_INVALID_EXPRESSION` with the position of the problem.
 */
export function compileExpression(source: string): CompiledExpression {
  if (typeof source !== 'string' || source.trim() === '') {
    throw new ConfigError('MESHTEL_ERR_INVALID_EXPRESSION', `expression must be a non-empty string, got ${quote(source)}`, {
      expression: source,
    });
  }
  if (source.length > MAX_SOURCE) {
    throw new ConfigError('MESHTEL_ERR_INVALID_EXPRESSION', `expression is longer than ${MAX_SOURCE} characters`, {
      expression: source.slice(0, 80),
    });
  }
  const tokens = tokenize(source);
  const parser = new Parser(source, tokens);
  const root = parser.parse();
  const path = literalPath(tokens);
  return Object.freeze({
    source,
    parseSteps: parser.steps,
    ...(path !== undefined ? { path } : {}),
    evaluateRaw: root,
    evaluate(scope: ExpressionScope): string {
      try {
        return printValue(root(scope));
      } catch {
        return EVAL_ERROR_VALUE;
      }
    },
  });
}

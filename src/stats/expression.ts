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

/** Thrown internally during evaluation; never escapes {@link CompiledExpression.evaluate}. */
export class EvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalError';
  }
}

/** Value of a tag whose expression failed (istio_stats.cc pushes `unknown_`). */
export const EVAL_ERROR_VALUE = 'unknown';

const MAX_SOURCE = 4096;
const MAX_DEPTH = 64;

type Node = (scope: ExpressionScope) => CelValue;

// ---------------------------------------------------------------- tokenizer

type Tok =
  | { t: 'id'; v: string; p: number }
  | { t: 'str'; v: string; p: number }
  | { t: 'int'; v: number; p: number }
  | { t: 'op'; v: string; p: number }
  | { t: 'eof'; p: number };

const OPS = ['&&', '||', '==', '!=', '<=', '>=', '!', '<', '>', '+', '-', '?', ':', '.', '(', ')', '[', ']', ','];

function fail(source: string, pos: number, msg: string): never {
  throw new ConfigError('MESHTEL_ERR_INVALID_EXPRESSION', `invalid expression ${quote(source)} at ${pos}: ${msg}`, {
    expression: source,
    position: pos,
  });
}

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j] as string)) j++;
      out.push({ t: 'id', v: src.slice(i, j), p: i });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < src.length && /[0-9]/.test(src[j] as string)) j++;
      const n = Number(src.slice(i, j));
      if (src[j] === 'u') j++; // uint literal: same value in this subset
      if (src[j] === '.' && /[0-9]/.test(src[j + 1] ?? '')) fail(src, i, 'floating-point literals are not supported');
      out.push({ t: 'int', v: n, p: i });
      i = j;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= src.length) fail(src, i, 'unterminated string');
        const d = src[j] as string;
        if (d === c) break;
        if (d === '\\') {
          const e = src[j + 1];
          if (e === undefined) fail(src, j, 'unterminated escape');
          const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'" };
          const m = map[e];
          if (m === undefined) fail(src, j, `unsupported escape \\${e}`);
          s += m;
          j += 2;
          continue;
        }
        s += d;
        j++;
      }
      out.push({ t: 'str', v: s, p: i });
      i = j + 1;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op === undefined) fail(src, i, `unexpected character ${JSON.stringify(c)}`);
    out.push({ t: 'op', v: op, p: i });
    i += op.length;
  }
  out.push({ t: 'eof', p: src.length });
  return out;
}

// ---------------------------------------------------------------- helpers used at evaluation

function err(msg: string): never {
  throw new EvalError(msg);
}

function isMap(v: CelValue | undefined): v is CelMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeOf(v: CelValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  return typeof v === 'object' ? 'map' : typeof v;
}

function celEquals(a: CelValue, b: CelValue): boolean {
  if (typeOf(a) !== typeOf(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i] as CelValue));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => b[k] !== undefined && celEquals(a[k] as CelValue, b[k] as CelValue));
  }
  return a === b;
}

function asString(v: CelValue, what: string): string {
  if (typeof v !== 'string') err(`${what} expects a string, got ${typeOf(v)}`);
  return v;
}

function sizeOf(v: CelValue): number {
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

// ---------------------------------------------------------------- parser

class Parser {
  private i = 0;
  private depth = 0;
  /** Parser work done: one step per grammar rule entered and per selection; linear in the tokens. */
  steps = 0;
  constructor(
    private readonly src: string,
    private readonly toks: Tok[],
  ) {}

  private peek(): Tok {
    return this.toks[this.i] as Tok;
  }
  private next(): Tok {
    return this.toks[this.i++] as Tok;
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }
  private expect(v: string): void {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) fail(this.src, t.p, `expected ${JSON.stringify(v)}`);
  }
  step(): void {
    this.steps++;
  }
  private enter(p: number): void {
    this.steps++;
    if (++this.depth > MAX_DEPTH) fail(this.src, p, 'expression nests too deeply');
  }
  /** Parse a sub-expression that starts at `p` one level deeper, counted against MAX_DEPTH. */
  private nested<T>(p: number, parse: () => T): T {
    this.enter(p);
    const n = parse();
    this.depth--;
    return n;
  }

  parse(): Node {
    const n = this.ternary();
    const t = this.peek();
    if (t.t !== 'eof') fail(this.src, t.p, 'unexpected trailing input');
    return n;
  }

  private ternary(): Node {
    this.enter(this.peek().p);
    const cond = this.or();
    if (!this.isOp('?')) {
      this.depth--;
      return cond;
    }
    this.next();
    const a = this.ternary();
    this.expect(':');
    const b = this.ternary();
    this.depth--;
    return (s) => {
      const c = cond(s);
      if (typeof c !== 'boolean') err('condition must be a bool');
      return c ? a(s) : b(s);
    };
  }

  private or(): Node {
    return this.logical('||', true, () => this.and());
  }

  private and(): Node {
    return this.logical('&&', false, () => this.rel());
  }

  /**
   * A left-associative chain of `||` (absorbing value `true`) or `&&` (absorbing value `false`) with CEL's
   * commutative error handling: the absorbing value on either side decides even when the other side
   * errors (`true || error` is true, `error && false` is false); otherwise the left error is rethrown.
   */
  private logical(op: '||' | '&&', absorbing: boolean, operand: () => Node): Node {
    const other = !absorbing;
    const notBool = `${op} expects bools`;
    let left = operand();
    while (this.isOp(op)) {
      this.next();
      const l = left;
      const r = operand();
      left = (s) => {
        let le: unknown;
        try {
          const v = l(s);
          if (v === absorbing) return absorbing;
          if (v !== other) err(notBool);
        } catch (e) {
          le = e;
        }
        const v = r(s);
        if (v === absorbing) return absorbing;
        if (v !== other) err(notBool);
        if (le !== undefined) throw le;
        return other;
      };
    }
    return left;
  }

  private rel(): Node {
    this.step();
    const left = this.add();
    const t = this.peek();
    const op = t.t === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.v) ? t.v : t.t === 'id' && t.v === 'in' ? 'in' : undefined;
    if (op === undefined) return left;
    this.next();
    const right = this.add();
    switch (op) {
      case '==':
        return (s) => celEquals(left(s), right(s));
      case '!=':
        return (s) => !celEquals(left(s), right(s));
      case 'in':
        return (s) => {
          const k = left(s);
          const c = right(s);
          if (Array.isArray(c)) return c.some((x) => celEquals(x, k));
          if (isMap(c)) return typeof k === 'string' && Object.prototype.hasOwnProperty.call(c, k) && c[k] !== undefined;
          return err('in expects a list or map');
        };
      default:
        return (s) => {
          const a = left(s);
          const b = right(s);
          if (typeof a !== typeof b || (typeof a !== 'number' && typeof a !== 'string')) err(`cannot compare ${typeOf(a)} and ${typeOf(b)}`);
          const x = a as number | string;
          const y = b as number | string;
          return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
        };
    }
  }

  private add(): Node {
    this.step();
    let left = this.unary();
    while (this.isOp('+') || this.isOp('-')) {
      const op = this.next() as { v: string };
      const l = left;
      const r = this.unary();
      left =
        op.v === '+'
          ? (s) => {
              const a = l(s);
              const b = r(s);
              if (typeof a === 'number' && typeof b === 'number') return a + b;
              if (typeof a === 'string' && typeof b === 'string') return a + b;
              return err(`no + for ${typeOf(a)} and ${typeOf(b)}`);
            }
          : (s) => {
              const a = l(s);
              const b = r(s);
              if (typeof a === 'number' && typeof b === 'number') return a - b;
              return err(`no - for ${typeOf(a)} and ${typeOf(b)}`);
            };
    }
    return left;
  }

  private unary(): Node {
    this.step();
    if (this.isOp('!')) {
      const n = this.nested(this.next().p, () => this.unary());
      return (s) => {
        const v = n(s);
        if (typeof v !== 'boolean') err('! expects a bool');
        return !v;
      };
    }
    if (this.isOp('-')) {
      const n = this.nested(this.next().p, () => this.unary());
      return (s) => {
        const v = n(s);
        if (typeof v !== 'number') err('unary - expects an int');
        return -v;
      };
    }
    return this.member();
  }

  private member(): Node {
    return this.memberChain().node;
  }

  /**
   * A primary followed by `.field`, `.method(...)` and `[index]` selections. Also returns the object
   * and field of the chain's final `.field` selection, so `has()` tests presence on the object it has
   * already compiled instead of re-parsing its operand (re-parsing made nested `has()` exponential:
   * issue 11.8, 22 levels took 17.6 s).
   */
  private memberChain(): { node: Node; obj?: Node; field?: string } {
    let node = this.primary();
    let obj: Node | undefined;
    let field: string | undefined;
    for (;;) {
      this.step();
      if (this.isOp('.')) {
        this.next();
        const t = this.next();
        if (t.t !== 'id') fail(this.src, t.p, 'expected a field name');
        if (this.isOp('(')) {
          node = this.method(node, t.v, t.p);
          obj = undefined;
          field = undefined;
        } else {
          const o = node;
          const f = t.v;
          node = (s) => select(o(s), f);
          obj = o;
          field = f;
        }
        continue;
      }
      if (this.isOp('[')) {
        const idx = this.nested(this.next().p, () => this.ternary());
        this.expect(']');
        const o = node;
        node = (s) => index(o(s), idx(s));
        obj = undefined;
        field = undefined;
        continue;
      }
      return obj !== undefined && field !== undefined ? { node, obj, field } : { node };
    }
  }

  private args(): Node[] {
    this.expect('(');
    const args: Node[] = [];
    if (!this.isOp(')')) {
      for (;;) {
        args.push(this.ternary());
        if (this.isOp(',')) {
          this.next();
          continue;
        }
        break;
      }
    }
    this.expect(')');
    return args;
  }

  private method(target: Node, name: string, pos: number): Node {
    const args = this.args();
    const arity = (n: number): void => {
      if (args.length !== n) fail(this.src, pos, `${name}() takes ${n} argument(s)`);
    };
    switch (name) {
      case 'startsWith':
      case 'endsWith':
      case 'contains': {
        arity(1);
        const a = args[0] as Node;
        return (s) => {
          const x = asString(target(s), name);
          const y = asString(a(s), name);
          return name === 'startsWith' ? x.startsWith(y) : name === 'endsWith' ? x.endsWith(y) : x.includes(y);
        };
      }
      case 'size':
        arity(0);
        return (s) => sizeOf(target(s));
      default:
        return fail(this.src, pos, `unsupported function ${name}()`);
    }
  }

  private primary(): Node {
    this.step();
    const t = this.next();
    switch (t.t) {
      case 'str': {
        const v = t.v;
        return () => v;
      }
      case 'int': {
        const v = t.v;
        return () => v;
      }
      case 'op':
        if (t.v === '(') {
          const n = this.nested(t.p, () => this.ternary());
          this.expect(')');
          return n;
        }
        return fail(this.src, t.p, `unexpected ${JSON.stringify(t.v)}`);
      case 'eof':
        return fail(this.src, t.p, 'unexpected end of expression');
      case 'id':
        break;
    }
    const name = t.v;
    if (name === 'true') return () => true;
    if (name === 'false') return () => false;
    if (name === 'null') return () => null;
    if (this.isOp('(')) return this.func(name, t.p);
    return (s) => {
      const v = s.resolve(name);
      return v === undefined ? err(`undeclared reference ${name}`) : v;
    };
  }

  private func(name: string, pos: number): Node {
    if (name === 'has') {
      // has() is a macro over a field selection: evaluate the operand's object, test the last field.
      this.expect('(');
      const chain = this.nested(pos, () => this.memberChain());
      this.expect(')');
      const obj = chain.obj;
      const field = chain.field;
      if (obj === undefined || field === undefined) {
        return fail(this.src, pos, 'has() expects a field selection such as has(request.headers.x)');
      }
      return (s) => {
        const o = obj(s);
        if (!isMap(o)) return err('has() on a non-map');
        return Object.prototype.hasOwnProperty.call(o, field) && o[field] !== undefined;
      };
    }
    const args = this.args();
    const one = (): Node => {
      if (args.length !== 1) fail(this.src, pos, `${name}() takes 1 argument`);
      return args[0] as Node;
    };
    switch (name) {
      case 'size': {
        const a = one();
        return (s) => sizeOf(a(s));
      }
      case 'string': {
        const a = one();
        return (s) => printValue(a(s));
      }
      case 'int': {
        const a = one();
        return (s) => {
          const v = a(s);
          if (typeof v === 'number') return Math.trunc(v);
          if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
          return err(`int() of ${typeOf(v)}`);
        };
      }
      default:
        return fail(this.src, pos, `unsupported function ${name}()`);
    }
  }
}

function select(obj: CelValue, field: string): CelValue {
  if (!isMap(obj)) return err(`no field ${field} on ${typeOf(obj)}`);
  const v = Object.prototype.hasOwnProperty.call(obj, field) ? obj[field] : undefined;
  return v === undefined ? err(`no such field ${field}`) : v;
}

function index(obj: CelValue, key: CelValue): CelValue {
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

/** Identifiers that are literals or macros, never attribute roots. */
const NOT_ROOTS: ReadonlySet<string> = new Set(['true', 'false', 'null', 'has', 'in', 'size', 'string', 'int']);

/**
 * The tokens as an attribute path (`id`, then `.id` or `['str']` selections, then the end), or undefined. A
 * selection by field and by string index are the same lookup on a map (`select` and `index` above), so the path
 * keeps only the names.
 */
function literalPath(toks: readonly Tok[]): readonly string[] | undefined {
  const first = toks[0];
  if (first === undefined || first.t !== 'id' || NOT_ROOTS.has(first.v)) return undefined;
  const path = [first.v];
  let i = 1;
  for (;;) {
    const t = toks[i] as Tok;
    if (t.t === 'eof') return Object.freeze(path);
    if (t.t !== 'op') return undefined;
    const a = toks[i + 1];
    if (t.v === '.' && a?.t === 'id') {
      path.push(a.v);
      i += 2;
    } else if (t.v === '[' && a?.t === 'str' && toks[i + 2]?.t === 'op' && (toks[i + 2] as { v: string }).v === ']') {
      path.push(a.v);
      i += 3;
    } else {
      return undefined;
    }
  }
}

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

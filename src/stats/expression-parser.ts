/**
 * The parser of Telemetry tag expressions, which compiles as it parses: each grammar rule returns a closure over
 * the closures of its operands, so an expression is parsed once at configuration time into a tree of closures and
 * evaluation walks no syntax. Bounded nesting (MAX_DEPTH) and work linear in the tokens (`steps`).
 */
import { fail, type Tok } from './expression-lexer.js';
import {
  asString,
  celEquals,
  err,
  index,
  isMap,
  printValue,
  select,
  sizeOf,
  typeOf,
  type CelValue,
  type ExpressionScope,
} from './expression-values.js';

const MAX_DEPTH = 64;

/** A compiled (sub-)expression. */
export type Node = (scope: ExpressionScope) => CelValue;

/** Parses one expression's tokens into a {@link Node}. */
export class Parser {
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

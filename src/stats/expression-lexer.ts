/**
 * The tokens of a Telemetry tag expression (expression.ts) and the one question answered on tokens alone: is the
 * expression a plain attribute path. Configuration time only.
 */
import { ConfigError, quote } from '../core/errors.js';

/** A token: identifier, string, integer, operator or the end, with its source position. */
export type Tok =
  | { t: 'id'; v: string; p: number }
  | { t: 'str'; v: string; p: number }
  | { t: 'int'; v: number; p: number }
  | { t: 'op'; v: string; p: number }
  | { t: 'eof'; p: number };


const OPS = ['&&', '||', '==', '!=', '<=', '>=', '!', '<', '>', '+', '-', '?', ':', '.', '(', ')', '[', ']', ','];

/** Throw `MESHTEL_ERR_INVALID_EXPRESSION` naming the expression and the position of the problem. */
export function fail(source: string, pos: number, msg: string): never {
  throw new ConfigError('MESHTEL_ERR_INVALID_EXPRESSION', `invalid expression ${quote(source)} at ${pos}: ${msg}`, {
    expression: source,
    position: pos,
  });
}

/** The tokens of an expression; throws on a character, literal or escape the subset does not have. */
export function tokenize(src: string): Tok[] {
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

const NOT_ROOTS: ReadonlySet<string> = new Set(['true', 'false', 'null', 'has', 'in', 'size', 'string', 'int']);

/**
 * The tokens as an attribute path (`id`, then `.id` or `['str']` selections, then the end), or undefined. A
 * selection by field and by string index are the same lookup on a map (`select` and `index` above), so the path
 * keeps only the names.
 */
export function literalPath(toks: readonly Tok[]): readonly string[] | undefined {
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

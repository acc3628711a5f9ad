/**
 * Direct reads of the attribute paths Telemetry tag overrides use most (`request.headers['x-user']`,
 * `request.method`, `response.code`, ...): the value taken straight from the request, without building the
 * `request` map and its header map (issue 12.3: three such tags cost 50x the default recordHttp when every request
 * built them). Hand-written because this is the recorder's hot path.
 *
 * A direct read gives exactly what evaluating the path against attributes.ts `AttributeScope` gives for a request
 * whose header objects are plain data (no accessors), or `undefined` when the request is not of the shape it
 * handles (an attribute of the wrong type, a header key that only lower-cases to the name, an array value): the
 * recorder then evaluates the expression. test/stats/attribute-readers.test.ts compares the two on a table of
 * such requests.
 */
import type { HttpStreamAttributes } from './types.js';
import { EVAL_ERROR_VALUE } from './expression.js';

const GENERIC = 0;
const REQUEST_HEADER = 1;
const RESPONSE_HEADER = 2;
const METHOD = 3;
const PATH = 4;
const URL_PATH = 5;
const HOST = 6;
const CODE = 7;

const FIELDS: Readonly<Record<string, number>> = {
  'request.method': METHOD,
  'request.path': PATH,
  'request.url_path': URL_PATH,
  'request.host': HOST,
  'response.code': CODE,
};

/** Header names one side probes for in one pass: a bit per name in a 31-bit mask. */
const MAX_HEADERS = 31;

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

const hasOwn = Object.prototype.hasOwnProperty;

/** The request shape `request.*` is built from without throwing (the path is split, headers are iterated). */
function plainRequest(a: HttpStreamAttributes): boolean {
  const h = a.requestHeaders;
  return (a.path === undefined || typeof a.path === 'string') && (h === undefined || (typeof h === 'object' && h !== null));
}

function plainResponse(a: HttpStreamAttributes): boolean {
  const h = a.responseHeaders;
  return h === undefined || (typeof h === 'object' && h !== null);
}

/** `string` as it is, `undefined` (absent) as an evaluation error, anything else left to the expression. */
function stringOrAbsent(v: unknown): string | undefined {
  return typeof v === 'string' ? v : v === undefined ? EVAL_ERROR_VALUE : undefined;
}

/**
 * The same string as V8's internalized copy. A name sliced from the expression source is not internalized, and a
 * keyed property load with such a key looks it up in the string table on every call (most of a direct read's time
 * in a CPU profile); keys from `for...in` are internalized, so `===` on them is then one pointer compare too.
 */
function internalized(s: string): string {
  return Object.keys({ [s]: 0 })[0] as string;
}

/** The header names of one side and the positions their values go to. */
class HeaderNames {
  readonly names: string[] = [];
  readonly lengths: number[] = [];
  /** First code unit of each name (lower-case ASCII), to skip most `toLowerCase` calls. */
  readonly firsts: number[] = [];
  readonly positions: number[] = [];

  add(name: string, position: number): boolean {
    if (this.names.length >= MAX_HEADERS) return false;
    this.names.push(internalized(name));
    this.lengths.push(name.length);
    this.firsts.push(name.charCodeAt(0));
    this.positions.push(position);
    return true;
  }

  /**
   * Envoy's header map is the object's keys lower-cased (attributes.ts `headerMap`). One `for...in` over the keys
   * (V8's enum cache: nothing allocated) finds each name and any other key that lower-cases to it: a name found as
   * an own key with no such twin is the map's value; a twin (`X-User` beside or instead of `x-user`) leaves it to
   * the map. Only a key of the name's length can lower-case to an ASCII name (no code point lower-cases to several
   * ASCII ones), so other keys cost one length compare; an ASCII first letter that differs from the name's in any
   * case rules the key out without `toLowerCase` (`| 0x20` folds A–Z onto a–z; a non-ASCII one may fold to ASCII:
   * KELVIN SIGN is `k`).
   */
  probe(h: Readonly<Record<string, unknown>> | undefined, out: (string | undefined)[]): void {
    const names = this.names;
    const positions = this.positions;
    const n = names.length;
    for (let j = 0; j < n; j++) out[positions[j] as number] = EVAL_ERROR_VALUE;
    if (h === undefined) return;
    const lengths = this.lengths;
    const firsts = this.firsts;
    let twins = 0;
    try {
      // `h.hasOwnProperty(k)` on a for-in key is folded by V8 to an enum-cache check; `.call` is not.
      const inherits = h.hasOwnProperty === hasOwn;
      for (const k in h) {
        const l = k.length;
        for (let j = 0; j < n; j++) {
          if (l !== lengths[j]) continue;
          if (k === names[j]) {
            // for...in also walks inherited keys; the map has own ones only.
            // eslint-disable-next-line no-prototype-builtins -- checked above to be Object.prototype's own method
            if (inherits ? h.hasOwnProperty(k) : hasOwn.call(h, k)) out[positions[j] as number] = stringOrAbsent(h[k]);
            continue;
          }
          const c = k.charCodeAt(0);
          if (c < 128 && (c | 0x20) !== ((firsts[j] as number) | 0x20)) continue;
          if (k.toLowerCase() === names[j]) twins |= 1 << j;
        }
      }
    } catch {
      twins = -1;
    }
    if (twins !== 0) for (let j = 0; j < n; j++) if ((twins & (1 << j)) !== 0) out[positions[j] as number] = undefined;
  }
}

/**
 * The direct reads of one mode's tag expressions, by position (the mode's expression list). Compiled once per
 * process; {@link DirectReads.read} fills a value per position, or `undefined` where the expression must be
 * evaluated. Two header tags of one side cost one walk over the header object.
 */
export class DirectReads {
  private readonly kinds: Uint8Array;
  private readonly requestHeaders = new HeaderNames();
  private readonly responseHeaders = new HeaderNames();
  /** True when some position has a direct read. */
  readonly any: boolean;
  /** True when some direct read is of `response`. */
  private readonly readsResponse: boolean;

  /** @param paths per position, the expression's attribute path (`CompiledExpression.path`) or undefined. */
  constructor(paths: readonly (readonly string[] | undefined)[]) {
    this.kinds = new Uint8Array(paths.length);
    paths.forEach((path, t) => {
      this.kinds[t] = this.kindOf(path, t);
    });
    this.any = this.kinds.some((k) => k !== GENERIC);
    this.readsResponse = this.kinds.some((k) => k === CODE || k === RESPONSE_HEADER);
  }

  private kindOf(path: readonly string[] | undefined, position: number): number {
    if (path === undefined) return GENERIC;
    if (path.length === 3 && path[1] === 'headers' && (path[0] === 'request' || path[0] === 'response')) {
      const name = path[2] as string;
      // Upper-case names are never keys of the lower-cased map; `__proto__` is not a key of a plain object.
      if (name.toLowerCase() !== name || !ASCII.test(name) || name === '__proto__') return GENERIC;
      const request = path[0] === 'request';
      return (request ? this.requestHeaders : this.responseHeaders).add(name, position) ? (request ? REQUEST_HEADER : RESPONSE_HEADER) : GENERIC;
    }
    return path.length === 2 ? (FIELDS[`${path[0]}.${path[1]}`] ?? GENERIC) : GENERIC;
  }

  /**
   * Fill `out[position]` for every position: the value, or `undefined` where the expression must be evaluated.
   * `a` undefined is a TCP connection, which has no `request` or `response` attribute.
   */
  read(a: HttpStreamAttributes | undefined, out: (string | undefined)[]): void {
    const kinds = this.kinds;
    const n = kinds.length;
    if (a === undefined) {
      for (let t = 0; t < n; t++) out[t] = kinds[t] === GENERIC ? undefined : EVAL_ERROR_VALUE;
      return;
    }
    const request = plainRequest(a);
    const response = this.readsResponse && plainResponse(a);
    for (let t = 0; t < n; t++) {
      switch (kinds[t]) {
        case METHOD:
          out[t] = request ? stringOrAbsent(a.method) : undefined;
          break;
        case PATH:
          out[t] = request ? stringOrAbsent(a.path) : undefined;
          break;
        case URL_PATH: {
          const p = a.path;
          out[t] = !request ? undefined : p === undefined ? EVAL_ERROR_VALUE : p.indexOf('?') < 0 ? p : p.slice(0, p.indexOf('?'));
          break;
        }
        case HOST:
          out[t] = request && typeof a.authority === 'string' ? a.authority : undefined;
          break;
        case CODE:
          out[t] = response && typeof a.responseCode === 'number' ? String(a.responseCode) : undefined;
          break;
        default:
          // Headers are filled below; GENERIC stays undefined.
          out[t] = undefined;
      }
    }
    if (this.requestHeaders.names.length > 0) {
      if (request) this.requestHeaders.probe(a.requestHeaders, out);
      else for (const p of this.requestHeaders.positions) out[p] = undefined;
    }
    if (this.responseHeaders.names.length > 0) {
      if (response) this.responseHeaders.probe(a.responseHeaders, out);
      else for (const p of this.responseHeaders.positions) out[p] = undefined;
    }
  }
}

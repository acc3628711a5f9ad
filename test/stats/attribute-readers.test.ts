/**
 * Direct reads of tag-override attribute paths (issue 12.3) give exactly what evaluating the expression against the
 * attribute scope gives: on plain requests they answer themselves (the fast path is taken), on anything unusual
 * they answer `undefined` and the expression decides.
 */
import { describe, expect, it } from 'vitest';
import { DirectReads } from '../../src/stats/attribute-readers.js';
import { createScope } from '../../src/stats/attributes.js';
import { compileExpression } from '../../src/stats/expression.js';
import type { HttpStreamAttributes } from '../../src/stats/types.js';
import { WEBAPP, inboundFromGateway } from './fixtures.js';

const EXPRESSIONS = [
  "request.headers['x-user']",
  'request.headers.key',
  'request.method',
  'request.path',
  'request.url_path',
  'request.host',
  'response.code',
  "response.headers['x-cache']",
  "request.headers['X-User']",
  "size(request.headers['x-user'])",
];

/** Header objects of every shape the header map has a rule for. */
function throwing(): Record<string, string> {
  const h: Record<string, string> = {};
  Object.defineProperty(h, 'x-user', {
    enumerable: true,
    get() {
      throw new Error('getter');
    },
  });
  return h;
}
const hidden: Record<string, string> = {};
Object.defineProperty(hidden, 'x-user', { value: 'hidden', enumerable: false });
const nullProto = Object.assign(Object.create(null) as Record<string, string>, { 'x-user': 'null-proto' });
const inherited = Object.create({ 'x-user': 'inherited' }) as Record<string, string>;

const REQUESTS: [string, Partial<HttpStreamAttributes>, boolean, number?][] = [
  // [what, request, whether the header tag (EXPRESSIONS[index], default 0) is answered directly]
  ['lower-case headers', { method: 'GET', path: '/a?b=1', requestHeaders: { 'x-user': 'alice', accept: '*/*', key: 'k' } }, true],
  ['no such header', { method: 'GET', requestHeaders: { accept: '*/*' } }, true],
  ['no header object', { requestHeaders: undefined }, true],
  ['an upper-case twin only', { requestHeaders: { 'X-User': 'bob' } }, false],
  ['both spellings, the later wins in the map', { requestHeaders: { 'x-user': 'a', 'X-USER': 'b' } }, false],
  ['an array value', { requestHeaders: { 'x-user': ['a', 'b'] } }, false],
  ['an undefined value', { requestHeaders: { 'x-user': undefined } }, true],
  ['KELVIN SIGN lower-cases to k', { requestHeaders: { '\u212Aey': 'kelvin', 'x-user': 'u' } }, false, 1],
  ['a key that is not a twin', { requestHeaders: { kex: 'no', key: 'yes' } }, true, 1],
  ['an own hasOwnProperty key', { requestHeaders: { hasOwnProperty: 'x', 'x-user': 'own' } }, true],
  ['a null-prototype object', { requestHeaders: nullProto }, true],
  ['an inherited key', { requestHeaders: inherited }, true],
  ['a non-enumerable key', { requestHeaders: hidden }, true],
  ['a number value', { requestHeaders: { 'x-user': 5 as unknown as string } }, false],
  ['a path that is not a string', { path: 7 as unknown as string, requestHeaders: { 'x-user': 'a' } }, false],
  ['response headers', { responseHeaders: { 'x-cache': 'HIT' }, responseCode: 503 }, true],
];

describe('DirectReads', () => {
  const compiled = EXPRESSIONS.map((e) => compileExpression(e));
  const reads = new DirectReads(compiled.map((e) => e.path));

  it.each(REQUESTS)('%s: a direct read equals the evaluated expression', (_what, over, direct, index = 0) => {
    const a = inboundFromGateway(over);
    const out: (string | undefined)[] = [];
    reads.read(a, out);
    const evaluated = compiled.map((e) => e.evaluate(createScope(WEBAPP, a, a, a.reporter)));
    for (let t = 0; t < compiled.length; t++) {
      if (out[t] !== undefined) expect([EXPRESSIONS[t], out[t]]).toEqual([EXPRESSIONS[t], evaluated[t]]);
    }
    // The header tag takes the fast path exactly when the request is plain.
    expect(out[index] !== undefined).toBe(direct);
  });

  it('leaves a header behind a throwing getter to the expression (unknown)', () => {
    // Outside the documented input (header objects are plain data): the field reads still answer, the header
    // read does not, and its expression gives unknown as for any evaluation error.
    const a = inboundFromGateway({ requestHeaders: throwing() });
    const out: (string | undefined)[] = [];
    reads.read(a, out);
    expect(out[0]).toBeUndefined();
    expect(compiled[0]?.evaluate(createScope(WEBAPP, a, a, a.reporter))).toBe('unknown');
  });

  it('reads the plain request directly', () => {
    const a = inboundFromGateway({ method: 'GET', path: '/a?b=1', requestHeaders: { 'x-user': 'alice', key: 'k' }, responseHeaders: { 'x-cache': 'HIT' } });
    const out: (string | undefined)[] = [];
    reads.read(a, out);
    expect(out).toEqual(['alice', 'k', 'GET', '/a?b=1', '/a', 'webapp.istioinaction:80', '200', 'HIT', undefined, undefined]);
  });

  it('gives unknown for request and response paths of a TCP connection, as the scope does', () => {
    const out: (string | undefined)[] = [];
    reads.read(undefined, out);
    const c = inboundFromGateway();
    const evaluated = compiled.map((e) => e.evaluate(createScope(WEBAPP, c, undefined, c.reporter)));
    expect(out.slice(0, 8)).toEqual(evaluated.slice(0, 8));
    expect(out.slice(0, 8).every((v) => v === 'unknown')).toBe(true);
  });
});

describe('CompiledExpression.path', () => {
  it.each([
    ["request.headers['x-user']", ['request', 'headers', 'x-user']],
    ['request.method', ['request', 'method']],
    ['filter_state.upstream_peer.labels["role"]', ['filter_state', 'upstream_peer', 'labels', 'role']],
    ['request.headers.size()', undefined],
    ["request.headers['a'] + 'b'", undefined],
    ['request.headers[0]', undefined],
    ['true', undefined],
    ['has(request.headers.a)', undefined],
  ])('%s', (src, path) => {
    expect(compileExpression(src).path).toEqual(path);
  });
});

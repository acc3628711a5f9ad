/**
 * The compiled CEL subset used by Telemetry tag overrides.
 */
import { describe, expect, it } from 'vitest';
import { compileExpression, type CelValue, type ExpressionScope } from '../../src/stats/expression.js';
import { isMeshtelError } from '../../src/core/errors.js';

const SCOPE_VALUES: Record<string, CelValue> = {
  request: { method: 'GET', path: '/api/v1/items?x=1', headers: { 'x-user': 'alice', 'x-empty': '' } },
  response: { code: 503, flags: 0 },
  upstream_peer: { app: 'reviews', labels: { role: 'db' } },
  node: { metadata: { MESH_ID: 'cluster.local' } },
  connection: { mtls: true },
};
const scope: ExpressionScope = { resolve: (n) => SCOPE_VALUES[n] };

describe('compileExpression()', () => {
  describe('.evaluate()', () => {
    it.each([
      ["request.headers['x-user']", 'alice'],
      ['request.method', 'GET'],
      ["node.metadata['MESH_ID']", 'cluster.local'],
      ['response.code', '503'],
      ['response.code >= 500', 'true'],
      ["upstream_peer.labels['role']", 'db'],
      ["request.method == 'GET' ? 'read' : 'write'", 'read'],
      ["request.path.startsWith('/api') && !request.path.endsWith('.js')", 'true'],
      ["request.path.contains('v2') || response.code == 503", 'true'],
      ["'v' + string(response.code)", 'v503'],
      ['response.code + 1', '504'],
      ["size(request.headers['x-user'])", '5'],
      ["request.headers['x-user'].size()", '5'],
      ['has(request.headers.x_absent)', 'false'],
      ['has(upstream_peer.app)', 'true'],
      ["'x-user' in request.headers", 'true'],
      ["int('42') - 2", '40'],
      ['-response.code', '-503'],
      ['"double \\"quoted\\""', 'double "quoted"'],
      ['connection.mtls', 'true'],
      ["request.headers['x-empty'] == ''", 'true'],
      ['1 == "1"', 'false'],
    ])('%s → %j', (src, expected) => {
      expect(compileExpression(src).evaluate(scope)).toBe(expected);
    });

    it.each([
      ['upstream_peer.istio_version', 'missing field'],
      ["request.headers['x-absent']", 'missing map key'],
      ['downstream_peer.app', 'undeclared attribute'],
      ["response.code + 'a'", 'type mismatch'],
      ['request.headers', 'map cannot be printed'],
      ["request.method ? 'a' : 'b'", 'non-bool condition'],
    ])('%s evaluates to unknown (%s)', (src) => {
      expect(compileExpression(src).evaluate(scope)).toBe('unknown');
    });

    it('absorbs an error when the other side of || / && decides (CEL commutative logic)', () => {
      expect(compileExpression('upstream_peer.nope == 1 || true').evaluate(scope)).toBe('true');
      expect(compileExpression('false && upstream_peer.nope == 1').evaluate(scope)).toBe('false');
      expect(compileExpression('upstream_peer.nope || false').evaluate(scope)).toBe('unknown');
    });
  });

  describe('parse errors', () => {
    it.each([
      ['request.', 'dangling dot'],
      ["request.headers['x'", 'unclosed bracket'],
      ["'unterminated", 'unterminated string'],
      ['a ? b', 'missing :'],
      ['1.5', 'float literal'],
      ['foo()', 'unknown function'],
      ['request.method.matches(".*")', 'regex is not supported'],
      ['a $ b', 'bad character'],
      ['', 'empty'],
      ['('.repeat(100) + '1' + ')'.repeat(100), 'too deep'],
      ['has(x)', 'has() without a field selection'],
    ])('rejects %j (%s) with MESHTEL_ERR_INVALID_EXPRESSION', (src) => {
      try {
        compileExpression(src);
        expect.unreachable();
      } catch (e) {
        expect(isMeshtelError(e, 'MESHTEL_ERR_INVALID_EXPRESSION')).toBe(true);
      }
    });
  });

  describe('compile cost (issue 11.8: nested has() was exponential)', () => {
    const nestedHas = (n: number): string => `${'has('.repeat(n)}request.headers${'.x)'.repeat(n)}`;
    const tokens = (src: string): number => src.match(/[A-Za-z_][A-Za-z0-9_]*|\d+|'[^']*'|&&|\|\||==|[().[\],!?:<>+-]/g)?.length ?? 0;

    it('nested has() compiles in steps linear in the tokens, up to the depth limit', () => {
      // 22 levels took 17.6 s before; 60 would not finish. Steps per token stay constant as n grows.
      const perToken: number[] = [];
      for (const n of [5, 20, 60]) {
        const src = nestedHas(n);
        const t0 = performance.now();
        const e = compileExpression(src);
        expect(performance.now() - t0).toBeLessThan(1000);
        perToken.push(e.parseSteps / tokens(src));
        expect(e.parseSteps).toBeLessThanOrEqual(8 * tokens(src));
      }
      expect(Math.max(...perToken) - Math.min(...perToken)).toBeLessThan(1);
      // Still evaluates: the innermost has() is a bool, so selecting .x on it is an error → unknown.
      expect(compileExpression(nestedHas(1)).evaluate({ resolve: () => ({ headers: { x: 'a' } }) })).toBe('true');
    });

    it('200 nested has() levels are refused by the depth limit, quickly, with the error code', () => {
      const t0 = performance.now();
      try {
        compileExpression(nestedHas(200));
        expect.unreachable();
      } catch (e) {
        expect(isMeshtelError(e, 'MESHTEL_ERR_INVALID_EXPRESSION')).toBe(true);
        expect((e as Error).message).toContain('nests too deeply');
      }
      expect(performance.now() - t0).toBeLessThan(1000);
    });

    it('long flat chains (selections, ||, +) compile in linear steps', () => {
      const fields = `request.headers${'.a'.repeat(1000)}`;
      const ors = Array.from({ length: 120 }, (_, i) => `request.method == 'M${i}'`).join(' || ');
      const sum = Array.from({ length: 500 }, () => '1').join('+');
      for (const src of [fields, ors, sum]) {
        const t0 = performance.now();
        const e = compileExpression(src);
        expect(performance.now() - t0).toBeLessThan(1000);
        expect(e.parseSteps).toBeLessThanOrEqual(8 * tokens(src));
      }
      expect(compileExpression(sum).evaluate({ resolve: () => undefined })).toBe('500');
    });
  });
});

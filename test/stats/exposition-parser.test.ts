import { describe, expect, it } from 'vitest';
import { isMeshtelError } from '../../src/core/errors.js';
import { parseExposition, parseLabelString } from '../../src/stats/exposition-parser.js';

describe('parseExposition() sample values', () => {
  it('reads special values the way Prometheus does (Go ParseFloat: any case, optional sign)', () => {
    // prom-client writes `Nan` for nodejs_eventloop_lag_* before the first sample; Prometheus ingests it.
    const text = ['a Nan', 'b NaN', 'c +Inf', 'd -inf', 'e Infinity', 'f 1.5e3', 'g -0'].join('\n');
    const values = parseExposition(text).map((s) => [s.name, s.value]);
    expect(values).toEqual([
      ['a', NaN],
      ['b', NaN],
      ['c', Infinity],
      ['d', -Infinity],
      ['e', Infinity],
      ['f', 1500],
      ['g', -0],
    ]);
  });

  it('refuses a value that is not a number with MESHTEL_ERR_DECODE naming the line', () => {
    let err: unknown;
    try {
      parseExposition('ok 1\nbad nanx\n');
    } catch (e) {
      err = e;
    }
    expect(isMeshtelError(err) && err.code).toBe('MESHTEL_ERR_DECODE');
    expect((err as Error).message).toContain('line 2');
  });
});

describe('parseLabelString()', () => {
  it('reads a rendered label string with escapes, as the recorder keeps it per series', () => {
    expect(parseLabelString('a="x",b="y\\"z",c="1\\\\2",d="line\\nbreak"')).toEqual({ a: 'x', b: 'y"z', c: '1\\2', d: 'line\nbreak' });
  });

  it('reads the same pairs inside a sample line', () => {
    expect(parseExposition('m{a="x",b="y\\"z"} 1')[0]?.labels).toEqual({ a: 'x', b: 'y"z' });
  });
});

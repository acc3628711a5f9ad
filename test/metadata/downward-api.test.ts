/**
 * The downward-API file format the kubelet writes (`key="value"`, Go-quoted) as src/metadata/downward-api.ts reads it.
 */
import { describe, expect, it } from 'vitest';
import { parseDownwardApi } from '../../src/metadata/downward-api.js';
import { isMeshtelError } from '../../src/core/errors.js';

function expectConfigFileError(fn: () => unknown, mention: string): void {
  try {
    fn();
    expect.unreachable('expected a ConfigError');
  } catch (err) {
    expect(isMeshtelError(err, 'MESHTEL_ERR_CONFIG_FILE'), String(err)).toBe(true);
    expect((err as Error).message).toContain(mention);
  }
}

describe('parseDownwardApi()', () => {
  it.each([
    ['a plain value', 'k="v"', { k: 'v' }],
    ['an empty value', 'k=""', { k: '' }],
    ['Go escapes', 'k="\\t\\x41\\101\\u00e9\\U0001F600\\\\"', { k: '\tAAé😀\\' }],
    ['an = inside the value', 'k="a=b"', { k: 'a=b' }],
    ['CRLF line ends and blank lines', 'a="1"\r\n\r\nb="2"\r\n', { a: '1', b: '2' }],
  ])('parses %s', (_n, text, expected) => {
    expect(parseDownwardApi(text)).toEqual(expected);
  });

  it.each([
    ['an unquoted value', 'k=v'],
    ['no key', '="v"'],
    ['an unterminated quote', 'k="v'],
    ['a bad escape', 'k="\\q"'],
    ['a bare inner quote', 'k="a"b"'],
  ])('rejects %s with MESHTEL_ERR_CONFIG_FILE', (_n, text) => {
    expectConfigFileError(() => parseDownwardApi(text, 'labels-file'), 'labels-file');
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, DecodeError, ERROR_CODES, MeshtelError, isMeshtelError, quote } from '../../src/core/errors.js';

describe('error registry', () => {
  it('lists exactly the codes documented in docs/errors.md, with the same meaning', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `(MESHTEL_ERR_[A-Z_]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(Object.fromEntries(rows)).toEqual(ERROR_CODES);
  });

  it('gives every error a code callers can match on', () => {
    const err = new ConfigError('MESHTEL_ERR_INVALID_CONFIG', 'bad', { field: 'port' });
    expect(err).toBeInstanceOf(MeshtelError);
    expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_CONFIG')).toBe(true);
    expect(isMeshtelError(err, 'MESHTEL_ERR_TLS')).toBe(false);
    expect(err.details).toEqual({ field: 'port' });
    expect(new DecodeError('x').code).toBe('MESHTEL_ERR_DECODE');
  });

  it('quotes values and cuts long ones so a header never floods a log line', () => {
    expect(quote('abc')).toBe('"abc"');
    expect(quote('x'.repeat(500))).toHaveLength(80);
  });
});

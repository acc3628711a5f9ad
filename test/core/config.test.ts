import { describe, expect, it } from 'vitest';
import { parseBool, parseDurationMs, parseIntInRange, parsePort } from '../../src/core/config.js';
import { isMeshtelError } from '../../src/core/errors.js';

describe('config parsing', () => {
  it.each([
    ['5s', 5000],
    ['250ms', 250],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1500', 1500],
  ])('parses duration %s as %d ms', (raw, ms) => {
    expect(parseDurationMs(raw, 'x')).toBe(ms);
  });

  it.each(['5 s', 'abc', '5sx', '-1s'])('rejects duration %j with a config error naming the value', (raw) => {
    try {
      parseDurationMs(raw, 'REPORTING_INTERVAL');
      expect.unreachable();
    } catch (err) {
      expect(isMeshtelError(err, 'MESHTEL_ERR_INVALID_CONFIG')).toBe(true);
      expect((err as Error).message).toContain('REPORTING_INTERVAL');
      expect((err as Error).message).toContain(JSON.stringify(raw));
    }
  });

  it('parses ports and rejects out-of-range ones', () => {
    expect(parsePort('15090', 'p')).toBe(15090);
    expect(parsePort(undefined, 'p')).toBeUndefined();
    expect(() => parsePort('70000', 'p')).toThrow(/between 0 and 65535/);
    expect(() => parseIntInRange('1.5', 'n', 0, 10)).toThrow(/integer/);
  });

  it('parses Istio-style booleans', () => {
    expect(parseBool('TRUE', 'b')).toBe(true);
    expect(parseBool('0', 'b')).toBe(false);
    expect(() => parseBool('maybe', 'b')).toThrow(/"maybe"/);
  });
});

import { describe, expect, it } from 'vitest';
import { renderProgress } from '../../src/demo/display.js';

describe('renderProgress()', () => {
  const stats = { sent: 120, ok: 100, failed: 15, errors: 3, cancelled: 0, skipped: 0, inFlight: 2 };

  it('prints the counts and the average rate once a second has passed', () => {
    expect(renderProgress(stats, 4)).toBe('load: sent 120  ok 100  5xx 15  errors 3  skipped 0  in-flight 2  (30.0 req/s over 4s)');
  });

  it('does not print a meaningless rate during the first second', () => {
    expect(renderProgress({ ...stats, sent: 4 }, 0.0003)).toContain('(warming up over 0s)');
  });

  it('says how to drive the mesh when the load generator is off', () => {
    expect(renderProgress(undefined, 12)).toBe('load: off (send requests to the ingress gateway yourself)  t=12s');
  });
});

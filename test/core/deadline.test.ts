/**
 * core/deadline.ts settleWithin: the one "exactly one answer within a deadline" rule the span exporter wrapper and
 * the OTLP metric push share.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { settleWithin } from '../../src/core/deadline.js';

type Result = { ok: boolean; error?: Error };
const failed = (error: Error): Result => ({ ok: false, error });

describe('settleWithin()', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('hands on the first answer once and ignores a later one', () => {
    const done = vi.fn();
    let answer: ((r: Result) => void) | undefined;
    settleWithin<Result>(100, (a) => (answer = a), failed, done, 'late');
    answer!({ ok: true });
    answer!({ ok: false });
    vi.advanceTimersByTime(200);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith({ ok: true });
  });

  it('fails at the deadline with the message, and an answer after it is ignored', () => {
    const done = vi.fn();
    let answer: ((r: Result) => void) | undefined;
    settleWithin<Result>(100, (a) => (answer = a), failed, done, 'export timed out after 100 ms');
    vi.advanceTimersByTime(99);
    expect(done).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    answer!({ ok: true });
    expect(done).toHaveBeenCalledTimes(1);
    const r = done.mock.calls[0]![0] as Result;
    expect(r.ok).toBe(false);
    expect(r.error?.message).toBe('export timed out after 100 ms');
  });

  it('fails with the thrown error when start throws, once', () => {
    const done = vi.fn();
    settleWithin<Result>(100, () => {
      throw new Error('boom');
    }, failed, done, 'late');
    vi.advanceTimersByTime(200);
    expect(done).toHaveBeenCalledTimes(1);
    expect((done.mock.calls[0]![0] as Result).error?.message).toBe('boom');
  });
});

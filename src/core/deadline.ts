/**
 * Answers that must come back within a deadline: an exporter (spans, OTLP metrics) reports each export through a
 * callback, and one that never calls back (a collector that accepts and never answers, a sender with a socket
 * timeout but no abort) would leave what it carried uncounted. Used wherever such a callback is awaited, so the
 * rule is written once: exactly one answer, a failure at the deadline, a late answer ignored.
 */

/**
 * Call `start(answer)` and hand `done` exactly one result: the first `answer(result)`, or `failed(error)` when
 * `start` throws or `deadlineMs` pass first (the timer does not keep the process alive).
 */
export function settleWithin<R>(deadlineMs: number, start: (answer: (result: R) => void) => void, failed: (error: Error) => R, done: (result: R) => void, timeoutMessage: string): void {
  let settled = false;
  const finish = (result: R): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    done(result);
  };
  const timer = setTimeout(() => finish(failed(new Error(timeoutMessage))), deadlineMs);
  timer.unref();
  try {
    start(finish);
  } catch (err) {
    finish(failed(err instanceof Error ? err : new Error(String(err))));
  }
}

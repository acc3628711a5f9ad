/**
 * One shared timer for all periodic reports (TCP byte deltas and gRPC message deltas every
 * `tcp_reporting_duration`, default 5 s, istio/proxy `istio_stats.cc`). One unref()ed interval for the
 * whole proxy instead of one timer per connection keeps a thousand idle streams at zero cost.
 */

/** Something reported every interval. */
export interface PeriodicReport {
  report(): void;
}

/** The ticker. */
export interface ReportingTicker {
  add(item: PeriodicReport): void;
  delete(item: PeriodicReport): void;
  /** Items currently registered. */
  readonly size: number;
  close(): void;
}

/** Create a ticker firing every `intervalMs` (0 disables periodic reports; the final report still happens). */
export function createReportingTicker(intervalMs: number): ReportingTicker {
  const items = new Set<PeriodicReport>();
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    for (const item of items) {
      try {
        item.report();
      } catch {
        // A report must never take the proxy down; the stats stage counts its own failures.
      }
    }
  };
  return {
    add(item) {
      items.add(item);
      if (timer === undefined && intervalMs > 0) {
        timer = setInterval(tick, intervalMs);
        timer.unref();
      }
    },
    delete(item) {
      items.delete(item);
      if (items.size === 0 && timer !== undefined) {
        clearInterval(timer);
        timer = undefined;
      }
    },
    get size() {
      return items.size;
    },
    close() {
      items.clear();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}

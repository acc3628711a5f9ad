/**
 * The demo's load generator: a steady request rate to the ingress gateway (open model: requests are
 * started on schedule whatever the latency, like wrk2/fortio's constant throughput), with a bound on
 * requests in flight so a stalled mesh cannot pile up sockets; requests skipped for that are counted.
 */
import { Pool } from 'undici';

/** Counters of the load generator (exact, since start). */
export interface LoadStats {
  /** Requests started. */
  sent: number;
  /** Answered 2xx–4xx. */
  ok: number;
  /** Answered 5xx. */
  failed: number;
  /** No answer (connection error, timeout). */
  errors: number;
  /** Still open when close() gave up waiting, and cut: not an error of the mesh. */
  cancelled: number;
  /** Not started because `maxInFlight` requests were already open. */
  skipped: number;
  inFlight: number;
}

/** Options of {@link startLoad}. */
export interface LoadOptions {
  /** Gateway URL, e.g. http://127.0.0.1:15080. */
  readonly url: string;
  /** Path requested; default `/productpage`. */
  readonly path?: string;
  /** Requests per second (> 0). */
  readonly rate: number;
  /** Requests open at once before new ones are skipped; default 256. */
  readonly maxInFlight?: number;
  /** Per-request timeout; default 10 s. */
  readonly timeoutMs?: number;
}

/** A running load generator. */
export interface LoadGenerator {
  readonly stats: Readonly<LoadStats>;
  /** Stop starting requests, let open ones finish for at most {@link CLOSE_GRACE_MS}, then cut the rest (counted as `cancelled`). */
  close(): Promise<void>;
}

/** How long close() lets open requests finish before cutting them. */
export const CLOSE_GRACE_MS = 1000;

/** Tick of the scheduler; requests due in a tick are started together. */
const TICK_MS = 20;

/** Start sending. */
export function startLoad(options: LoadOptions): LoadGenerator {
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, errors: 0, cancelled: 0, skipped: 0, inFlight: 0 };
  const pool = new Pool(options.url, { connections: 32, keepAliveTimeout: 10_000 });
  const path = options.path ?? '/productpage';
  const maxInFlight = options.maxInFlight ?? 256;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const start = performance.now();
  let due = 0;
  let stopped = false;
  /** Set when close() destroys the pool: requests failing from then on were cut, not refused. */
  let cutting = false;
  let product = 0;
  const open = new Set<Promise<void>>();

  const fire = (): void => {
    if (stats.inFlight >= maxInFlight) {
      stats.skipped++;
      return;
    }
    stats.sent++;
    stats.inFlight++;
    const p = pool
      .request({ method: 'GET', path: `${path}?id=${product++ % 10}`, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode >= 500) stats.failed++;
        else stats.ok++;
      })
      .catch(() => {
        if (cutting) stats.cancelled++;
        else stats.errors++;
      })
      .finally(() => {
        stats.inFlight--;
        open.delete(p);
      });
    open.add(p);
  };

  // Schedule by elapsed time, not by counting ticks, so timer drift does not lower the rate.
  const timer = setInterval(() => {
    if (stopped) return;
    const target = Math.floor(((performance.now() - start) / 1000) * options.rate);
    while (due < target) {
      due++;
      fire();
    }
  }, TICK_MS);
  timer.unref();

  return {
    stats,
    async close() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // Not the request timeout: on a loaded machine requests take seconds, and Ctrl-C must not wait for them.
      await Promise.race([Promise.allSettled([...open]), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
      cutting = true;
      await pool.destroy();
    },
  };
}

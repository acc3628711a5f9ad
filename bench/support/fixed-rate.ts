/**
 * An open-loop load generator at a fixed rate with microsecond latencies, for the latency rows of the sidecar
 * bench. autocannon reports latency in whole milliseconds, which at 1000 rps on loopback turns a p99 of 2.4 vs
 * 2.6 ms into "2 vs 3" and a ratio of added latency into 1.0 or 2.7 by rounding alone. This one schedules
 * requests on a fixed timetable (request i is due at start + i / rate, so a slow response delays no later
 * request: no coordinated omission), sends each over a keep-alive undici Pool, and measures each from the moment
 * it is sent to the end of its body with process.hrtime. Sends are never held back by responses (open loop); the
 * timer's own lateness (node's 1 ms timer granularity) is the generator's, not the server's, so it is not counted.
 */
import { Pool } from 'undici';

/** What {@link fixedRate} measured. */
export interface FixedRateResult {
  /** Requests answered with a 2xx and a full body. */
  readonly ok: number;
  /** Requests that failed or got another status. */
  readonly errors: number;
  /** Latencies in microseconds, sorted ascending. */
  readonly latenciesUs: readonly number[];
}

/** Options of {@link fixedRate}. */
export interface FixedRateOptions {
  readonly port: number;
  readonly path?: string;
  readonly rate: number;
  readonly durationS: number;
  readonly connections: number;
  readonly headers?: Record<string, string>;
}

/** Send `rate` requests per second for `durationS` seconds; resolves when the last one has ended. */
export async function fixedRate(o: FixedRateOptions): Promise<FixedRateResult> {
  const pool = new Pool(`http://127.0.0.1:${o.port}`, { connections: o.connections, pipelining: 1 });
  const total = Math.round(o.rate * o.durationS);
  const latencies: number[] = [];
  let errors = 0;
  let sent = 0;
  const intervalNs = 1e9 / o.rate;
  const start = process.hrtime.bigint();
  const inFlight: Promise<void>[] = [];
  const one = async (): Promise<void> => {
    const sentAt = process.hrtime.bigint();
    try {
      const r = await pool.request({ method: 'GET', path: o.path ?? '/reviews/0', headers: o.headers });
      await r.body.dump();
      if (r.statusCode >= 200 && r.statusCode < 300) latencies.push(Number(process.hrtime.bigint() - sentAt) / 1000);
      else errors++;
    } catch {
      errors++;
    }
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = process.hrtime.bigint();
      // Every request whose time has come goes now (a late timer sends the backlog at once, measured from its due time).
      while (sent < total) {
        const due = start + BigInt(Math.round(sent * intervalNs));
        if (due > now) break;
        sent++;
        inFlight.push(one());
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, Number(start + BigInt(Math.round(sent * intervalNs)) - process.hrtime.bigint()) / 1e6));
    };
    tick();
  });
  await Promise.all(inFlight);
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { ok: latencies.length, errors, latenciesUs: latencies };
}

/** The q-quantile (0..1) of sorted values (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

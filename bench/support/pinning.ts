/**
 * CPU pinning for the load benchmarks: the process under test gets a core of its own, and the load generator and
 * the app share the other, as Istio's and Envoy's load tests give the proxy dedicated cores. On a 2-core machine
 * an unpinned proxy migrates between cores and competes with autocannon for the same one, so a single round swings
 * by ±20% and the extra work of parsing a larger response (the MX answer headers) on the client is charged to
 * whichever process shares its core. `taskset` (util-linux) sets the affinity of every thread of a process.
 * BENCH_PIN=0 turns it off (the figures are then of the processes as the scheduler places them).
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

/** The core for the process under test, and the one for the load generator and the app. */
export const SERVER_CPU = '1';
export const LOAD_CPU = '0';

let available: boolean | undefined;

/** Whether pinning is on: at least 2 cores, `taskset` present, BENCH_PIN not 0. */
export function pinningOn(): boolean {
  if (available === undefined) {
    available = process.env.BENCH_PIN !== '0' && cpus().length >= 2 && hasTaskset();
  }
  return available;
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pin every thread of `pid` to `cpuList` (a taskset list, e.g. `1` or `0-1`); a no-op when pinning is off. */
export function pin(pid: number, cpuList: string): void {
  if (!pinningOn() || pid <= 0) return;
  execFileSync('taskset', ['-a', '-cp', cpuList, String(pid)], { stdio: 'ignore' });
}

/** The line the benchmarks print under their header. */
export function pinningLine(): string {
  return pinningOn()
    ? `pinned: the process under test on CPU ${SERVER_CPU}; autocannon and the app on CPU ${LOAD_CPU} (BENCH_PIN=0 to unpin)`
    : `not pinned (${process.env.BENCH_PIN === '0' ? 'BENCH_PIN=0' : 'needs taskset and 2 cores'}): processes share every core`;
}

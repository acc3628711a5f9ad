/**
 * The child-process harness of the load benchmarks: each server under test runs in its own process (a role of the
 * bench file itself), autocannon runs in the parent, and a child reports its own CPU and RSS, so one process's CPU
 * is measured alone with process.cpuUsage().
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';

/** What autocannon returns (the fields the benchmarks read). */
export interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  non2xx: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;

/** A child's CPU and memory since its last reset. */
export interface ChildUsage {
  readonly cpuMicros: number;
  /** User-mode CPU alone: the JavaScript's share, less disturbed by the kernel's loopback work than the total. */
  readonly userMicros: number;
  /** Peak resident set of the process so far (kB). */
  readonly maxRssKb: number;
  /** Resident set now (bytes). */
  readonly rssBytes: number;
}

/** A running role. */
export interface Child {
  readonly port: number;
  readonly pid: number;
  request<T>(msg: string): Promise<T>;
  kill(): void;
}

/**
 * In a child: answer the parent's `reset` / `usage` / `exit` messages and report the listening port. `exit` exits
 * cleanly, so `--cpu-prof` writes its profile.
 */
export function serveRole(port: number): void {
  const send = (msg: unknown): void => {
    process.send?.(msg);
  };
  let base = process.cpuUsage();
  process.on('message', (msg: unknown) => {
    if (msg === 'reset') {
      base = process.cpuUsage();
      send('reset-done');
    } else if (msg === 'usage') {
      const u = process.cpuUsage(base);
      const usage: ChildUsage = { cpuMicros: u.user + u.system, userMicros: u.user, maxRssKb: process.resourceUsage().maxRSS, rssBytes: process.memoryUsage.rss() };
      send(usage);
    } else if (msg === 'exit') {
      process.exit(0);
    }
  });
  send({ port });
}

/** Fork `file` as `role` (it calls {@link serveRole} when listening). `execArgv` is added to tsx's. */
export function spawnRole(file: string, role: string, args: readonly string[] = [], execArgv: readonly string[] = []): Promise<Child> {
  return new Promise((resolve, reject) => {
    const cp: ChildProcess = fork(file, [role, ...args], {
      // tsx by its resolved URL: the working directory may be outside the checkout.
      execArgv: ['--import', import.meta.resolve('tsx'), ...execArgv],
      env: { ...process.env, MESHTEL_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    cp.once('error', reject);
    cp.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
    cp.once('message', (msg) => {
      const { port } = msg as { port: number };
      resolve({
        port,
        pid: cp.pid ?? 0,
        request: <T>(m: string) =>
          new Promise<T>((res) => {
            cp.once('message', (reply) => res(reply as T));
            cp.send(m);
          }),
        kill: () => {
          cp.removeAllListeners('exit');
          cp.kill();
        },
      });
    });
  });
}

/** autocannon against a port. */
export function load(port: number, opts: Record<string, unknown>): Promise<AutocannonResult> {
  const require = createRequire(import.meta.url);
  const autocannon = require('autocannon') as Autocannon;
  return autocannon({ url: `http://127.0.0.1:${port}/reviews/0`, ...opts });
}

/** Measure a child: warm up 1 s, reset its CPU counter, load it, read CPU and RSS. */
export async function measure(child: Child, opts: Record<string, unknown>): Promise<{ r: AutocannonResult; usage: ChildUsage }> {
  // Warm-up so JIT and keep-alive pools are in place before the counters start.
  await load(child.port, { ...opts, duration: 1 });
  await child.request('reset');
  const r = await load(child.port, opts);
  const usage = await child.request<ChildUsage>('usage');
  if (r.errors > 0 || r.non2xx > 0) console.log(`  warning: ${r.errors} errors, ${r.non2xx} non-2xx`);
  return { r, usage };
}

/** The load averages, printed beside figures measured on a shared machine. */
export function loadAverage(): string {
  return `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(', ')}`;
}

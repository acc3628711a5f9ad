/** Small statistics the benchmarks report with. */

/**
 * The median (upper middle for an even count) of a list, which is left unsorted. Benchmarks report medians
 * because the machine is shared: a mean is pulled up by whichever samples another process preempted.
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** One variant of an {@link interleaved} comparison: `run()` does `ops` operations and returns a value to keep. */
export interface Variant {
  readonly name: string;
  readonly ops: number;
  readonly run: () => number;
}

/** Per-variant result of {@link interleaved}: medians over the rounds, in nanoseconds per operation. */
export interface VariantResult {
  readonly name: string;
  /** Median wall time per operation. */
  readonly ns: number;
  /** Median CPU time (user + system of the process) per operation: what another process's preemption does not add. */
  readonly cpuNs: number;
  /** Every round's wall time per operation, in round order. */
  readonly rounds: readonly number[];
}

/**
 * Same-run comparison of variants on a shared machine: identical warm-up for each (so each is optimised
 * before it is measured), then `rounds` rounds in which every variant runs `reps` times, the order rotated
 * per round so neither always follows a GC of the other. Each result folds into a sink that is returned, so
 * no work can be eliminated as dead. Report medians: a preempted round pulls a mean, not a median.
 */
export function interleaved(variants: readonly Variant[], o: { rounds: number; reps: number; warmupReps: number }): { results: VariantResult[]; sink: number } {
  let sink = 0;
  for (let w = 0; w < o.warmupReps; w++) for (let k = 0; k < variants.length; k++) sink += (variants[(k + w) % variants.length] as Variant).run();
  const wall = variants.map((): number[] => []);
  const cpu = variants.map((): number[] => []);
  for (let r = 0; r < o.rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const j = (k + r) % variants.length;
      const v = variants[j] as Variant;
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < o.reps; i++) sink += v.run();
      const dt = Number(process.hrtime.bigint() - t0);
      const dc = process.cpuUsage(c0);
      (wall[j] as number[]).push(dt / (o.reps * v.ops));
      (cpu[j] as number[]).push(((dc.user + dc.system) * 1000) / (o.reps * v.ops));
    }
  }
  const results = variants.map((v, j) => ({ name: v.name, ns: median(wall[j] as number[]), cpuNs: median(cpu[j] as number[]), rounds: wall[j] as number[] }));
  return { results, sink };
}

/** The median over rounds of `a[r] / b[r]` (each round's ratio, so a slow round slows both sides alike). */
export function medianRatio(a: VariantResult, b: VariantResult): number {
  return median(a.rounds.map((x, r) => x / (b.rounds[r] as number)));
}

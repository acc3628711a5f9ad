/** Small statistics the benchmarks report with. */

/**
 * The median (upper middle for an even count) of a list, which is left unsorted. Benchmarks report medians
 * because the machine is shared: a mean is pulled up by whichever samples another process preempted.
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

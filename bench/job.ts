// The interface every benchmark job implements; bench/main.ts registers the jobs by name.

export interface BenchResult {
  /** What was measured, with its parameters, e.g. "gemm f32 M=1024 K=768 N=768 threads=1". */
  name: string;
  value: number;
  unit: string;
  /** Extra context printed after the value. */
  note?: string;
  /** The job that produced it (filled in by main.ts). */
  job?: string;
}

export interface BenchJob {
  /** Runs the measurements and returns one result per line of output. */
  run(): Promise<BenchResult[]> | BenchResult[];
}

/**
 * Returns the best time in milliseconds of `fn` over at least `minRuns` runs, repeating until
 * `budgetMs` has passed or `maxRuns` is reached. The best run is the one least disturbed by other
 * processes on the machine.
 */
export function bestTimeMs(
  fn: () => void,
  { minRuns = 3, maxRuns = 20, budgetMs = 1500 } = {},
): number {
  let best = Infinity;
  const start = performance.now();
  for (let run = 0; run < maxRuns; run++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
    if (run + 1 >= minRuns && performance.now() - start > budgetMs) break;
  }
  return best;
}

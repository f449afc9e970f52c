// The interface every benchmark job implements; bench/main.ts registers the jobs by name.

export interface BenchResult {
  /** The measurement and its parameters, e.g. "gemm f32 M=1024 K=768 N=768 threads=1". */
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

/** The best run of a measurement: wall time, and the CPU time all threads of the process used. */
export interface Timing {
  wallMs: number;
  cpuMs: number;
}

/**
 * Returns the run of `fn` with the best wall time over at least `minRuns` runs, repeating until
 * `budgetMs` has passed or `maxRuns` is reached. The best run is the one least disturbed by other
 * processes on the machine. Its CPU time shows how fast the code runs when it has the cores.
 */
export function bestTime(
  fn: () => void,
  { minRuns = 3, maxRuns = 20, budgetMs = 1500 } = {},
): Timing {
  let best: Timing = { wallMs: Infinity, cpuMs: Infinity };
  const start = performance.now();
  for (let run = 0; run < maxRuns; run++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (wallMs < best.wallMs) best = { wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
    if (run + 1 >= minRuns && performance.now() - start > budgetMs) break;
  }
  return best;
}

// Wall time per wasm kernel, for the --profile flag of the training and decode jobs. Every
// kernel runs through KernelPool.run, which returns when all threads are done, so wrapping that
// one method of the pool instance times each kernel call whole. The time outside kernels
// (autodiff bookkeeping, allocation, JavaScript loops) is the step time minus the sum.
import { getPool } from "../src/kernels/pool.js";

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
}

export class KernelProfiler {
  private readonly times = new Map<string, KernelTime>();
  private restore: (() => void) | null = null;
  private recording = false;

  /** Wraps the pool's run method; call stop() to put the original back. */
  start(): void {
    if (this.restore !== null) return;
    const pool = getPool();
    const original = pool.run;
    pool.run = (name, args, threads) => {
      if (!this.recording) return original.call(pool, name, args, threads);
      const t0 = performance.now();
      try {
        return original.call(pool, name, args, threads);
      } finally {
        this.add(name, performance.now() - t0);
      }
    };
    this.restore = () => {
      pool.run = original;
    };
  }

  stop(): void {
    this.restore?.();
    this.restore = null;
  }

  /** Counts calls only while recording, so warm-up steps stay out of the totals. */
  setRecording(on: boolean): void {
    this.recording = on;
  }

  private add(kernel: string, ms: number): void {
    const entry = this.times.get(kernel) ?? { kernel, calls: 0, ms: 0 };
    entry.calls++;
    entry.ms += ms;
    this.times.set(kernel, entry);
  }

  /** Kernel times divided by `steps`, largest first. */
  perStep(steps: number): KernelTime[] {
    return [...this.times.values()]
      .map((t) => ({ kernel: t.kernel, calls: t.calls / steps, ms: t.ms / steps }))
      .sort((a, b) => b.ms - a.ms);
  }
}

/**
 * Formats a kernel profile as lines for stderr: ms per step, share of the step, calls. Pass the
 * mean step time, since the kernel times are means too.
 */
export function formatProfile(label: string, kernels: KernelTime[], meanStepMs: number): string[] {
  const line = (name: string, ms: number, calls: string): string => {
    const share = ((100 * ms) / meanStepMs).toFixed(1).padStart(5);
    return `  ${name.padEnd(32)} ${ms.toFixed(1).padStart(9)} ms ${share}%  ${calls}`.trimEnd();
  };
  const lines = [`profile of ${label}: ${meanStepMs.toFixed(1)} ms per step (mean)`];
  // Kernels under 0.5% of the step are summed into one line.
  const minor = kernels.filter((k) => k.ms < 0.005 * meanStepMs);
  for (const k of kernels) {
    if (!minor.includes(k)) lines.push(line(k.kernel, k.ms, `${k.calls.toFixed(0)} calls`));
  }
  const minorMs = minor.reduce((sum, k) => sum + k.ms, 0);
  if (minor.length > 0) lines.push(line(`${minor.length} other kernels`, minorMs, ""));
  const inKernels = kernels.reduce((sum, k) => sum + k.ms, 0);
  lines.push(line("outside kernels", meanStepMs - inKernels, ""));
  return lines;
}

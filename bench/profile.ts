// Wall and CPU time per wasm kernel, for the --profile flag of the training and decode jobs.
// Every kernel runs through KernelPool.run, which returns when all threads are done, so wrapping
// that one method of the pool instance times each kernel call whole. The time outside kernels
// (autodiff bookkeeping, allocation, JavaScript loops) is the step time minus the sum. CPU time
// (all threads of the process) shows the work even when other processes load the machine, while
// wall time then includes waiting for a descheduled thread.
import { getPool } from "../src/kernels/pool.js";

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
  cpuMs: number;
  /** Floating-point operations done (GEMM only; 0 for other kernels). */
  flop: number;
}

// Argument positions of rows, cols, k and batch in the "gemm" call of kernels/bindings/gemm.ts,
// which passes 20 arguments.
const GEMM_ARGS = { count: 20, rows: 13, cols: 14, k: 15, batch: 16 };

/** Returns a GEMM call's label with its shape (C rows × C cols × K) and its FLOP count. */
function gemmShape(args: number[]): { label: string; flop: number } {
  if (args.length !== GEMM_ARGS.count) return { label: "gemm", flop: 0 };
  const rows = args[GEMM_ARGS.rows];
  const cols = args[GEMM_ARGS.cols];
  const k = args[GEMM_ARGS.k];
  const batch = args[GEMM_ARGS.batch];
  const label = `gemm ${rows}x${cols}x${k}${batch > 1 ? ` batch ${batch}` : ""}`;
  return { label, flop: 2 * rows * cols * k * batch };
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
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      try {
        return original.call(pool, name, args, threads);
      } finally {
        const cpu = process.cpuUsage(cpu0);
        const { label, flop } = name === "gemm" ? gemmShape(args) : { label: name, flop: 0 };
        this.add(label, performance.now() - t0, (cpu.user + cpu.system) / 1000, flop);
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

  private add(kernel: string, ms: number, cpuMs: number, flop: number): void {
    const entry = this.times.get(kernel) ?? { kernel, calls: 0, ms: 0, cpuMs: 0, flop: 0 };
    entry.calls++;
    entry.ms += ms;
    entry.cpuMs += cpuMs;
    entry.flop += flop;
    this.times.set(kernel, entry);
  }

  /** Kernel times divided by `steps`, largest first. */
  perStep(steps: number): KernelTime[] {
    return [...this.times.values()]
      .map((t) => ({
        kernel: t.kernel,
        calls: t.calls / steps,
        ms: t.ms / steps,
        cpuMs: t.cpuMs / steps,
        flop: t.flop / steps,
      }))
      .sort((a, b) => b.ms - a.ms);
  }
}

/** Mean wall and CPU time of one step, in ms. */
export interface StepTime {
  ms: number;
  cpuMs: number;
}

/**
 * Formats a kernel profile as lines for stderr: wall ms per step and its share of the step, CPU
 * ms per step and its share, calls, and for GEMM the GFLOP per CPU-second. Pass the mean step
 * times, since the kernel times are means too.
 */
export function formatProfile(label: string, kernels: KernelTime[], step: StepTime): string[] {
  const line = (name: string, entries: KernelTime[], withCalls: boolean): string => {
    const ms = entries.reduce((total, k) => total + k.ms, 0);
    const cpuMs = entries.reduce((total, k) => total + k.cpuMs, 0);
    const flop = entries.reduce((total, k) => total + k.flop, 0);
    const calls = entries.reduce((total, k) => total + k.calls, 0);
    const share = ((100 * ms) / step.ms).toFixed(1).padStart(5);
    const cpuShare = ((100 * cpuMs) / step.cpuMs).toFixed(1).padStart(5);
    const rate = flop > 0 ? `  ${(flop / (cpuMs * 1e6)).toFixed(1)} GFLOP/CPU-s` : "";
    return (
      `  ${name.padEnd(30)} ${ms.toFixed(1).padStart(8)} ms ${share}%  ` +
      `CPU ${cpuMs.toFixed(1).padStart(8)} ms ${cpuShare}%` +
      `${withCalls ? `  ${calls.toFixed(0)} calls` : ""}${rate}`
    );
  };
  const means = `${step.ms.toFixed(1)} ms per step, CPU ${step.cpuMs.toFixed(1)} ms (means)`;
  const lines = [`profile of ${label}: ${means}`];
  // Kernels under 0.5% of the step's CPU time are summed into one line.
  const minor = kernels.filter((k) => k.cpuMs < 0.005 * step.cpuMs);
  for (const k of kernels) {
    if (!minor.includes(k)) lines.push(line(k.kernel, [k], true));
  }
  if (minor.length > 0) lines.push(line(`${minor.length} other kernels`, minor, true));
  const gemms = kernels.filter((k) => k.kernel.startsWith("gemm"));
  if (gemms.length > 0) lines.push(line("all GEMM calls", gemms, true));
  const outside: KernelTime = {
    kernel: "outside kernels",
    calls: 0,
    ms: step.ms - kernels.reduce((total, k) => total + k.ms, 0),
    cpuMs: step.cpuMs - kernels.reduce((total, k) => total + k.cpuMs, 0),
    flop: 0,
  };
  lines.push(line(outside.kernel, [outside], false));
  return lines;
}

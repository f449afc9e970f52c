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
        this.add(name, performance.now() - t0, (cpu.user + cpu.system) / 1000);
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

  private add(kernel: string, ms: number, cpuMs: number): void {
    const entry = this.times.get(kernel) ?? { kernel, calls: 0, ms: 0, cpuMs: 0 };
    entry.calls++;
    entry.ms += ms;
    entry.cpuMs += cpuMs;
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
 * Formats a kernel profile as lines for stderr: wall ms per step, its share of the step, CPU ms
 * per step and its share, calls. Pass the mean step times, since the kernel times are means too.
 */
export function formatProfile(label: string, kernels: KernelTime[], step: StepTime): string[] {
  const line = (name: string, ms: number, cpuMs: number, calls: string): string => {
    const share = ((100 * ms) / step.ms).toFixed(1).padStart(5);
    const cpuShare = ((100 * cpuMs) / step.cpuMs).toFixed(1).padStart(5);
    return (
      `  ${name.padEnd(30)} ${ms.toFixed(1).padStart(8)} ms ${share}%  ` +
      `CPU ${cpuMs.toFixed(1).padStart(8)} ms ${cpuShare}%  ${calls}`
    ).trimEnd();
  };
  const lines = [
    `profile of ${label}: ${step.ms.toFixed(1)} ms per step, CPU ${step.cpuMs.toFixed(1)} ms (means)`,
  ];
  // Kernels under 0.5% of the step's CPU time are summed into one line.
  const minor = kernels.filter((k) => k.cpuMs < 0.005 * step.cpuMs);
  for (const k of kernels) {
    if (!minor.includes(k))
      lines.push(line(k.kernel, k.ms, k.cpuMs, `${k.calls.toFixed(0)} calls`));
  }
  const sum = (list: KernelTime[], key: "ms" | "cpuMs"): number =>
    list.reduce((total, k) => total + k[key], 0);
  if (minor.length > 0) {
    lines.push(line(`${minor.length} other kernels`, sum(minor, "ms"), sum(minor, "cpuMs"), ""));
  }
  lines.push(
    line("outside kernels", step.ms - sum(kernels, "ms"), step.cpuMs - sum(kernels, "cpuMs"), ""),
  );
  return lines;
}

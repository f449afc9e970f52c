// Runs one measurement in its own Node process and returns its JSON result. A fresh process per
// job keeps the peak resident memory of one job apart from the others, starts every job with cold
// caches and an empty wasm memory, and keeps a crash in one job from ending the whole run.
import { fork } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";

/** The measurement a child process runs: the task module's name and its options (JSON). */
export interface ChildTask {
  task: "train" | "decode" | "checkpoint";
  options: unknown;
}

/** Message the child sends back over the IPC channel. */
export type ChildMessage = { ok: true; result: unknown } | { ok: false; error: string };

export interface RunOptions {
  /** Extra arguments for node itself, e.g. ["--cpu-prof"]. */
  nodeArgs?: string[];
  /** Kill the child after this long (default 20 minutes). */
  timeoutMs?: number;
}

const CHILD_ENTRY = fileURLToPath(new URL("./child.js", import.meta.url));

/**
 * Runs `task` in a child process (bench/child.ts) and resolves with the result it sends. The
 * child's stdout and stderr both go to this process's stderr, so that stdout carries only the
 * report (and stays valid JSON with --json). Rejects when the child fails, exits without a
 * result or runs out of time.
 */
export function runInChild(task: ChildTask, options: RunOptions = {}): Promise<unknown> {
  return runScript(CHILD_ENTRY, [JSON.stringify(task)], options, `the ${task.task} task`);
}

/** Runs a Node script in a child process; resolves with its first IPC message's result. */
export function runScript(
  script: string,
  args: string[],
  options: RunOptions,
  description: string,
): Promise<unknown> {
  const timeoutMs = options.timeoutMs ?? 20 * 60_000;
  return new Promise((resolve, reject) => {
    const child = fork(script, args, {
      execArgv: options.nodeArgs ?? [],
      stdio: ["ignore", 2, 2, "ipc"],
    });
    let message: ChildMessage | null = null;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`bench: ${description} timed out after ${timeoutMs / 1000} s and was killed`),
      );
    }, timeoutMs);
    child.on("message", (m) => {
      message ??= m as ChildMessage;
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`bench: cannot start ${description}: ${err.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (message?.ok === true) resolve(message.result);
      else if (message?.ok === false)
        reject(new Error(`bench: ${description} failed: ${message.error}`));
      else {
        const ending = signal !== null ? `signal ${signal}` : `exit code ${code}`;
        reject(new Error(`bench: ${description} ended with ${ending} before sending a result`));
      }
    });
  });
}

/** Sends `message` to the parent process and exits once it is delivered. */
export function replyAndExit(message: ChildMessage): void {
  if (process.send === undefined) {
    console.log(JSON.stringify(message, null, 2));
    process.exit(message.ok ? 0 : 1);
  }
  // exit() rather than a natural end, because the pool's worker threads keep the process alive.
  process.send(message, () => process.exit(message.ok ? 0 : 1));
}

/** Returns this process's peak resident set size so far, in bytes (Linux: VmHWM). */
export function peakRssBytes(): number {
  // resourceUsage().maxRSS is in kilobytes.
  return process.resourceUsage().maxRSS * 1024;
}

/** Returns the one-minute load average: the number of runnable processes competing for cores. */
export function currentLoad(): number {
  return loadavg()[0];
}

/** Returns the median of `values` (the mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median: no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

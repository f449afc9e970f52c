// A pool of worker threads that run kernels on the one shared WebAssembly.Memory.
//
// A job is dispatched without messages: the main thread writes the kernel id and its arguments
// into a small shared control block, bumps a generation counter and wakes the workers with
// Atomics.notify. Every thread, the main one included as thread 0, then calls the same export
// with its own (tid, nt) and each writes only its own part of the output. The main thread waits
// on a countdown of pending workers, so a kernel call is synchronous for the caller.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { getRuntime, type KernelRuntime } from "./runtime.js";

const MAX_ARGS = 32;
const ERROR_BYTES = 1024;

// Slots of the Int32 control block.
export const CTL_GENERATION = 0;
export const CTL_KERNEL = 1;
export const CTL_NARGS = 2;
export const CTL_PENDING = 3;
export const CTL_ERROR = 4;
export const CTL_THREADS = 5;
/** Bumped by close(): workers of an older epoch exit instead of running the next job. */
export const CTL_EPOCH = 6;
export const CTL_SLOTS = 8;

/** The kernel id that makes workers exit. */
export const KERNEL_EXIT = -1;

export interface PoolWorkerData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  args: SharedArrayBuffer;
  error: SharedArrayBuffer;
  names: string[];
  tid: number;
  /** Generation counter when the worker was created; later bumps are jobs for it. */
  generation: number;
  /** Pool epoch the worker belongs to; see CTL_EPOCH. */
  epoch: number;
}

/** Reads the thread count from TSLORA_THREADS, or the number of available cores. */
export function defaultThreadCount(): number {
  const fromEnv = process.env.TSLORA_THREADS;
  if (fromEnv !== undefined && fromEnv !== "") {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1 || n > 256) {
      throw new Error(
        `TSLORA_THREADS must be a whole number from 1 to 256 (got "${fromEnv}"); unset it to use every core`,
      );
    }
    return n;
  }
  return availableParallelism();
}

export class KernelPool {
  readonly runtime: KernelRuntime;
  private readonly control: Int32Array;
  private readonly args: Float64Array;
  private readonly errorText: Uint8Array;
  private readonly ids = new Map<string, number>();
  private readonly names: string[];
  private workers: Worker[] = [];
  private threadCount = 1;

  constructor(runtime: KernelRuntime, threads: number) {
    this.runtime = runtime;
    this.names = Object.keys(runtime.exports).sort();
    this.names.forEach((name, i) => this.ids.set(name, i));
    this.control = new Int32Array(new SharedArrayBuffer(CTL_SLOTS * 4));
    this.args = new Float64Array(new SharedArrayBuffer(MAX_ARGS * 8));
    this.errorText = new Uint8Array(new SharedArrayBuffer(ERROR_BYTES));
    this.setThreads(threads);
  }

  /** The number of threads a parallel kernel runs on, the main thread included. */
  get threads(): number {
    return this.threadCount;
  }

  /** Sets the thread count, starting workers as needed; surplus workers stay idle. */
  setThreads(threads: number): void {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new Error(`thread count must be a whole number of at least 1 (got ${threads})`);
    }
    while (this.workers.length < threads - 1) this.startWorker(this.workers.length + 1);
    // Surplus workers stay alive and idle, because a job runs only on tids below its thread
    // count. Restarting them would cost a module instantiation per change.
    this.threadCount = threads;
  }

  /**
   * Runs export `name` on every thread as name(...args, tid, nt) and returns when all are done.
   * Runs on the calling thread alone when `threads` is 1.
   */
  run(name: string, args: number[], threads = this.threadCount): void {
    const fn = this.runtime.exports[name];
    if (fn === undefined) throw new Error(`kernel "${name}" is not exported by the wasm module`);
    const nt = Math.min(threads, this.threadCount);
    if (nt <= 1) {
      fn(...args, 0, 1);
      return;
    }
    if (args.length > MAX_ARGS) {
      throw new Error(
        `kernel "${name}" takes ${args.length} arguments; the pool passes at most ${MAX_ARGS}`,
      );
    }
    const id = this.ids.get(name) ?? -1;
    const c = this.control;
    this.publish(() => {
      for (let i = 0; i < args.length; i++) this.args[i] = args[i];
      c[CTL_KERNEL] = id;
      c[CTL_NARGS] = args.length;
      c[CTL_THREADS] = nt;
      c[CTL_ERROR] = 0;
      Atomics.store(c, CTL_PENDING, nt - 1);
    });

    let mainError: unknown = null;
    try {
      fn(...args, 0, nt);
    } catch (e) {
      mainError = e;
    }
    this.waitForWorkers();
    if (mainError !== null) throw mainError;
    if (Atomics.load(c, CTL_ERROR) !== 0) {
      const text = new TextDecoder().decode(this.errorText.slice()).replace(/\0+$/, "");
      throw new Error(`kernel "${name}" failed in a worker thread: ${text}`);
    }
  }

  /** Stops every worker; the pool keeps working on the main thread alone. */
  close(): void {
    this.stopWorkers();
    this.threadCount = 1;
  }

  /**
   * Writes a job under a sequence lock: the generation is odd while the fields change and even
   * once they are complete. A worker that skipped the previous job may be reading the fields
   * right now, so it retries when the generation moved under it (see pool-worker.ts).
   */
  private publish(write: () => void): void {
    const c = this.control;
    Atomics.add(c, CTL_GENERATION, 1);
    write();
    Atomics.add(c, CTL_GENERATION, 1);
    Atomics.notify(c, CTL_GENERATION);
  }

  private waitForWorkers(): void {
    const c = this.control;
    for (let spin = 0; spin < 20000; spin++) {
      if (Atomics.load(c, CTL_PENDING) === 0) return;
    }
    for (;;) {
      const pending = Atomics.load(c, CTL_PENDING);
      if (pending === 0) return;
      Atomics.wait(c, CTL_PENDING, pending, 1000);
    }
  }

  private startWorker(tid: number): void {
    const data: PoolWorkerData = {
      module: this.runtime.module,
      memory: this.runtime.memory,
      control: this.control.buffer as SharedArrayBuffer,
      args: this.args.buffer as SharedArrayBuffer,
      error: this.errorText.buffer as SharedArrayBuffer,
      names: this.names,
      tid,
      generation: Atomics.load(this.control, CTL_GENERATION),
      epoch: Atomics.load(this.control, CTL_EPOCH),
    };
    const worker = new Worker(new URL("./pool-worker.js", import.meta.url), { workerData: data });
    worker.unref();
    this.workers.push(worker);
  }

  private stopWorkers(): void {
    if (this.workers.length === 0) return;
    const c = this.control;
    this.publish(() => {
      c[CTL_KERNEL] = KERNEL_EXIT;
      Atomics.add(c, CTL_EPOCH, 1);
    });
    this.workers = [];
  }
}

let pool: KernelPool | null = null;

/** Returns the process-wide pool, created on first use with defaultThreadCount() threads. */
export function getPool(): KernelPool {
  if (!pool) pool = new KernelPool(getRuntime(), defaultThreadCount());
  return pool;
}

/** Sets the number of threads kernels run on (the main thread counts as one). */
export function setThreads(threads: number): void {
  getPool().setThreads(threads);
}

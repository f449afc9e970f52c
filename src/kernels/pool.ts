// A pool of worker threads that run kernels on the one shared WebAssembly.Memory.
//
// A job is dispatched without messages: the main thread writes the kernel id and its arguments
// into a small shared control block, bumps a generation counter and wakes the workers with
// Atomics.notify. A job of nt parts calls the export once per part as kernel(...args, part, nt),
// and each call writes only that part of the output. Threads claim parts from a shared counter,
// the main thread included, so a worker that the OS has not scheduled yet delays nothing: the
// main thread runs the parts that no worker claimed. A part computes the same values whichever thread
// runs it, so results do not depend on the claiming order. The main thread then waits on a
// countdown of unfinished parts, so a kernel call is synchronous for the caller.
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
/** Next unclaimed part of the current job, tagged with the job: see claimTag(). */
export const CTL_CLAIM = 7;
export const CTL_SLOTS = 8;

// CTL_CLAIM contains tag * CLAIM_PARTS + next part; CLAIM_PARTS exceeds the maximum thread count.
export const CLAIM_PARTS = 512;
const CLAIM_TAGS = 1 << 22;

/**
 * Returns the tag of the job published at `generation` (an even value). A worker that read the
 * fields of an older job finds another tag in CTL_CLAIM and claims nothing.
 */
export function claimTag(generation: number): number {
  return (generation >>> 1) % CLAIM_TAGS;
}

/**
 * Claims the next part of the job tagged `tag` and returns its index, or -1 when every part is
 * taken or the job is no longer current.
 */
export function claimPart(control: Int32Array, tag: number, parts: number): number {
  for (;;) {
    const word = Atomics.load(control, CTL_CLAIM);
    const next = word % CLAIM_PARTS;
    if (Math.floor(word / CLAIM_PARTS) !== tag || next >= parts) return -1;
    if (Atomics.compareExchange(control, CTL_CLAIM, word, word + 1) === word) return next;
  }
}

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
   * Runs export `name` as name(...args, part, nt) for every part 0..nt-1, each part on whichever
   * thread claims it, and returns when all are done. Runs on the calling thread alone when
   * `threads` is 1.
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
    const generation = this.publish(
      () => {
        for (let i = 0; i < args.length; i++) this.args[i] = args[i];
        c[CTL_KERNEL] = id;
        c[CTL_NARGS] = args.length;
        c[CTL_THREADS] = nt;
        c[CTL_ERROR] = 0;
        Atomics.store(c, CTL_PENDING, nt);
      },
      (next) => claimTag(next) * CLAIM_PARTS,
    );

    // Run parts until none is left. After an error the remaining parts are claimed but skipped,
    // so that the countdown still reaches zero.
    const tag = claimTag(generation);
    let mainError: unknown = null;
    const callArgs = [...args, 0, nt];
    for (let part = claimPart(c, tag, nt); part >= 0; part = claimPart(c, tag, nt)) {
      if (mainError === null) {
        callArgs[args.length] = part;
        try {
          fn(...callArgs);
        } catch (e) {
          mainError = e;
        }
      }
      Atomics.sub(c, CTL_PENDING, 1);
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
   * right now, so it retries when the generation moved under it (see pool-worker.ts). `claim`
   * returns the CTL_CLAIM word for the new generation. Workers claim parts only after they have
   * read the even generation, so no part is claimed before the fields are complete. Returns the
   * new (even) generation.
   */
  private publish(write: () => void, claim: (generation: number) => number): number {
    const c = this.control;
    const generation = Atomics.add(c, CTL_GENERATION, 1) + 2;
    write();
    Atomics.store(c, CTL_CLAIM, claim(generation));
    Atomics.add(c, CTL_GENERATION, 1);
    Atomics.notify(c, CTL_GENERATION);
    return generation;
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
    // The claim word of an exit job marks every part as taken.
    this.publish(
      () => {
        c[CTL_KERNEL] = KERNEL_EXIT;
        Atomics.add(c, CTL_EPOCH, 1);
      },
      () => CLAIM_TAGS * CLAIM_PARTS - 1,
    );
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

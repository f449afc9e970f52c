// Body of one pool worker: wait for a new generation in the control block, run the kernel with
// this thread's (tid, nt), count down the pending workers, repeat. See pool.ts for the protocol.
import { workerData } from "node:worker_threads";
import {
  CTL_ERROR,
  CTL_GENERATION,
  CTL_KERNEL,
  CTL_NARGS,
  CTL_PENDING,
  CTL_THREADS,
  KERNEL_EXIT,
  type PoolWorkerData,
} from "./pool.js";
import { instanceImports, kernelFunctions } from "./runtime.js";

const data = workerData as PoolWorkerData;
const instance = new WebAssembly.Instance(data.module, { env: instanceImports(data.memory) });
const exportsByName = kernelFunctions(instance);
const kernels = data.names.map((name) => exportsByName[name]);
const control = new Int32Array(data.control);
const args = new Float64Array(data.args);
const errorText = new Uint8Array(data.error);

function reportError(e: unknown): void {
  const text = new TextEncoder().encode(e instanceof Error ? e.message : String(e));
  errorText.fill(0);
  errorText.set(text.subarray(0, errorText.length - 1));
  Atomics.store(control, CTL_ERROR, 1);
}

let seen = data.generation;
const callArgs: number[] = [];
for (;;) {
  let spin = 0;
  while (Atomics.load(control, CTL_GENERATION) === seen && spin < 20000) spin++;
  if (Atomics.load(control, CTL_GENERATION) === seen) Atomics.wait(control, CTL_GENERATION, seen);
  seen = Atomics.load(control, CTL_GENERATION);

  const kernel = control[CTL_KERNEL];
  if (kernel === KERNEL_EXIT) break;
  const nt = control[CTL_THREADS];
  if (data.tid < nt) {
    const n = control[CTL_NARGS];
    callArgs.length = 0;
    for (let i = 0; i < n; i++) callArgs.push(args[i]);
    callArgs.push(data.tid, nt);
    try {
      kernels[kernel](...callArgs);
    } catch (e) {
      reportError(e);
    }
    if (Atomics.sub(control, CTL_PENDING, 1) === 1) Atomics.notify(control, CTL_PENDING);
  }
}

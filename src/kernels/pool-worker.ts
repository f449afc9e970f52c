// Body of one pool worker: wait for a new generation in the control block, claim and run parts
// of the job until none is left, counting each one down, repeat. See pool.ts for the protocol.
import { workerData } from "node:worker_threads";
import {
  claimPart,
  claimTag,
  CTL_EPOCH,
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

// Loads of the generation word before sleeping: 2 to 6 ms when measured in a cold loop on the
// 2-core development VM, less once V8 has optimised the loop.
const SPIN_LOADS = 200_000;

let seen = data.generation;
const callArgs: number[] = [];
for (;;) {
  // Wait for an even generation other than the last one seen (odd: a job is being written).
  // Spin a few milliseconds before sleeping: between the kernels of a step the main thread
  // spends up to a few hundred microseconds in JavaScript, and a worker that slept through that
  // gap made the next kernel wait for its wake-up. Spinning ten times longer than before raised
  // TinyStories-656K training by about 15% (six interleaved pairs of runs on a noisy machine).
  let generation = Atomics.load(control, CTL_GENERATION);
  for (let spin = 0; (generation === seen || generation & 1) && spin < SPIN_LOADS; spin++) {
    generation = Atomics.load(control, CTL_GENERATION);
  }
  if (generation === seen || generation & 1) {
    Atomics.wait(control, CTL_GENERATION, generation);
    continue;
  }

  const kernel = control[CTL_KERNEL];
  const epoch = control[CTL_EPOCH];
  const nt = control[CTL_THREADS];
  const n = control[CTL_NARGS];
  callArgs.length = 0;
  for (let i = 0; i < n; i++) callArgs.push(args[i]);
  // The fields are only consistent if the generation did not move while they were read.
  if (Atomics.load(control, CTL_GENERATION) !== generation) continue;
  seen = generation;

  if (kernel === KERNEL_EXIT || epoch !== data.epoch) break;
  if (data.tid >= nt) continue;
  callArgs.push(0, nt);
  const tag = claimTag(generation);
  for (let part = claimPart(control, tag, nt); part >= 0; part = claimPart(control, tag, nt)) {
    callArgs[n] = part;
    try {
      kernels[kernel](...callArgs);
    } catch (e) {
      reportError(e);
    }
    if (Atomics.sub(control, CTL_PENDING, 1) === 1) Atomics.notify(control, CTL_PENDING);
  }
}

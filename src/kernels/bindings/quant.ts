// Binding to the quantized-weight products in wasm/gemm-quant.ts. Callers check shapes; this layer
// lends the per-thread scratch and picks the thread count.
import { getPool } from "../pool.js";
import { getRuntime } from "../runtime.js";
import { withKernelScratch } from "./scratch.js";

// Format codes of wasm/gemm-quant.ts.
const KIND_CODES = { int8: 0, nf4: 1 } as const;

/** A quantized weight W [n, k] as the kernel reads it (byte offsets into the shared memory). */
export interface QuantOperand {
  kind: keyof typeof KIND_CODES;
  codes: number;
  /** int8: f32 row scales. NF4: i8 absmax codes. */
  scales: number;
  /** NF4: f32 absmax steps (0 for int8). */
  absmaxSteps: number;
  absmaxMean: number;
  n: number;
  k: number;
  /** Row length of the codes in weights (k rounded up to 64). */
  paddedK: number;
}

// Below this many multiply-adds a product runs on the calling thread: waking workers costs more.
const SERIAL_MADDS = 32 * 32 * 32;

/**
 * Forward: out [m, n] (+)= x [m, k] · W^T. Backward: out [m, k] (+)= x [m, n] · W. x and out are
 * row-major f32 at the given byte offsets. Results do not depend on the thread count.
 */
export function quantGemm(
  w: QuantOperand,
  x: number,
  m: number,
  backward: boolean,
  out: number,
  accumulate: boolean,
): void {
  if (m === 0 || w.n === 0 || w.k === 0) {
    // An empty inner dimension gives a zero product.
    const cols = backward ? w.k : w.n;
    if (!accumulate) new Float32Array(getRuntime().memory.buffer, out, m * cols).fill(0);
    return;
  }
  const pool = getPool();
  const threads = m * w.n * w.k < SERIAL_MADDS ? 1 : pool.threads;
  const scratchBytes = Number(getRuntime().exports.quantScratchBytes(w.paddedK));
  const args = [
    KIND_CODES[w.kind],
    w.codes,
    w.scales,
    w.absmaxSteps,
    w.absmaxMean,
    w.n,
    w.k,
    w.paddedK,
    x,
    m,
    backward ? 1 : 0,
    out,
    accumulate ? 1 : 0,
  ];
  withKernelScratch(scratchBytes, threads, (offset, stride) => {
    pool.run("quantGemm", [...args, offset, stride], threads);
  });
}

// Binding to the GEMM kernel in wasm/gemm.ts: C (+)= A·B, batched, any element strides, B stored
// as f32, bf16 or f16. Callers check shapes and dtypes. This layer lends the per-thread packing
// scratch and runs the warm-up that gets V8 to compile the kernel with its optimising tier.
import { getPool, type KernelPool } from "../pool.js";
import { getRuntime } from "../runtime.js";
import { withKernelScratch } from "./scratch.js";

/** Storage dtypes of the B operand. A and C are always f32. */
export type GemmDType = "f32" | "bf16" | "f16";

// Dtype codes of wasm/gemm-pack.ts.
const DTYPE_CODES: Record<GemmDType, number> = { f32: 0, bf16: 1, f16: 2 };
const DTYPE_BYTES: Record<GemmDType, number> = { f32: 4, bf16: 2, f16: 2 };

/**
 * One operand in the shared memory: element (i, j) of batch item t is at byte offset
 * `offset + (t * batch + i * row + j * col) * elementBytes`. `batch` 0 shares one matrix.
 */
export interface GemmOperand {
  offset: number;
  row: number;
  col: number;
  batch: number;
}

export interface GemmCall {
  /** A [m, k], f32. */
  a: GemmOperand;
  /** B [k, n], stored as `bDtype`. */
  b: GemmOperand;
  bDtype: GemmDType;
  /** C [m, n], f32. */
  c: GemmOperand;
  m: number;
  n: number;
  k: number;
  batch: number;
  /** Add the product to C instead of overwriting C. */
  accumulate?: boolean;
}

/** Returns the operand for row-major [rows, cols] matrices at `offset`, read transposed or not. */
export function matrixOperand(
  offset: number,
  rows: number,
  cols: number,
  transposed = false,
  batched = true,
): GemmOperand {
  const batch = batched ? rows * cols : 0;
  if (transposed) return { offset, row: 1, col: cols, batch };
  return { offset, row: cols, col: 1, batch };
}

/**
 * Below this many multiply-adds a GEMM runs on the calling thread. 2^19 multiply-adds take some
 * 25 µs on one core at 40 GFLOP/s, our estimate of what waking a sleeping worker costs.
 */
export const GEMM_SERIAL_MADDS = 1 << 19;

/** Computes C (+)= A·B for every batch item. Results do not depend on the thread count. */
export function gemm(call: GemmCall): void {
  const { m, n, k, batch } = call;
  if (m === 0 || n === 0 || batch === 0) return;
  let { a, b, c } = call;
  let rows = m;
  let cols = n;

  // A column-major C would be written element by element; when B is f32 compute the
  // transposed product C^T = B^T A^T instead, whose C rows are contiguous.
  if (c.col !== 1 && c.row === 1 && call.bDtype === "f32") {
    [a, b] = [swap(b), swap(a)];
    c = swap(c);
    [rows, cols] = [n, m];
  }

  const pool = getPool();
  warmUpGemm(pool);
  const threads = rows * cols * k * batch < GEMM_SERIAL_MADDS ? 1 : pool.threads;
  const scratchBytes = Number(getRuntime().exports.gemmScratchBytes(k));
  // Argument order of the wasm export gemm() (bench/profile.ts reads rows, cols, k and batch).
  const args = [
    a.offset,
    a.row,
    a.col,
    a.batch,
    b.offset,
    b.row,
    b.col,
    b.batch,
    DTYPE_CODES[call.bDtype],
    c.offset,
    c.row,
    c.col,
    c.batch,
    rows,
    cols,
    k,
    batch,
    call.accumulate ? 1 : 0,
  ];
  withKernelScratch(scratchBytes, threads, (offset, stride) => {
    pool.run("gemm", [...args, offset, stride], threads);
  });
}

function swap(op: GemmOperand): GemmOperand {
  return { offset: op.offset, row: op.col, col: op.row, batch: op.batch };
}

/** Bytes of one element of a B operand stored as `dtype`. */
export function gemmDTypeBytes(dtype: GemmDType): number {
  return DTYPE_BYTES[dtype];
}

// Threads of the pool that have run the warm-up (workers are started in tid order).
let warmedThreads = 0;
// Warm-up calls: at least WARMUP_MIN_CALLS of WARMUP_ROUNDS rounds, at most WARMUP_MAX_MS. With
// V8 11.3 (Node 20) every GEMM function had been recompiled by its optimising tier after 10.
const WARMUP_ROUNDS = 4;
const WARMUP_MIN_CALLS = 12;
const WARMUP_MAX_MS = 400;

/**
 * Runs small GEMMs on every pool thread until their speed stops improving, so that V8 has
 * compiled the kernels with its optimising tier before real work arrives. V8 first runs wasm
 * with its baseline compiler, at about a fifth of the optimised speed, and a call in progress
 * never switches to new code. Called by the first gemm() on a pool, and again when it gains
 * threads.
 */
export function warmUpGemm(pool: KernelPool = getPool()): void {
  if (warmedThreads >= pool.threads) return;
  const bytes = Number(getRuntime().exports.gemmWarmupBytes());
  withKernelScratch(bytes, pool.threads, (offset, stride) => warmUp(pool, offset, stride));
  warmedThreads = pool.threads;
}

function warmUp(pool: KernelPool, offset: number, stride: number): void {
  const start = performance.now();
  let best = Infinity;
  let stalled = 0;
  // The optimised code arrives from a background compile, so after the minimum, repeat until a
  // few calls in a row are no faster than the best one.
  for (let call = 0; performance.now() - start < WARMUP_MAX_MS; call++) {
    const t0 = performance.now();
    pool.run("gemmWarmup", [offset, stride, WARMUP_ROUNDS]);
    const elapsed = performance.now() - t0;
    if (elapsed < best * 0.95) {
      best = elapsed;
      stalled = 0;
    } else {
      stalled++;
    }
    if (call + 1 >= WARMUP_MIN_CALLS && stalled >= 3) break;
  }
}

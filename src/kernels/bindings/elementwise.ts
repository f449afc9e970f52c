// Bindings to the elementwise kernels in wasm/elementwise.ts. Arguments are byte offsets into the
// shared memory and element counts; callers check shapes and dtypes.
import { getPool } from "../pool.js";

/** Binary operation codes understood by the kernels. RSUB computes b - a. */
export const enum BinaryOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  RSub = 3,
}

/**
 * Below this many elements a kernel runs on the calling thread alone, because waking a sleeping
 * worker costs about as much as a pass over 2^16 f32 values (an estimate).
 */
export const PARALLEL_MIN_ELEMENTS = 1 << 16;

/** Returns the thread count for `work` elements: 1 for small jobs, else the pool's count. */
export function threadsFor(work: number): number | undefined {
  return work < PARALLEL_MIN_ELEMENTS ? 1 : undefined;
}

/** out = a + b over n f32 elements (out may alias a or b). */
export function addF32(a: number, b: number, out: number, n: number): void {
  getPool().run("addF32", [a, b, out, n], threadsFor(n));
}

/** out[i] = a[i] op b[i] over n f32 elements. */
export function binarySameF32(op: BinaryOp, a: number, b: number, out: number, n: number): void {
  getPool().run("binarySameF32", [op, a, b, out, n], threadsFor(n));
}

/** out[r, j] = a[r, j] op b[j]: a, out [rows, c]; b [c]. */
export function binaryRowF32(
  op: BinaryOp,
  a: number,
  b: number,
  out: number,
  rows: number,
  c: number,
): void {
  getPool().run("binaryRowF32", [op, a, b, out, rows, c], threadsFor(rows * c));
}

/** out[i] = a[i] op s, with s the f32 at offset `scalar`. */
export function binaryScalarF32(
  op: BinaryOp,
  a: number,
  scalar: number,
  out: number,
  n: number,
): void {
  getPool().run("binaryScalarF32", [op, a, scalar, out, n], threadsFor(n));
}

/** out[i] = a[i] * s (s rounded to f32). */
export function scaleF32(a: number, out: number, n: number, s: number): void {
  getPool().run("scaleF32", [a, out, n, s], threadsFor(n));
}

/**
 * General broadcasting: `meta` is an i32 block [ndim, shape..., strideA..., strideB...] (element
 * strides, 0 on broadcast dimensions) describing the n-element output.
 */
export function binaryStridedF32(
  op: BinaryOp,
  a: number,
  b: number,
  out: number,
  n: number,
  meta: number,
): void {
  getPool().run("binaryStridedF32", [op, a, b, out, n, meta], threadsFor(n));
}

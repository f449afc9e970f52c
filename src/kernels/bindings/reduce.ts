// Bindings to the sum reductions in wasm/reduce.ts. Arguments are byte offsets and counts.
import { getPool } from "../pool.js";
import { getArena } from "../../engine/memory.js";
import { getRuntime } from "../runtime.js";
import { threadsFor } from "./elementwise.js";

/** Elements per partial sum in sumBlocksF32 (the same constant as in wasm/reduce.ts). */
export const SUM_BLOCK = 4096;

function sumBlocks(a: number, n: number, square: boolean): number {
  const blocks = Math.ceil(n / SUM_BLOCK);
  if (blocks === 0) return 0;
  const arena = getArena();
  const mark = arena.mark();
  try {
    const partials = arena.alloc(blocks * 8);
    getPool().run("sumBlocksF32", [a, n, partials, square ? 1 : 0], threadsFor(n));
    const values = new Float64Array(getRuntime().memory.buffer, partials, blocks);
    // Summed in block order here, so the total is the same for any thread count.
    let total = 0;
    for (let k = 0; k < blocks; k++) total += values[k];
    return total;
  } finally {
    arena.release(mark);
  }
}

/** Returns the sum of n f32 values at `a`, accumulated in f64. */
export function sumF32(a: number, n: number): number {
  return sumBlocks(a, n, false);
}

/** Returns the sum of squares of n f32 values at `a`, accumulated in f64. */
export function sumSquaresF32(a: number, n: number): number {
  return sumBlocks(a, n, true);
}

/** out[j] = sum over r of g[r, j] for g [rows, c] f32; out [c] f32. */
export function colSumF32(g: number, rows: number, c: number, out: number): void {
  getPool().run("colSumF32", [g, rows, c, out], threadsFor(rows * c));
}

/**
 * out[o] = sum over the reduced dimensions of g. `meta` is an i32 block
 * [nk, keptShape..., keptStride..., nr, redShape..., redStride...] (element strides into g).
 */
export function reduceStridedF32(
  g: number,
  out: number,
  nOut: number,
  meta: number,
  work: number,
): void {
  getPool().run("reduceStridedF32", [g, out, nOut, meta], threadsFor(work));
}

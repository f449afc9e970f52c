// Bindings to the copy kernels in wasm/layout.ts. Offsets, strides and sizes are in bytes.
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

/** Copies `rows` rows of rowBytes bytes from src (stride srcStride) to dst (stride dstStride). */
export function copyRows(
  src: number,
  srcStride: number,
  dst: number,
  dstStride: number,
  rows: number,
  rowBytes: number,
): void {
  if (rows === 0 || rowBytes === 0) return;
  getPool().run(
    "copyRows",
    [src, srcStride, dst, dstStride, rows, rowBytes],
    threadsFor((rows * rowBytes) >> 2),
  );
}

/** Copies src [outer, d0, mid, d1, inner] into dst [outer, d1, mid, d0, inner]. */
export function transposeSwap(
  src: number,
  dst: number,
  dims: { outer: number; d0: number; mid: number; d1: number; inner: number },
  elemBytes: number,
): void {
  const { outer, d0, mid, d1, inner } = dims;
  const n = outer * d0 * mid * d1 * inner;
  if (n === 0) return;
  getPool().run("transposeSwap", [src, dst, outer, d0, mid, d1, inner, elemBytes], threadsFor(n));
}

// Copy kernels behind transpose, slice and concat. They move raw elements of 2 or 4 bytes, so
// they serve every dtype. Split by output rows; results do not depend on the thread count.
import { partStart, partEnd } from "./split";

/**
 * Copies `rows` rows of `rowBytes` bytes: row r goes from src + r * srcStride to
 * dst + r * dstStride (strides in bytes). Slice, concat and their backward passes use it.
 */
export function copyRows(
  src: usize,
  srcStride: i32,
  dst: usize,
  dstStride: i32,
  rows: i32,
  rowBytes: i32,
  tid: i32,
  nt: i32,
): void {
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  for (let r = r0; r < r1; r++) {
    memory.copy(
      dst + <usize>r * <usize>dstStride,
      src + <usize>r * <usize>srcStride,
      <usize>rowBytes,
    );
  }
}

/**
 * Swaps two dimensions: src [outer, d0, mid, d1, inner] to dst [outer, d1, mid, d0, inner], for
 * elements of `elemBytes` (2 or 4) bytes. Split by the outer * d1 * mid * d0 output rows of
 * `inner` elements.
 */
export function transposeSwap(
  src: usize,
  dst: usize,
  outer: i32,
  d0: i32,
  mid: i32,
  d1: i32,
  inner: i32,
  elemBytes: i32,
  tid: i32,
  nt: i32,
): void {
  const rows = outer * d1 * mid * d0;
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  const rowBytes = <usize>inner * <usize>elemBytes;
  for (let r = r0; r < r1; r++) {
    // Output row r is (o, j1, m, j0) in [outer, d1, mid, d0].
    let rest = r;
    const j0 = rest % d0;
    rest /= d0;
    const m = rest % mid;
    rest /= mid;
    const j1 = rest % d1;
    const o = rest / d1;
    const srcRow = (((o * d0 + j0) * mid + m) * d1 + j1);
    const from = src + <usize>srcRow * rowBytes;
    const to = dst + <usize>r * rowBytes;
    if (rowBytes == 4) store<u32>(to, load<u32>(from));
    else if (rowBytes == 2) store<u16>(to, load<u16>(from));
    else memory.copy(to, from, rowBytes);
  }
}

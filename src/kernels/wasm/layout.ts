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

// Side of the square tiles used when the swapped dimensions are the innermost ones.
const TILE = 16;

/** Copies one tile of a strided 2-D transpose: dst[j1, j0] = src[j0, j1] for the given ranges. */
@inline
function transposeTile(
  src: usize,
  srcRow: usize,
  dst: usize,
  dstRow: usize,
  j0a: i32,
  j0b: i32,
  j1a: i32,
  j1b: i32,
  elemBytes: i32,
): void {
  for (let j1 = j1a; j1 < j1b; j1++) {
    for (let j0 = j0a; j0 < j0b; j0++) {
      const from = src + <usize>j0 * srcRow + <usize>j1 * <usize>elemBytes;
      const to = dst + <usize>j1 * dstRow + <usize>j0 * <usize>elemBytes;
      if (elemBytes == 4) store<u32>(to, load<u32>(from));
      else store<u16>(to, load<u16>(from));
    }
  }
}

/**
 * Swaps two dimensions: src [outer, d0, mid, d1, inner] to dst [outer, d1, mid, d0, inner], for
 * elements of `elemBytes` (2 or 4) bytes. With inner > 1 every output row of `inner` elements is
 * one copy, split across threads by rows. With inner = 1 the work goes in 16 x 16 tiles so that
 * both sides stay in cache, split by bands of 16 output rows.
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
  if (inner == 1) {
    // For each (o, m): a d0 x d1 matrix with row stride mid * d1 becomes d1 x d0 with row stride
    // mid * d0.
    const bands = (d1 + TILE - 1) / TILE;
    const units = outer * mid * bands;
    const u0 = partStart(units, 1, tid, nt);
    const u1 = partEnd(units, 1, tid, nt);
    const srcRow = <usize>mid * <usize>d1 * <usize>elemBytes;
    const dstRow = <usize>mid * <usize>d0 * <usize>elemBytes;
    for (let u = u0; u < u1; u++) {
      const band = u % bands;
      const om = u / bands;
      const m = om % mid;
      const o = om / mid;
      const base = <usize>o * <usize>d0 * <usize>mid * <usize>d1 + <usize>m * <usize>d1;
      const srcBase = src + base * <usize>elemBytes;
      const dstBase = dst + (<usize>o * <usize>d1 * <usize>mid * <usize>d0 + <usize>m * <usize>d0) * <usize>elemBytes;
      const j1a = band * TILE;
      const j1b = min(d1, j1a + TILE);
      for (let j0a = 0; j0a < d0; j0a += TILE) {
        const j0b = min(d0, j0a + TILE);
        if (elemBytes == 4) transposeTile(srcBase, srcRow, dstBase, dstRow, j0a, j0b, j1a, j1b, 4);
        else transposeTile(srcBase, srcRow, dstBase, dstRow, j0a, j0b, j1a, j1b, 2);
      }
    }
    return;
  }
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
    const srcRow = ((o * d0 + j0) * mid + m) * d1 + j1;
    const from = src + <usize>srcRow * rowBytes;
    const to = dst + <usize>r * rowBytes;
    if (rowBytes == 4) store<u32>(to, load<u32>(from));
    else if (rowBytes == 2) store<u16>(to, load<u16>(from));
    else memory.copy(to, from, rowBytes);
  }
}

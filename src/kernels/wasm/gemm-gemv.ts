// The GEMV path of gemm() for M <= GEMV_MAX_M rows (decoding). These products are bound by
// memory bandwidth: B is read once from memory and each value is used M times, so a bf16 or f16
// weight moves half the bytes of an f32 one. Operand layout as in gemm.ts.
//
// Two shapes of B are handled: "dot" when a column of B is contiguous (bRow == 1, a [N, K] weight
// such as nn.Linear), where each C value is a SIMD dot product; and "axpy" when a row of B is
// contiguous (bCol == 1, a [K, N] weight), where C rows accumulate scaled rows of B. Each C value
// is summed in an order fixed by k alone, so thread count and column grouping do not change it.
//
// 16-bit weights are decoded 8 at a time into their even and odd elements (one or two shifts per
// vector, cheaper than unpacking halves). The dot path reads A in the same permuted order. The
// axpy path keeps its sums permuted and restores the column order when it writes C.
import {
  DTYPE_BF16,
  DTYPE_F16,
  DTYPE_F32,
  f16BitsToF32,
  f16HasSpecial,
  f16HighToF32,
  loadAsF32,
  madd,
} from "./gemm-pack";

/** Largest M that takes the GEMV path. */
export const GEMV_MAX_M: i32 = 4;

// Sums per axpy block: M rows of 2048 / M columns (8 KiB of f32) stay in L1. Wider blocks read
// longer runs of each B row, which streams faster from DRAM.
const AXPY_SUMS: i32 = 2048;

/** Returns the scratch bytes the GEMV path needs for inner dimension k. */
export function gemvScratchBytes(k: i32): usize {
  const packedA = <usize>(GEMV_MAX_M * k) << 2;
  const sums = <usize>AXPY_SUMS << 2;
  return packedA + sums + 64;
}

/** Computes C[0:m, j0:j1] of one batch item. `work` is this thread's scratch. */
export function gemvRange(
  a: usize,
  aRow: i32,
  aCol: i32,
  b: usize,
  bRow: i32,
  bCol: i32,
  bType: i32,
  c: usize,
  cRow: i32,
  cCol: i32,
  m: i32,
  j0: i32,
  j1: i32,
  k: i32,
  accumulate: i32,
  work: usize,
): void {
  const packedA = work;
  const dot = bRow == 1;
  // The dot path pairs A with even/odd-decoded 16-bit weights, so A takes the same order.
  packRows(a, aRow, aCol, m, k, dot && bType != DTYPE_F32, packedA);
  if (dot) {
    const acc = accumulate;
    if (bType == DTYPE_F32) gemvDotF32(packedA, b, bCol, c, cRow, cCol, m, j0, j1, k, acc);
    else if (bType == DTYPE_BF16) gemvDotBf16(packedA, b, bCol, c, cRow, cCol, m, j0, j1, k, acc);
    else gemvDotF16(packedA, b, bCol, c, cRow, cCol, m, j0, j1, k, acc);
    return;
  }
  // The sums follow the packed A rows, rounded up to 64 bytes.
  const sums = (work + (<usize>(GEMV_MAX_M * k) << 2) + 63) & ~(<usize>63);
  const block = (AXPY_SUMS / m) & ~7;
  for (let jb = j0; jb < j1; jb += block) {
    const width = min(block, j1 - jb);
    memory.fill(sums, 0, <usize>(m * block) << 2);
    if (bType == DTYPE_F32) axpyBlockF32(packedA, b, bRow, m, jb, width, k, sums, block);
    else if (bType == DTYPE_BF16) axpyBlockBf16(packedA, b, bRow, m, jb, width, k, sums, block);
    else axpyBlockF16(packedA, b, bRow, m, jb, width, k, sums, block);
    writeSums(sums, bType != DTYPE_F32, c, cRow, cCol, m, jb, width, accumulate, block);
  }
}

// Copies the m rows of A to dst as contiguous rows of k, in groups of 8 reordered to elements
// 0, 2, 4, 6, 1, 3, 5, 7 when `evenOdd` is set (a last partial group keeps its order).
function packRows(a: usize, aRow: i32, aCol: i32, m: i32, k: i32, evenOdd: bool, dst: usize): void {
  const full = evenOdd ? k & ~7 : 0;
  for (let r = 0; r < m; r++) {
    const out = dst + ((<usize>r * <usize>k) << 2);
    const row = a + ((<usize>r * <usize>aRow) << 2);
    const step = <usize>aCol;
    for (let kk = 0; kk < full; kk++) {
      const group = kk & ~7;
      const lane = kk & 7;
      const source = group + (lane < 4 ? lane * 2 : (lane - 4) * 2 + 1);
      store<f32>(out + (<usize>kk << 2), load<f32>(row + ((<usize>source * step) << 2)));
    }
    for (let kk = full; kk < k; kk++) {
      store<f32>(out + (<usize>kk << 2), load<f32>(row + ((<usize>kk * step) << 2)));
    }
  }
}

// The first 4 of 8 weights at element `index`: elements 0-3 for f32, the even ones for 16-bit.
@inline
function loadFirst8(base: usize, index: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(base + (index << 2));
  const v = v128.load(base + (index << 1));
  if (dtype == DTYPE_BF16) return i32x4.shl(v, 16);
  // Infinities and NaN are rare in weights, so they take the slower exact decoder.
  if (f16HasSpecial(v)) return f16BitsToF32(v128.and(v, i32x4.splat(0xffff)));
  return f16HighToF32(i32x4.shl(v, 16));
}

// The other 4: elements 4-7 for f32, the odd ones for 16-bit.
@inline
function loadSecond8(base: usize, index: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(base + (index << 2), 16);
  const v = v128.load(base + (index << 1));
  // Two shifts rather than a mask: the mask constant would take one more vector register.
  if (dtype == DTYPE_BF16) return i32x4.shl(i32x4.shr_u(v, 16), 16);
  if (f16HasSpecial(v)) return f16BitsToF32(i32x4.shr_u(v, 16));
  return f16HighToF32(v);
}

// Adds the products of 8 A values (alo, ahi) and the 8 weights at `index` to `sum`.
@inline
function dot8(alo: v128, ahi: v128, base: usize, index: usize, dtype: i32, sum: v128): v128 {
  return madd(ahi, loadSecond8(base, index, dtype), madd(alo, loadFirst8(base, index, dtype), sum));
}

// One weight in lane 0 of an otherwise zero vector.
@inline
function load1(base: usize, index: usize, dtype: i32): v128 {
  return f32x4.replace_lane(f32x4.splat(0), 0, loadAsF32(base, index, dtype));
}

@inline
function horizontalSum(v: v128): f32 {
  const lo = f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1);
  const hi = f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
  return lo + hi;
}

@inline
function storeC(c: usize, index: usize, value: f32, accumulate: i32): void {
  const dst = c + (index << 2);
  store<f32>(dst, accumulate ? load<f32>(dst) + value : value);
}

// Dot products with columns j0..j1-1 of B (column j at b + j * bCol elements, contiguous in k),
// one column at a time. When bCol == k the columns follow each other in memory, so B is read as
// one sequential stream. Eight columns side by side read eight short streams, which streamed
// from DRAM 2.6x slower for bf16 and 2.2x for f32 (N = 1536, K = 576, one thread on a 2-core
// AMD EPYC VM, weights rotated through 96 MB). Pairs of rows share each decoded weight vector.
@inline
function gemvDot(
  packedA: usize,
  b: usize,
  bCol: i32,
  dtype: i32,
  c: usize,
  cRow: i32,
  cCol: i32,
  m: i32,
  j0: i32,
  j1: i32,
  k: i32,
  accumulate: i32,
): void {
  const step = <usize>cCol;
  for (let j = j0; j < j1; j++) {
    const col = <usize>j * <usize>bCol;
    let r = 0;
    for (; r + 2 <= m; r += 2) {
      const ar = packedA + ((<usize>r * <usize>k) << 2);
      const out = <usize>r * <usize>cRow + <usize>j * step;
      dotPair(ar, k, b, col, dtype, c, out, out + <usize>cRow, accumulate);
    }
    for (; r < m; r++) {
      const ar = packedA + ((<usize>r * <usize>k) << 2);
      const out = <usize>r * <usize>cRow + <usize>j * step;
      storeC(c, out, dotOne(ar, k, b, col, dtype), accumulate);
    }
  }
}

// The dot product of a packed A row (at ar) with the B column at element `col`. Four
// accumulators take the groups of 8 values of k in turn (group g goes to g % 4) so that their
// FMA chains overlap. A last partial group goes to the fourth accumulator, and the sum is
// (s0 + s1) + (s2 + s3). dotPair takes the same steps.
@inline
function dotOne(ar: usize, k: i32, b: usize, col: usize, dtype: i32): f32 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let s2 = f32x4.splat(0);
  let s3 = f32x4.splat(0);
  let kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    const a = ar + (<usize>kk << 2);
    const i = col + <usize>kk;
    s0 = dot8(v128.load(a), v128.load(a, 16), b, i, dtype, s0);
    s1 = dot8(v128.load(a, 32), v128.load(a, 48), b, i + 8, dtype, s1);
    s2 = dot8(v128.load(a, 64), v128.load(a, 80), b, i + 16, dtype, s2);
    s3 = dot8(v128.load(a, 96), v128.load(a, 112), b, i + 24, dtype, s3);
  }
  if (kk + 8 <= k) {
    const a = ar + (<usize>kk << 2);
    s0 = dot8(v128.load(a), v128.load(a, 16), b, col + <usize>kk, dtype, s0);
    kk += 8;
  }
  if (kk + 8 <= k) {
    const a = ar + (<usize>kk << 2);
    s1 = dot8(v128.load(a), v128.load(a, 16), b, col + <usize>kk, dtype, s1);
    kk += 8;
  }
  if (kk + 8 <= k) {
    const a = ar + (<usize>kk << 2);
    s2 = dot8(v128.load(a), v128.load(a, 16), b, col + <usize>kk, dtype, s2);
    kk += 8;
  }
  for (; kk < k; kk++) {
    s3 = madd(v128.load32_zero(ar + (<usize>kk << 2)), load1(b, col + <usize>kk, dtype), s3);
  }
  return horizontalSum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
}

// Dot products of rows r and r + 1 of A (at ar, k apart) with the B column at element `col`,
// stored at C elements out and out1. Each row takes the steps of dotOne, so a row gives the
// same result in a pair or alone.
@inline
function dotPair(
  ar: usize,
  k: i32,
  b: usize,
  col: usize,
  dtype: i32,
  c: usize,
  out: usize,
  out1: usize,
  accumulate: i32,
): void {
  const ar1 = ar + (<usize>k << 2);
  let s00 = f32x4.splat(0);
  let s01 = f32x4.splat(0);
  let s02 = f32x4.splat(0);
  let s03 = f32x4.splat(0);
  let s10 = f32x4.splat(0);
  let s11 = f32x4.splat(0);
  let s12 = f32x4.splat(0);
  let s13 = f32x4.splat(0);

  let kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    const offset = <usize>kk << 2;
    const i = col + <usize>kk;
    let first = loadFirst8(b, i, dtype);
    let second = loadSecond8(b, i, dtype);
    s00 = madd(v128.load(ar + offset, 16), second, madd(v128.load(ar + offset), first, s00));
    s10 = madd(v128.load(ar1 + offset, 16), second, madd(v128.load(ar1 + offset), first, s10));
    first = loadFirst8(b, i + 8, dtype);
    second = loadSecond8(b, i + 8, dtype);
    s01 = madd(v128.load(ar + offset, 48), second, madd(v128.load(ar + offset, 32), first, s01));
    s11 = madd(v128.load(ar1 + offset, 48), second, madd(v128.load(ar1 + offset, 32), first, s11));
    first = loadFirst8(b, i + 16, dtype);
    second = loadSecond8(b, i + 16, dtype);
    s02 = madd(v128.load(ar + offset, 80), second, madd(v128.load(ar + offset, 64), first, s02));
    s12 = madd(v128.load(ar1 + offset, 80), second, madd(v128.load(ar1 + offset, 64), first, s12));
    first = loadFirst8(b, i + 24, dtype);
    second = loadSecond8(b, i + 24, dtype);
    s03 = madd(v128.load(ar + offset, 112), second, madd(v128.load(ar + offset, 96), first, s03));
    s13 = madd(v128.load(ar1 + offset, 112), second, madd(v128.load(ar1 + offset, 96), first, s13));
  }

  // The groups left over from the loop above, as in dotOne.
  if (kk + 8 <= k) {
    const offset = <usize>kk << 2;
    const first = loadFirst8(b, col + <usize>kk, dtype);
    const second = loadSecond8(b, col + <usize>kk, dtype);
    s00 = madd(v128.load(ar + offset, 16), second, madd(v128.load(ar + offset), first, s00));
    s10 = madd(v128.load(ar1 + offset, 16), second, madd(v128.load(ar1 + offset), first, s10));
    kk += 8;
  }
  if (kk + 8 <= k) {
    const offset = <usize>kk << 2;
    const first = loadFirst8(b, col + <usize>kk, dtype);
    const second = loadSecond8(b, col + <usize>kk, dtype);
    s01 = madd(v128.load(ar + offset, 16), second, madd(v128.load(ar + offset), first, s01));
    s11 = madd(v128.load(ar1 + offset, 16), second, madd(v128.load(ar1 + offset), first, s11));
    kk += 8;
  }
  if (kk + 8 <= k) {
    const offset = <usize>kk << 2;
    const first = loadFirst8(b, col + <usize>kk, dtype);
    const second = loadSecond8(b, col + <usize>kk, dtype);
    s02 = madd(v128.load(ar + offset, 16), second, madd(v128.load(ar + offset), first, s02));
    s12 = madd(v128.load(ar1 + offset, 16), second, madd(v128.load(ar1 + offset), first, s12));
    kk += 8;
  }
  for (; kk < k; kk++) {
    const w = load1(b, col + <usize>kk, dtype);
    s03 = madd(v128.load32_zero(ar + (<usize>kk << 2)), w, s03);
    s13 = madd(v128.load32_zero(ar1 + (<usize>kk << 2)), w, s13);
  }

  const sum0 = horizontalSum(f32x4.add(f32x4.add(s00, s01), f32x4.add(s02, s03)));
  const sum1 = horizontalSum(f32x4.add(f32x4.add(s10, s11), f32x4.add(s12, s13)));
  storeC(c, out, sum0, accumulate);
  storeC(c, out1, sum1, accumulate);
}

function gemvDotF32(
  packedA: usize,
  b: usize,
  bCol: i32,
  c: usize,
  cRow: i32,
  cCol: i32,
  m: i32,
  j0: i32,
  j1: i32,
  k: i32,
  accumulate: i32,
): void {
  gemvDot(packedA, b, bCol, DTYPE_F32, c, cRow, cCol, m, j0, j1, k, accumulate);
}

function gemvDotBf16(
  packedA: usize,
  b: usize,
  bCol: i32,
  c: usize,
  cRow: i32,
  cCol: i32,
  m: i32,
  j0: i32,
  j1: i32,
  k: i32,
  accumulate: i32,
): void {
  gemvDot(packedA, b, bCol, DTYPE_BF16, c, cRow, cCol, m, j0, j1, k, accumulate);
}

function gemvDotF16(
  packedA: usize,
  b: usize,
  bCol: i32,
  c: usize,
  cRow: i32,
  cCol: i32,
  m: i32,
  j0: i32,
  j1: i32,
  k: i32,
  accumulate: i32,
): void {
  gemvDot(packedA, b, bCol, DTYPE_F16, c, cRow, cCol, m, j0, j1, k, accumulate);
}

// Adds A(r, k) * B(k, jb + q) over all k to sums[r * block + q'] for q < width, where q'
// permutes each full group of 8 columns like loadFirst8/loadSecond8. Eight rows of B per pass
// (then four, then one), applied one after another to each sum, so the k order is the same as
// one row at a time. Eight rows streamed 10-20% faster than four for bf16 from DRAM.
@inline
function axpyBlock(
  packedA: usize,
  b: usize,
  bRow: i32,
  dtype: i32,
  m: i32,
  jb: i32,
  width: i32,
  k: i32,
  sums: usize,
  block: i32,
): void {
  const full = width & ~7;
  const rowStep = <usize>bRow;
  let kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    const row0 = <usize>kk * rowStep + <usize>jb;
    for (let r = 0; r < m; r++) {
      const ar = packedA + ((<usize>(r * k + kk)) << 2);
      const a0 = v128.load32_splat(ar);
      const a1 = v128.load32_splat(ar, 4);
      const a2 = v128.load32_splat(ar, 8);
      const a3 = v128.load32_splat(ar, 12);
      const a4 = v128.load32_splat(ar, 16);
      const a5 = v128.load32_splat(ar, 20);
      const a6 = v128.load32_splat(ar, 24);
      const a7 = v128.load32_splat(ar, 28);
      const sr = sums + (<usize>(r * block) << 2);
      for (let q = 0; q < full; q += 8) {
        const i = row0 + <usize>q;
        const s = sr + (<usize>q << 2);
        let lo = v128.load(s);
        let hi = v128.load(s, 16);
        lo = madd(a0, loadFirst8(b, i, dtype), lo);
        hi = madd(a0, loadSecond8(b, i, dtype), hi);
        lo = madd(a1, loadFirst8(b, i + rowStep, dtype), lo);
        hi = madd(a1, loadSecond8(b, i + rowStep, dtype), hi);
        lo = madd(a2, loadFirst8(b, i + 2 * rowStep, dtype), lo);
        hi = madd(a2, loadSecond8(b, i + 2 * rowStep, dtype), hi);
        lo = madd(a3, loadFirst8(b, i + 3 * rowStep, dtype), lo);
        hi = madd(a3, loadSecond8(b, i + 3 * rowStep, dtype), hi);
        lo = madd(a4, loadFirst8(b, i + 4 * rowStep, dtype), lo);
        hi = madd(a4, loadSecond8(b, i + 4 * rowStep, dtype), hi);
        lo = madd(a5, loadFirst8(b, i + 5 * rowStep, dtype), lo);
        hi = madd(a5, loadSecond8(b, i + 5 * rowStep, dtype), hi);
        lo = madd(a6, loadFirst8(b, i + 6 * rowStep, dtype), lo);
        hi = madd(a6, loadSecond8(b, i + 6 * rowStep, dtype), hi);
        lo = madd(a7, loadFirst8(b, i + 7 * rowStep, dtype), lo);
        hi = madd(a7, loadSecond8(b, i + 7 * rowStep, dtype), hi);
        v128.store(s, lo);
        v128.store(s, hi, 16);
      }
      for (let q = full; q < width; q++) {
        const i = row0 + <usize>q;
        const s = sr + (<usize>q << 2);
        let v = v128.load32_zero(s);
        v = madd(a0, load1(b, i, dtype), v);
        v = madd(a1, load1(b, i + rowStep, dtype), v);
        v = madd(a2, load1(b, i + 2 * rowStep, dtype), v);
        v = madd(a3, load1(b, i + 3 * rowStep, dtype), v);
        v = madd(a4, load1(b, i + 4 * rowStep, dtype), v);
        v = madd(a5, load1(b, i + 5 * rowStep, dtype), v);
        v = madd(a6, load1(b, i + 6 * rowStep, dtype), v);
        v = madd(a7, load1(b, i + 7 * rowStep, dtype), v);
        store<f32>(s, f32x4.extract_lane(v, 0));
      }
    }
  }
  for (; kk + 4 <= k; kk += 4) {
    const row0 = <usize>kk * rowStep + <usize>jb;
    for (let r = 0; r < m; r++) {
      const ar = packedA + ((<usize>(r * k + kk)) << 2);
      const a0 = v128.load32_splat(ar);
      const a1 = v128.load32_splat(ar, 4);
      const a2 = v128.load32_splat(ar, 8);
      const a3 = v128.load32_splat(ar, 12);
      const sr = sums + (<usize>(r * block) << 2);
      for (let q = 0; q < full; q += 8) {
        const i = row0 + <usize>q;
        const s = sr + (<usize>q << 2);
        let lo = v128.load(s);
        let hi = v128.load(s, 16);
        lo = madd(a0, loadFirst8(b, i, dtype), lo);
        hi = madd(a0, loadSecond8(b, i, dtype), hi);
        lo = madd(a1, loadFirst8(b, i + rowStep, dtype), lo);
        hi = madd(a1, loadSecond8(b, i + rowStep, dtype), hi);
        lo = madd(a2, loadFirst8(b, i + 2 * rowStep, dtype), lo);
        hi = madd(a2, loadSecond8(b, i + 2 * rowStep, dtype), hi);
        lo = madd(a3, loadFirst8(b, i + 3 * rowStep, dtype), lo);
        hi = madd(a3, loadSecond8(b, i + 3 * rowStep, dtype), hi);
        v128.store(s, lo);
        v128.store(s, hi, 16);
      }
      for (let q = full; q < width; q++) {
        const i = row0 + <usize>q;
        const s = sr + (<usize>q << 2);
        let v = v128.load32_zero(s);
        v = madd(a0, load1(b, i, dtype), v);
        v = madd(a1, load1(b, i + rowStep, dtype), v);
        v = madd(a2, load1(b, i + 2 * rowStep, dtype), v);
        v = madd(a3, load1(b, i + 3 * rowStep, dtype), v);
        store<f32>(s, f32x4.extract_lane(v, 0));
      }
    }
  }
  for (; kk < k; kk++) {
    const row = <usize>kk * rowStep + <usize>jb;
    for (let r = 0; r < m; r++) {
      const av = v128.load32_splat(packedA + ((<usize>(r * k + kk)) << 2));
      const sr = sums + (<usize>(r * block) << 2);
      for (let q = 0; q < full; q += 8) {
        const s = sr + (<usize>q << 2);
        v128.store(s, madd(av, loadFirst8(b, row + <usize>q, dtype), v128.load(s)));
        v128.store(s, madd(av, loadSecond8(b, row + <usize>q, dtype), v128.load(s, 16)), 16);
      }
      for (let q = full; q < width; q++) {
        const s = sr + (<usize>q << 2);
        const v = madd(av, load1(b, row + <usize>q, dtype), v128.load32_zero(s));
        store<f32>(s, f32x4.extract_lane(v, 0));
      }
    }
  }
}

function axpyBlockF32(
  packedA: usize,
  b: usize,
  bRow: i32,
  m: i32,
  jb: i32,
  width: i32,
  k: i32,
  sums: usize,
  block: i32,
): void {
  axpyBlock(packedA, b, bRow, DTYPE_F32, m, jb, width, k, sums, block);
}

function axpyBlockBf16(
  packedA: usize,
  b: usize,
  bRow: i32,
  m: i32,
  jb: i32,
  width: i32,
  k: i32,
  sums: usize,
  block: i32,
): void {
  axpyBlock(packedA, b, bRow, DTYPE_BF16, m, jb, width, k, sums, block);
}

function axpyBlockF16(
  packedA: usize,
  b: usize,
  bRow: i32,
  m: i32,
  jb: i32,
  width: i32,
  k: i32,
  sums: usize,
  block: i32,
): void {
  axpyBlock(packedA, b, bRow, DTYPE_F16, m, jb, width, k, sums, block);
}

// Writes the sums of one axpy block (rows `block` apart) to C[0:m, jb:jb+width], undoing the
// even/odd order of full groups of 8 when `evenOdd` is set.
function writeSums(
  sums: usize,
  evenOdd: bool,
  c: usize,
  cRow: i32,
  cCol: i32,
  m: i32,
  jb: i32,
  width: i32,
  accumulate: i32,
  block: i32,
): void {
  const full = width & ~7;
  const step = <usize>cCol;
  for (let r = 0; r < m; r++) {
    const sr = sums + (<usize>(r * block) << 2);
    const cr = <usize>r * <usize>cRow;
    for (let q = 0; q < full; q += 8) {
      let first = v128.load(sr + (<usize>q << 2));
      let second = v128.load(sr + (<usize>q << 2), 16);
      if (evenOdd) {
        const even = first;
        first = i32x4.shuffle(even, second, 0, 4, 1, 5);
        second = i32x4.shuffle(even, second, 2, 6, 3, 7);
      }
      const index = cr + <usize>(jb + q) * step;
      storeC4(c, index, step, first, accumulate);
      storeC4(c, index + 4 * step, step, second, accumulate);
    }
    for (let q = full; q < width; q++) {
      storeC(c, cr + <usize>(jb + q) * step, load<f32>(sr + (<usize>q << 2)), accumulate);
    }
  }
}

// Stores or adds the 4 lanes of `v` at C element `index`, lanes `step` elements apart.
@inline
function storeC4(c: usize, index: usize, step: usize, v: v128, accumulate: i32): void {
  if (step == 1) {
    const dst = c + (index << 2);
    v128.store(dst, accumulate ? f32x4.add(v128.load(dst), v) : v);
    return;
  }
  storeC(c, index, f32x4.extract_lane(v, 0), accumulate);
  storeC(c, index + step, f32x4.extract_lane(v, 1), accumulate);
  storeC(c, index + 2 * step, f32x4.extract_lane(v, 2), accumulate);
  storeC(c, index + 3 * step, f32x4.extract_lane(v, 3), accumulate);
}

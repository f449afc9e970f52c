// The GEMV path of gemm() for M <= GEMV_MAX_M rows (decoding). These products are bound by
// memory bandwidth: B is read once from memory and each value is used M times, so a bf16 or f16
// weight moves half the bytes of an f32 one. Operand layout as in gemm.ts.
//
// Two shapes of B are handled: "dot" when a column of B is contiguous (bRow == 1, a [N, K] weight
// such as nn.Linear), where each C value is a SIMD dot product; and "axpy" when a row of B is
// contiguous (bCol == 1, a [K, N] weight), where C rows accumulate scaled rows of B. Each C value
// is summed in an order fixed by k alone, so thread count and column grouping do not change it.
import {
  bf16x4ToF32,
  DTYPE_BF16,
  DTYPE_F16,
  DTYPE_F32,
  f16x4ToF32,
  loadAsF32,
  madd,
} from "./gemm-pack";

/** Largest M that takes the GEMV path. */
export const GEMV_MAX_M: i32 = 4;

// Columns per axpy strip: eight f32x4 accumulators.
const STRIP: i32 = 32;

/** Returns the scratch bytes the GEMV path needs for inner dimension k (the packed A rows). */
export function gemvScratchBytes(k: i32): usize {
  return (<usize>(GEMV_MAX_M * k) << 2) + 64;
}

/** Computes C[0:m, j0:j1] of one batch item; `work` is this thread's scratch. */
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
  // Contiguous copies of the A rows: row r at work + r * k * 4.
  for (let r = 0; r < m; r++) {
    const dst = work + ((<usize>r * <usize>k) << 2);
    const src = a + ((<usize>r * <usize>aRow) << 2);
    if (aCol == 1) {
      memory.copy(dst, src, <usize>k << 2);
    } else {
      for (let kk = 0; kk < k; kk++) {
        store<f32>(dst + (<usize>kk << 2), load<f32>(src + ((<usize>kk * <usize>aCol) << 2)));
      }
    }
  }
  if (bRow == 1) {
    if (bType == DTYPE_F32) gemvDotF32(work, b, bCol, c, cRow, cCol, m, j0, j1, k, accumulate);
    else if (bType == DTYPE_BF16) gemvDotBf16(work, b, bCol, c, cRow, cCol, m, j0, j1, k, accumulate);
    else gemvDotF16(work, b, bCol, c, cRow, cCol, m, j0, j1, k, accumulate);
  } else {
    if (bType == DTYPE_F32) gemvAxpyF32(work, b, bRow, c, cRow, cCol, m, j0, j1, k, accumulate);
    else if (bType == DTYPE_BF16) gemvAxpyBf16(work, b, bRow, c, cRow, cCol, m, j0, j1, k, accumulate);
    else gemvAxpyF16(work, b, bRow, c, cRow, cCol, m, j0, j1, k, accumulate);
  }
}

// Loads the 8 elements of B at element `index` from `base` as two f32x4 (low and high half).
@inline
function loadLow8(base: usize, index: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(base + (index << 2));
  const v = v128.load(base + (index << 1));
  return dtype == DTYPE_BF16 ? bf16x4ToF32(v, false) : f16x4ToF32(v, false);
}

@inline
function loadHigh8(base: usize, index: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(base + (index << 2), 16);
  const v = v128.load(base + (index << 1));
  return dtype == DTYPE_BF16 ? bf16x4ToF32(v, true) : f16x4ToF32(v, true);
}

// Loads 4 consecutive elements of B as f32x4.
@inline
function load4(base: usize, index: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(base + (index << 2));
  const v = v128.load64_zero(base + (index << 1));
  return dtype == DTYPE_BF16 ? bf16x4ToF32(v, false) : f16x4ToF32(v, false);
}

// Loads one element of B into lane 0 of an otherwise zero f32x4.
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

// Dot products for columns j..j+3 of B (column j at b + j * bCol elements, contiguous in k). A
// group past j1 repeats column j1 - 1 and does not store it, so every column runs the same code.
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
  for (let j = j0; j < j1; j += 4) {
    const col0 = <usize>j * <usize>bCol;
    const col1 = <usize>min(j + 1, j1 - 1) * <usize>bCol;
    const col2 = <usize>min(j + 2, j1 - 1) * <usize>bCol;
    const col3 = <usize>min(j + 3, j1 - 1) * <usize>bCol;
    for (let r = 0; r < m; r++) {
      const ar = packedA + ((<usize>r * <usize>k) << 2);
      let s0lo = f32x4.splat(0);
      let s0hi = f32x4.splat(0);
      let s1lo = f32x4.splat(0);
      let s1hi = f32x4.splat(0);
      let s2lo = f32x4.splat(0);
      let s2hi = f32x4.splat(0);
      let s3lo = f32x4.splat(0);
      let s3hi = f32x4.splat(0);
      let kk = 0;
      for (; kk + 8 <= k; kk += 8) {
        const alo = v128.load(ar + (<usize>kk << 2));
        const ahi = v128.load(ar + (<usize>kk << 2), 16);
        const i = <usize>kk;
        s0lo = madd(alo, loadLow8(b, col0 + i, dtype), s0lo);
        s0hi = madd(ahi, loadHigh8(b, col0 + i, dtype), s0hi);
        s1lo = madd(alo, loadLow8(b, col1 + i, dtype), s1lo);
        s1hi = madd(ahi, loadHigh8(b, col1 + i, dtype), s1hi);
        s2lo = madd(alo, loadLow8(b, col2 + i, dtype), s2lo);
        s2hi = madd(ahi, loadHigh8(b, col2 + i, dtype), s2hi);
        s3lo = madd(alo, loadLow8(b, col3 + i, dtype), s3lo);
        s3hi = madd(ahi, loadHigh8(b, col3 + i, dtype), s3hi);
      }
      for (; kk < k; kk++) {
        const av = v128.load32_zero(ar + (<usize>kk << 2));
        const i = <usize>kk;
        s0lo = madd(av, load1(b, col0 + i, dtype), s0lo);
        s1lo = madd(av, load1(b, col1 + i, dtype), s1lo);
        s2lo = madd(av, load1(b, col2 + i, dtype), s2lo);
        s3lo = madd(av, load1(b, col3 + i, dtype), s3lo);
      }
      const row = <usize>r * <usize>cRow;
      const step = <usize>cCol;
      storeC(c, row + <usize>j * step, horizontalSum(f32x4.add(s0lo, s0hi)), accumulate);
      if (j + 1 < j1) {
        storeC(c, row + <usize>(j + 1) * step, horizontalSum(f32x4.add(s1lo, s1hi)), accumulate);
      }
      if (j + 2 < j1) {
        storeC(c, row + <usize>(j + 2) * step, horizontalSum(f32x4.add(s2lo, s2hi)), accumulate);
      }
      if (j + 3 < j1) {
        storeC(c, row + <usize>(j + 3) * step, horizontalSum(f32x4.add(s3lo, s3hi)), accumulate);
      }
    }
  }
}

function gemvDotF32(pa: usize, b: usize, bCol: i32, c: usize, cRow: i32, cCol: i32, m: i32, j0: i32, j1: i32, k: i32, acc: i32): void {
  gemvDot(pa, b, bCol, DTYPE_F32, c, cRow, cCol, m, j0, j1, k, acc);
}

function gemvDotBf16(pa: usize, b: usize, bCol: i32, c: usize, cRow: i32, cCol: i32, m: i32, j0: i32, j1: i32, k: i32, acc: i32): void {
  gemvDot(pa, b, bCol, DTYPE_BF16, c, cRow, cCol, m, j0, j1, k, acc);
}

function gemvDotF16(pa: usize, b: usize, bCol: i32, c: usize, cRow: i32, cCol: i32, m: i32, j0: i32, j1: i32, k: i32, acc: i32): void {
  gemvDot(pa, b, bCol, DTYPE_F16, c, cRow, cCol, m, j0, j1, k, acc);
}

// Stores or adds f32x4 `v` at C element `index`, lanes `step` elements apart; only `lanes` of
// them when the strip ends early.
@inline
function storeC4(c: usize, index: usize, step: usize, v: v128, lanes: i32, accumulate: i32): void {
  if (lanes == 4 && step == 1) {
    const dst = c + (index << 2);
    v128.store(dst, accumulate ? f32x4.add(v128.load(dst), v) : v);
    return;
  }
  storeC(c, index, f32x4.extract_lane(v, 0), accumulate);
  if (lanes > 1) storeC(c, index + step, f32x4.extract_lane(v, 1), accumulate);
  if (lanes > 2) storeC(c, index + 2 * step, f32x4.extract_lane(v, 2), accumulate);
  if (lanes > 3) storeC(c, index + 3 * step, f32x4.extract_lane(v, 3), accumulate);
}

// C row r += sum over k of A(r, k) * B row k, for rows of B contiguous in j: strips of STRIP
// columns in registers, then strips of 4, then one last partial strip built lane by lane.
@inline
function gemvAxpy(
  packedA: usize,
  b: usize,
  bRow: i32,
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
  const rowStep = <usize>bRow;
  const step = <usize>cCol;
  for (let r = 0; r < m; r++) {
    const ar = packedA + ((<usize>r * <usize>k) << 2);
    const cr = <usize>r * <usize>cRow;
    let j = j0;
    for (; j + STRIP <= j1; j += STRIP) {
      let s0 = f32x4.splat(0);
      let s1 = f32x4.splat(0);
      let s2 = f32x4.splat(0);
      let s3 = f32x4.splat(0);
      let s4 = f32x4.splat(0);
      let s5 = f32x4.splat(0);
      let s6 = f32x4.splat(0);
      let s7 = f32x4.splat(0);
      let index = <usize>j;
      for (let kk = 0; kk < k; kk++) {
        const av = v128.load32_splat(ar + (<usize>kk << 2));
        s0 = madd(av, loadLow8(b, index, dtype), s0);
        s1 = madd(av, loadHigh8(b, index, dtype), s1);
        s2 = madd(av, loadLow8(b, index + 8, dtype), s2);
        s3 = madd(av, loadHigh8(b, index + 8, dtype), s3);
        s4 = madd(av, loadLow8(b, index + 16, dtype), s4);
        s5 = madd(av, loadHigh8(b, index + 16, dtype), s5);
        s6 = madd(av, loadLow8(b, index + 24, dtype), s6);
        s7 = madd(av, loadHigh8(b, index + 24, dtype), s7);
        index += rowStep;
      }
      const out = cr + <usize>j * step;
      storeC4(c, out, step, s0, 4, accumulate);
      storeC4(c, out + 4 * step, step, s1, 4, accumulate);
      storeC4(c, out + 8 * step, step, s2, 4, accumulate);
      storeC4(c, out + 12 * step, step, s3, 4, accumulate);
      storeC4(c, out + 16 * step, step, s4, 4, accumulate);
      storeC4(c, out + 20 * step, step, s5, 4, accumulate);
      storeC4(c, out + 24 * step, step, s6, 4, accumulate);
      storeC4(c, out + 28 * step, step, s7, 4, accumulate);
    }
    for (; j < j1; j += 4) {
      const lanes = min(4, j1 - j);
      let s = f32x4.splat(0);
      let index = <usize>j;
      for (let kk = 0; kk < k; kk++) {
        const av = v128.load32_splat(ar + (<usize>kk << 2));
        let bv: v128;
        if (lanes == 4) {
          bv = load4(b, index, dtype);
        } else {
          bv = f32x4.splat(0);
          bv = f32x4.replace_lane(bv, 0, loadAsF32(b, index, dtype));
          if (lanes > 1) bv = f32x4.replace_lane(bv, 1, loadAsF32(b, index + 1, dtype));
          if (lanes > 2) bv = f32x4.replace_lane(bv, 2, loadAsF32(b, index + 2, dtype));
        }
        s = madd(av, bv, s);
        index += rowStep;
      }
      storeC4(c, cr + <usize>j * step, step, s, lanes, accumulate);
    }
  }
}

function gemvAxpyF32(pa: usize, b: usize, bRow: i32, c: usize, cRow: i32, cCol: i32, m: i32, j0: i32, j1: i32, k: i32, acc: i32): void {
  gemvAxpy(pa, b, bRow, DTYPE_F32, c, cRow, cCol, m, j0, j1, k, acc);
}

function gemvAxpyBf16(pa: usize, b: usize, bRow: i32, c: usize, cRow: i32, cCol: i32, m: i32, j0: i32, j1: i32, k: i32, acc: i32): void {
  gemvAxpy(pa, b, bRow, DTYPE_BF16, c, cRow, cCol, m, j0, j1, k, acc);
}

function gemvAxpyF16(pa: usize, b: usize, bRow: i32, c: usize, cRow: i32, cCol: i32, m: i32, j0: i32, j1: i32, k: i32, acc: i32): void {
  gemvAxpy(pa, b, bRow, DTYPE_F16, c, cRow, cCol, m, j0, j1, k, acc);
}

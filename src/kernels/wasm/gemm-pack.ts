// Packing for the GEMM micro-kernel, and decoding of the frozen weight dtypes to f32.
//
// The micro-kernel reads A and B from packed panels so that its loads are contiguous and every
// dtype looks the same to it: B (f32, bf16 or f16) is decoded to f32 while it is packed.
// Strides are in elements: A(i, k) = a[i * aRow + k * aCol], B(k, j) = b[k * bRow + j * bCol].

/** Dtype codes of the B operand, shared with the TypeScript binding. */
export const DTYPE_F32: i32 = 0;
export const DTYPE_BF16: i32 = 1;
export const DTYPE_F16: i32 = 2;

/** Rows of C per micro-tile of the quantized GEMM, and the default A panel height. */
export const MR: i32 = 4;
/** Rows of C per micro-tile of the f32, bf16 and f16 GEMM (gemm.ts). */
export const MR6: i32 = 6;
/** Columns of C per micro-tile (two f32x4 vectors). */
export const NR: i32 = 8;

// Panels packed together from a row-major B (256 columns).
const ROW_PANELS: i32 = 32;

// 2^112: rescales an f16 exponent (bias 15) placed in an f32 exponent field (bias 127).
const F16_EXPONENT_SCALE: f32 = 5.192296858534828e33;

/** c + a*b, fused to one FMA when the module is built with relaxed SIMD. */
@inline
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Decodes one bf16 value (the high half of an f32). */
@inline
export function bf16ToF32(h: u32): f32 {
  return reinterpret<f32>(h << 16);
}

/** Decodes one IEEE binary16 value, subnormals, infinities and NaN included. */
@inline
export function f16ToF32(h: u32): f32 {
  const magnitude = (h & 0x7fff) << 13;
  const sign = (h & 0x8000) << 16;
  let bits: u32;
  if ((h & 0x7c00) == 0x7c00) {
    bits = magnitude | 0x7f800000;
  } else {
    // Exact: a power-of-two scale of a value that f32 represents.
    bits = reinterpret<u32>(reinterpret<f32>(magnitude) * F16_EXPONENT_SCALE);
  }
  return reinterpret<f32>(bits | sign);
}

/** Reads element `index` of an array of the given dtype code as f32. */
@inline
export function loadAsF32(base: usize, index: usize, dtype: i32): f32 {
  if (dtype == DTYPE_F32) return load<f32>(base + (index << 2));
  const h = <u32>load<u16>(base + (index << 1));
  if (dtype == DTYPE_BF16) return bf16ToF32(h);
  return f16ToF32(h);
}

/** Decodes the low (`high` false) or high four bf16 lanes of `v` to f32x4. */
@inline
export function bf16x4ToF32(v: v128, high: bool): v128 {
  const zero = i32x4.splat(0);
  if (high) return i16x8.shuffle(zero, v, 4, 12, 5, 13, 6, 14, 7, 15);
  return i16x8.shuffle(zero, v, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** Decodes the low (`high` false) or high four f16 lanes of `v` to f32x4 (see f16ToF32). */
@inline
export function f16x4ToF32(v: v128, high: bool): v128 {
  return f16BitsToF32(high ? i32x4.extend_high_i16x8_u(v) : i32x4.extend_low_i16x8_u(v));
}

/** Decodes four f16 values held in the low 16 bits of each i32 lane (high bits zero). */
@inline
export function f16BitsToF32(h: v128): v128 {
  const magnitude = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const scaled = f32x4.mul(magnitude, f32x4.splat(F16_EXPONENT_SCALE));
  const special = v128.or(magnitude, i32x4.splat(0x7f800000));
  const isSpecial = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  return v128.or(v128.bitselect(special, scaled, isSpecial), sign);
}

/**
 * Decodes the f16 values in the high 16 bits of each i32 lane (the low bits are ignored), for
 * vectors without infinities or NaN (see f16HasSpecial). The arithmetic shift places sign,
 * exponent and mantissa where f32 keeps them, and the mask clears the copies of the sign and the
 * low bits. Subnormals come out exact, as in f16ToF32.
 */
@inline
export function f16HighToF32(x: v128): v128 {
  const bits = v128.and(i32x4.shr_s(x, 3), i32x4.splat(0x8fffe000));
  return f32x4.mul(bits, f32x4.splat(F16_EXPONENT_SCALE));
}

/** Returns true when any of the eight f16 values in `v` is an infinity or a NaN. */
@inline
export function f16HasSpecial(v: v128): bool {
  const exponent = i16x8.splat(0x7c00);
  return v128.any_true(i16x8.eq(v128.and(v, exponent), exponent));
}

/**
 * Packs A[i0 : i0+mc, k0 : k0+kc] into panels of `mr` rows (MR or MR6): panel p contains rows
 * i0 + p*mr .. and stores element (r, k) at dst[p*kc*mr + k*mr + r]. Rows past mc are zero, so
 * the micro-kernel always runs a full tile.
 */
export function packA(
  a: usize,
  aRow: i32,
  aCol: i32,
  i0: i32,
  mc: i32,
  k0: i32,
  kc: i32,
  dst: usize,
  mr: i32 = MR,
): void {
  for (let p = 0; p < mc; p += mr) {
    const rows = min(mr, mc - p);
    const panel = dst + ((<usize>p * <usize>kc) << 2);
    if (rows == mr && aCol == 1) {
      const src = a + ((<usize>(i0 + p) * <usize>aRow + <usize>k0) << 2);
      if (mr == MR6) {
        packA6PanelRowMajor(src, aRow, kc, panel);
      } else {
        packAPanelRowMajor(src, aRow, kc, panel);
      }
      continue;
    }
    if (rows == mr && aRow == 1) {
      // A read transposed: the mr values of one k are contiguous.
      let src = a + ((<usize>(i0 + p) + <usize>k0 * <usize>aCol) << 2);
      const panelStep = <usize>mr << 2;
      for (let k = 0; k < kc; k++) {
        const out = panel + <usize>k * panelStep;
        v128.store(out, v128.load(src));
        if (mr == MR6) v128.store64_lane(out + 16, v128.load64_zero(src + 16), 0);
        src += <usize>aCol << 2;
      }
      continue;
    }
    if (rows < mr) memory.fill(panel, 0, <usize>(kc * mr) << 2);
    for (let r = 0; r < rows; r++) {
      let src = a + ((<usize>(i0 + p + r) * <usize>aRow + <usize>k0 * <usize>aCol) << 2);
      const step = <usize>aCol << 2;
      let out = panel + (<usize>r << 2);
      for (let k = 0; k < kc; k++) {
        store<f32>(out, load<f32>(src));
        src += step;
        out += <usize>mr << 2;
      }
    }
  }
}

// One full A panel from MR6 = 6 rows that are contiguous in k. Rows 0-3 of four k go through a
// 4 x 4 transpose, and rows 4-5 are interleaved in pairs into the last 8 bytes of each k.
function packA6PanelRowMajor(src: usize, aRow: i32, kc: i32, panel: usize): void {
  const rowBytes = <usize>aRow << 2;
  const step: usize = <usize>MR6 << 2;
  let k = 0;
  for (; k + 4 <= kc; k += 4) {
    const at = src + (<usize>k << 2);
    const out = panel + <usize>k * step;
    transpose4Store(
      v128.load(at),
      v128.load(at + rowBytes),
      v128.load(at + 2 * rowBytes),
      v128.load(at + 3 * rowBytes),
      out,
      step,
    );
    const r4 = v128.load(at + 4 * rowBytes);
    const r5 = v128.load(at + 5 * rowBytes);
    const lo = i32x4.shuffle(r4, r5, 0, 4, 1, 5);
    const hi = i32x4.shuffle(r4, r5, 2, 6, 3, 7);
    v128.store64_lane(out + 16, lo, 0);
    v128.store64_lane(out + step + 16, lo, 1);
    v128.store64_lane(out + 2 * step + 16, hi, 0);
    v128.store64_lane(out + 3 * step + 16, hi, 1);
  }
  for (; k < kc; k++) {
    const at = src + (<usize>k << 2);
    const out = panel + <usize>k * step;
    for (let r = 0; r < MR6; r++) {
      store<f32>(out + (<usize>r << 2), load<f32>(at + <usize>r * rowBytes));
    }
  }
}

// One full A panel from MR = 4 rows that are contiguous in k: 4 x 4 blocks, transposed.
function packAPanelRowMajor(src: usize, aRow: i32, kc: i32, panel: usize): void {
  const rowBytes = <usize>aRow << 2;
  let k = 0;
  for (; k + 4 <= kc; k += 4) {
    const at = src + (<usize>k << 2);
    transpose4Store(
      v128.load(at),
      v128.load(at + rowBytes),
      v128.load(at + 2 * rowBytes),
      v128.load(at + 3 * rowBytes),
      panel + (<usize>k << 4),
      16,
    );
  }
  for (; k < kc; k++) {
    const at = src + (<usize>k << 2);
    const out = panel + (<usize>k << 4);
    store<f32>(out, load<f32>(at));
    store<f32>(out, load<f32>(at + rowBytes), 4);
    store<f32>(out, load<f32>(at + 2 * rowBytes), 8);
    store<f32>(out, load<f32>(at + 3 * rowBytes), 12);
  }
}

/**
 * Transposes the 4 x 4 block whose rows are r0..r3 and stores its rows (the columns of the
 * input) at out, out + step, out + 2 * step and out + 3 * step.
 */
@inline
function transpose4Store(r0: v128, r1: v128, r2: v128, r3: v128, out: usize, step: usize): void {
  const lo01 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const hi01 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const lo23 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const hi23 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(out, i64x2.shuffle(lo01, lo23, 0, 2));
  v128.store(out + step, i64x2.shuffle(lo01, lo23, 1, 3));
  v128.store(out + 2 * step, i64x2.shuffle(hi01, hi23, 0, 2));
  v128.store(out + 3 * step, i64x2.shuffle(hi01, hi23, 1, 3));
}

/**
 * Packs B[k0 : k0+kc, j0 : j0+nc] into panels of NR columns, decoding to f32: panel q contains
 * columns j0 + q*NR .. and stores element (k, c) at dst[q*kc*NR + k*NR + c]. Columns past nc are
 * zero.
 */
export function packB(
  b: usize,
  bRow: i32,
  bCol: i32,
  dtype: i32,
  k0: i32,
  kc: i32,
  j0: i32,
  nc: i32,
  dst: usize,
): void {
  let q = 0;
  if (bCol == 1) {
    // Rows of B are contiguous: fill ROW_PANELS full panels at a time row by row, so B is read
    // in runs of that many panels and the writes go to few pages at once.
    const full = nc & ~(NR - 1);
    for (let group = 0; group < full; group += ROW_PANELS * NR) {
      const width = min(ROW_PANELS * NR, full - group);
      const panels = dst + ((<usize>group * <usize>kc) << 2);
      packBRowsContiguous(b, bRow, dtype, k0, kc, j0 + group, width, panels);
    }
    q = full;
  }
  for (; q < nc; q += NR) {
    const cols = min(NR, nc - q);
    const panel = dst + ((<usize>q * <usize>kc) << 2);
    if (cols == NR && bRow == 1) {
      // One call per constant dtype, so each inlined copy decodes without a branch.
      const j = j0 + q;
      if (dtype == DTYPE_F32) packBColumnsContiguous(b, bCol, DTYPE_F32, k0, kc, j, panel);
      else if (dtype == DTYPE_BF16) packBColumnsContiguous(b, bCol, DTYPE_BF16, k0, kc, j, panel);
      else packBColumnsContiguous(b, bCol, DTYPE_F16, k0, kc, j, panel);
      continue;
    }
    if (cols < NR) memory.fill(panel, 0, <usize>(kc * NR) << 2);
    for (let c = 0; c < cols; c++) {
      let index = <usize>k0 * <usize>bRow + <usize>(j0 + q + c) * <usize>bCol;
      let out = panel + (<usize>c << 2);
      for (let k = 0; k < kc; k++) {
        store<f32>(out, loadAsF32(b, index, dtype));
        index += <usize>bRow;
        out += <usize>NR << 2;
      }
    }
  }
}

// Full panels of columns j0 .. j0+width (a multiple of NR) when a row of B is contiguous ([K, N]
// row-major): for each k, the row's width elements go NR at a time to the panels.
function packBRowsContiguous(
  b: usize,
  bRow: i32,
  dtype: i32,
  k0: i32,
  kc: i32,
  j0: i32,
  width: i32,
  dst: usize,
): void {
  const panelBytes = (<usize>kc * <usize>NR) << 2;
  for (let k = 0; k < kc; k++) {
    let index = <usize>(k0 + k) * <usize>bRow + <usize>j0;
    let out = dst + (<usize>k << 5);
    if (dtype == DTYPE_F32) {
      for (let q = 0; q < width; q += NR) {
        const src = b + (index << 2);
        v128.store(out, v128.load(src));
        v128.store(out, v128.load(src, 16), 16);
        index += <usize>NR;
        out += panelBytes;
      }
    } else if (dtype == DTYPE_BF16) {
      for (let q = 0; q < width; q += NR) {
        const v = v128.load(b + (index << 1));
        v128.store(out, bf16x4ToF32(v, false));
        v128.store(out, bf16x4ToF32(v, true), 16);
        index += <usize>NR;
        out += panelBytes;
      }
    } else {
      for (let q = 0; q < width; q += NR) {
        const v = v128.load(b + (index << 1));
        v128.store(out, f16x4ToF32(v, false));
        v128.store(out, f16x4ToF32(v, true), 16);
        index += <usize>NR;
        out += panelBytes;
      }
    }
  }
}

// Loads 4 consecutive elements of an array of the given dtype code as f32x4.
@inline
export function load4AsF32(base: usize, index: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(base + (index << 2));
  const v = v128.load64_zero(base + (index << 1));
  return dtype == DTYPE_BF16 ? bf16x4ToF32(v, false) : f16x4ToF32(v, false);
}

// One full panel when a column of B is contiguous ([N, K] row-major, read transposed): 4 k at a
// time from each of the NR = 8 columns, transposed in two 4 x 4 blocks.
@inline
function packBColumnsContiguous(
  b: usize,
  bCol: i32,
  dtype: i32,
  k0: i32,
  kc: i32,
  j: i32,
  panel: usize,
): void {
  const colStep = <usize>bCol;
  const first = <usize>j * colStep + <usize>k0;
  let k = 0;
  for (; k + 4 <= kc; k += 4) {
    const index = first + <usize>k;
    const out = panel + (<usize>k << 5);
    transpose4Store(
      load4AsF32(b, index, dtype),
      load4AsF32(b, index + colStep, dtype),
      load4AsF32(b, index + 2 * colStep, dtype),
      load4AsF32(b, index + 3 * colStep, dtype),
      out,
      32,
    );
    transpose4Store(
      load4AsF32(b, index + 4 * colStep, dtype),
      load4AsF32(b, index + 5 * colStep, dtype),
      load4AsF32(b, index + 6 * colStep, dtype),
      load4AsF32(b, index + 7 * colStep, dtype),
      out + 16,
      32,
    );
  }
  for (; k < kc; k++) {
    const index = first + <usize>k;
    const out = panel + (<usize>k << 5);
    for (let c = 0; c < NR; c++) {
      store<f32>(out + (<usize>c << 2), loadAsF32(b, index + <usize>c * colStep, dtype));
    }
  }
}

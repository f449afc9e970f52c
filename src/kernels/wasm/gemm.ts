// Packed, register-blocked GEMM: C = A·B or C += A·B, batched, with any element strides.
//
// A(i, k) = a[i * aRow + k * aCol] is f32. B(k, j) = b[k * bRow + j * bCol] is f32, bf16 or f16
// (dtype code, see gemm-pack.ts) and is decoded to f32 while it is packed. C(i, j) =
// c[i * cRow + j * cCol] is f32. Strides are in elements, so transposed operands are only other
// strides. Batch item t adds t * aBatch, t * bBatch and t * cBatch elements (0 shares a matrix).
//
// Blocking: columns in blocks of NC, K in blocks of KC, rows in blocks of MC; inside,
// TILE_ROWS x NR micro-tiles accumulate a KC-long dot product in registers. Each thread computes
// its own block of C and the K blocks are always summed in the same order, so the result is
// bitwise the same for any thread count.
import { partEnd, partStart } from "./split";
import { DTYPE_F32, madd, MR, MR6, NR, packA, packB } from "./gemm-pack";
import { gemvRange, GEMV_MAX_M, gemvScratchBytes } from "./gemm-gemv";

// Block sizes: a packed B micro-panel (KC x NR f32, 16 KiB) stays in L1 while the MC x KC block
// of packed A (up to 256 KiB) streams from L2, which fits L1 and L2 caches of 32 KiB and 1 MiB.
// Each K block is one more pass that loads and stores C, so KC is as large as L1 allows. Column blocks
// only change which columns are packed together, never a sum, so they may depend on the rows.
const KC: i32 = 512;
// Rows per micro-tile. Without FMA (plain SIMD) the 6-row kernel spills registers and runs
// at 26 GFLOP/s per core where the 4-row one reaches 37, so those builds keep 4 rows.
const TILE_ROWS: i32 = ASC_FEATURE_RELAXED_SIMD ? MR6 : MR;
// MC is a multiple of TILE_ROWS, so only the last row block of a range can end in a partial tile.
const MC: i32 = ASC_FEATURE_RELAXED_SIMD ? 126 : 128;
const NC: i32 = 1024;
const SMALL_M: i32 = 32;
const SMALL_M_NC: i32 = 128;

const PACK_B_BYTES: usize = <usize>(KC * NC) << 2;
const PACK_A_BYTES: usize = <usize>(MC * KC) << 2;
const TILE_BYTES: usize = <usize>(TILE_ROWS * NR) << 2;

/** Returns the scratch bytes gemmRange packs its operands into, for one thread. */
export function gemmRangeWorkBytes(): usize {
  return PACK_B_BYTES + PACK_A_BYTES + TILE_BYTES;
}

/** Returns the scratch bytes one thread needs for a GEMM with inner dimension k. */
export function gemmScratchBytes(k: i32): usize {
  return PACK_B_BYTES + PACK_A_BYTES + TILE_BYTES + gemvScratchBytes(k);
}

/**
 * Computes C = A·B, or C += A·B, for `batch` items (operand layout in the file header).
 * `accumulate` 1 adds to C, 0 overwrites it. `scratch` contains nt slices of `scratchStride`
 * bytes (at least gemmScratchBytes(k) each), one per thread.
 */
export function gemm(
  a: usize,
  aRow: i32,
  aCol: i32,
  aBatch: i32,
  b: usize,
  bRow: i32,
  bCol: i32,
  bBatch: i32,
  bType: i32,
  c: usize,
  cRow: i32,
  cCol: i32,
  cBatch: i32,
  m: i32,
  n: i32,
  k: i32,
  batch: i32,
  accumulate: i32,
  scratch: usize,
  scratchStride: usize,
  tid: i32,
  nt: i32,
): void {
  const work = scratch + <usize>tid * scratchStride;
  const gemv = m <= GEMV_MAX_M && (bRow == 1 || bCol == 1);

  // Whole batch items per thread when there are enough of them to balance the load.
  let t0 = 0;
  let t1 = batch;
  let i0 = 0;
  let i1 = m;
  let j0 = 0;
  let j1 = n;
  if (batch >= nt && (batch % nt == 0 || batch >= 4 * nt)) {
    t0 = partStart(batch, 1, tid, nt);
    t1 = partEnd(batch, 1, tid, nt);
  } else if (gemv || n >= m) {
    j0 = partStart(n, NR, tid, nt);
    j1 = partEnd(n, NR, tid, nt);
  } else {
    i0 = partStart(m, TILE_ROWS, tid, nt);
    i1 = partEnd(m, TILE_ROWS, tid, nt);
  }
  if (i0 >= i1 || j0 >= j1) return;

  for (let t = t0; t < t1; t++) {
    const at = a + ((<usize>t * <usize>aBatch) << 2);
    const bt = b + <usize>t * <usize>bBatch * (bType == DTYPE_F32 ? 4 : 2);
    const ct = c + ((<usize>t * <usize>cBatch) << 2);
    const acc = accumulate;
    if (gemv) {
      gemvRange(at, aRow, aCol, bt, bRow, bCol, bType, ct, cRow, cCol, m, j0, j1, k, acc, work);
    } else {
      gemmRange(at, aRow, aCol, bt, bRow, bCol, bType, ct, cRow, cCol, i0, i1, j0, j1, k, acc,
        work);
    }
  }
}

/**
 * Computes C[i0:i1, j0:j1] of one batch item with the packed, blocked algorithm, on the calling
 * thread. `work` is gemmRangeWorkBytes() of scratch. Each element of C is the same sequence of
 * multiply-adds whatever range and position it is computed in.
 */
export function gemmRange(
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
  i0: i32,
  i1: i32,
  j0: i32,
  j1: i32,
  k: i32,
  accumulate: i32,
  work: usize,
): void {
  if (k == 0) {
    if (!accumulate) zeroBlock(c, cRow, cCol, i0, i1, j0, j1);
    return;
  }
  const packedB = work;
  const packedA = work + PACK_B_BYTES;
  const tile = packedA + PACK_A_BYTES;
  const contiguousRows = cCol == 1;

  // With few rows the packed B block is read only a few times, so keep it small enough to stay
  // in L2 between being packed and being read.
  const ncBlock = i1 - i0 <= SMALL_M ? SMALL_M_NC : NC;
  for (let jc = j0; jc < j1; jc += ncBlock) {
    const nc = min(ncBlock, j1 - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      packB(b, bRow, bCol, bType, pc, kc, jc, nc, packedB);
      const add = pc > 0 || accumulate != 0 ? 1 : 0;
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = min(MC, i1 - ic);
        packA(a, aRow, aCol, ic, mc, pc, kc, packedA, TILE_ROWS);
        for (let jr = 0; jr < nc; jr += NR) {
          const pb = packedB + ((<usize>jr * <usize>kc) << 2);
          const cols = min(NR, nc - jr);
          for (let ir = 0; ir < mc; ir += TILE_ROWS) {
            const pa = packedA + ((<usize>ir * <usize>kc) << 2);
            const rows = min(TILE_ROWS, mc - ir);
            const i = ic + ir;
            const j = jc + jr;
            if (TILE_ROWS == MR) {
              if (contiguousRows && rows == MR && cols == NR) {
                const ct = c + ((<usize>i * <usize>cRow + <usize>j) << 2);
                microKernel4x8(kc, pa, pb, ct, <usize>cRow << 2, add);
              } else {
                microKernel4x8(kc, pa, pb, tile, <usize>NR << 2, 0);
                scatterTile(tile, c, cRow, cCol, i, rows, j, cols, add);
              }
            } else if (contiguousRows && rows == MR6 && cols == NR && !add) {
              const ct = c + ((<usize>i * <usize>cRow + <usize>j) << 2);
              microKernel(kc, pa, pb, ct, <usize>cRow << 2);
            } else if (contiguousRows && rows == MR6 && cols == NR) {
              const ct = c + ((<usize>i * <usize>cRow + <usize>j) << 2);
              microKernel(kc, pa, pb, tile, <usize>NR << 2);
              addTile(tile, ct, <usize>cRow << 2);
            } else {
              microKernel(kc, pa, pb, tile, <usize>NR << 2);
              scatterTile(tile, c, cRow, cCol, i, rows, j, cols, add);
            }
          }
        }
      }
    }
  }
}

/**
 * Computes one MR6 x NR = 6 x 8 tile in 12 f32x4 accumulators over kc steps of packed A (6 values
 * per step) and packed B (8 values per step), then stores them to C. Adding to C happens in
 * addTile, because with that epilogue here V8 (Node 20) compiled the loop at half the speed.
 * Twelve independent FMA chains hide the FMA latency better than the eight of a 4 x 8 tile. With
 * the two B vectors and the A broadcast they still fit in the 16 SIMD registers of x64. On one
 * AMD EPYC (Zen 4) core under Node 20 the GEMMs of a GPT-2 step went from about 45 to 53 GFLOP/s.
 * The loop stays plain because unrolling it by hand made V8 hoist loads and spill registers.
 */
function microKernel(kc: i32, pa: usize, pb: usize, c: usize, rowBytes: usize): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0);
  let c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0);
  let c51 = f32x4.splat(0);

  for (let kk = 0; kk < kc; kk++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let av = v128.load32_splat(pa);
    c00 = madd(av, b0, c00);
    c01 = madd(av, b1, c01);
    av = v128.load32_splat(pa, 4);
    c10 = madd(av, b0, c10);
    c11 = madd(av, b1, c11);
    av = v128.load32_splat(pa, 8);
    c20 = madd(av, b0, c20);
    c21 = madd(av, b1, c21);
    av = v128.load32_splat(pa, 12);
    c30 = madd(av, b0, c30);
    c31 = madd(av, b1, c31);
    av = v128.load32_splat(pa, 16);
    c40 = madd(av, b0, c40);
    c41 = madd(av, b1, c41);
    av = v128.load32_splat(pa, 20);
    c50 = madd(av, b0, c50);
    c51 = madd(av, b1, c51);
    pa += 24;
    pb += 32;
  }

  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + rowBytes, c10);
  v128.store(c + rowBytes, c11, 16);
  v128.store(c + 2 * rowBytes, c20);
  v128.store(c + 2 * rowBytes, c21, 16);
  v128.store(c + 3 * rowBytes, c30);
  v128.store(c + 3 * rowBytes, c31, 16);
  v128.store(c + 4 * rowBytes, c40);
  v128.store(c + 4 * rowBytes, c41, 16);
  v128.store(c + 5 * rowBytes, c50);
  v128.store(c + 5 * rowBytes, c51, 16);
}

/**
 * Computes one MR x NR = 4 x 8 tile, for builds without relaxed SIMD, in 8 f32x4 accumulators over kc steps of packed A (4 values
 * per step) and packed B (8 values per step), then sets C = acc (add 0) or C += acc (add 1).
 * The loop stays plain because unrolling it by hand made V8 hoist loads and spill registers.
 */
function microKernel4x8(kc: i32, pa: usize, pb: usize, c: usize, rowBytes: usize, add: i32): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);

  for (let kk = 0; kk < kc; kk++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let av = v128.load32_splat(pa);
    c00 = madd(av, b0, c00);
    c01 = madd(av, b1, c01);
    av = v128.load32_splat(pa, 4);
    c10 = madd(av, b0, c10);
    c11 = madd(av, b1, c11);
    av = v128.load32_splat(pa, 8);
    c20 = madd(av, b0, c20);
    c21 = madd(av, b1, c21);
    av = v128.load32_splat(pa, 12);
    c30 = madd(av, b0, c30);
    c31 = madd(av, b1, c31);
    pa += 16;
    pb += 32;
  }

  if (add) {
    c00 = f32x4.add(v128.load(c), c00);
    c01 = f32x4.add(v128.load(c, 16), c01);
    c10 = f32x4.add(v128.load(c + rowBytes), c10);
    c11 = f32x4.add(v128.load(c + rowBytes, 16), c11);
    c20 = f32x4.add(v128.load(c + 2 * rowBytes), c20);
    c21 = f32x4.add(v128.load(c + 2 * rowBytes, 16), c21);
    c30 = f32x4.add(v128.load(c + 3 * rowBytes), c30);
    c31 = f32x4.add(v128.load(c + 3 * rowBytes, 16), c31);
  }

  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + rowBytes, c10);
  v128.store(c + rowBytes, c11, 16);
  v128.store(c + 2 * rowBytes, c20);
  v128.store(c + 2 * rowBytes, c21, 16);
  v128.store(c + 3 * rowBytes, c30);
  v128.store(c + 3 * rowBytes, c31, 16);
}

// Adds a full MR6 x NR tile to C, whose rows are rowBytes apart and contiguous.
function addTile(tile: usize, c: usize, rowBytes: usize): void {
  for (let r = 0; r < MR6; r++) {
    const src = tile + (<usize>(r * NR) << 2);
    const dst = c + <usize>r * rowBytes;
    v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)));
    v128.store(dst, f32x4.add(v128.load(dst, 16), v128.load(src, 16)), 16);
  }
}

// Writes the valid rows x cols corner of a full TILE_ROWS x NR tile into C (any strides).
function scatterTile(
  tile: usize,
  c: usize,
  cRow: i32,
  cCol: i32,
  i: i32,
  rows: i32,
  j: i32,
  cols: i32,
  add: i32,
): void {
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < cols; q++) {
      const dst = c + ((<usize>(i + r) * <usize>cRow + <usize>(j + q) * <usize>cCol) << 2);
      const v = load<f32>(tile + (<usize>(r * NR + q) << 2));
      store<f32>(dst, add ? load<f32>(dst) + v : v);
    }
  }
}

function zeroBlock(c: usize, cRow: i32, cCol: i32, i0: i32, i1: i32, j0: i32, j1: i32): void {
  for (let i = i0; i < i1; i++) {
    for (let j = j0; j < j1; j++) {
      store<f32>(c + ((<usize>i * <usize>cRow + <usize>j * <usize>cCol) << 2), 0);
    }
  }
}

// Warm-up problem size: small enough to take well under a millisecond per round.
const WARMUP_SIZE: i32 = 64;
const WARMUP_MATRIX_BYTES: usize = <usize>(WARMUP_SIZE * WARMUP_SIZE) << 2;

/** Returns the scratch bytes per thread that gemmWarmup needs. */
export function gemmWarmupBytes(): usize {
  return gemmScratchBytes(WARMUP_SIZE) + 3 * WARMUP_MATRIX_BYTES;
}

/**
 * Runs `rounds` small products of every kind (each B dtype, both B layouts, GEMM and GEMV) on
 * each thread. V8 first runs wasm with its baseline compiler, at about a fifth of the optimised
 * speed, and never switches a call in progress, so the engine calls this before real work.
 */
export function gemmWarmup(
  scratch: usize,
  scratchStride: usize,
  rounds: i32,
  tid: i32,
  nt: i32,
): void {
  const work = scratch + <usize>tid * scratchStride;
  const a = work + gemmScratchBytes(WARMUP_SIZE);
  const b = a + WARMUP_MATRIX_BYTES;
  const c = b + WARMUP_MATRIX_BYTES;
  memory.fill(a, 0, 2 * WARMUP_MATRIX_BYTES);
  const s = WARMUP_SIZE;
  for (let round = 0; round < rounds; round++) {
    for (let dtype = 0; dtype < 3; dtype++) {
      for (let transposed = 0; transposed < 2; transposed++) {
        const bRow = transposed ? 1 : s;
        const bCol = transposed ? s : 1;
        // Through the exported entry, as real calls go: M = s (packed GEMM), 1 and 3 (GEMV).
        gemm(a, s, 1, 0, b, bRow, bCol, 0, dtype, c, s, 1, 0, s, s, s, 1, round & 1, work, 0, 0, 1);
        gemm(a, s, 1, 0, b, bRow, bCol, 0, dtype, c, s, 1, 0, 1, s, s, 1, 0, work, 0, 0, 1);
        gemm(a, s, 1, 0, b, bRow, bCol, 0, dtype, c, s, 1, 0, 3, s - 3, s, 1, 1, work, 0, 0, 1);
      }
    }
  }
}

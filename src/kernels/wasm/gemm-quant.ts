// Products with a quantized frozen weight W [N, K] (formats in reference/quant.ts: int8 with a
// scale per row, or NF4 with double-quantized block absmax values, rows padded to Kp weights).
//
// Forward:  Y [M, N] (+)= X [M, K] · W^T   (a linear layer, x W^T)
// Backward: dX [M, K] (+)= dY [M, N] · W   (the input gradient through the frozen weight)
//
// Tiles of W are decoded to f32 on the fly. The packed path decodes a KC x NC block of the B
// operand into the panel layout of gemm-pack.ts and runs a 4 x 8 register-blocked micro-kernel
// over it, so each decoded weight serves every row of X. With M <= QUANT_GEMV_MAX_M (decoding) the
// forward product takes a GEMV path instead, which reads each quantized row once and decodes it
// 64 weights at a time with SIMD (NF4 looks up the code values with byte swizzles).
//
// Each thread computes its own columns of the output, and every output value sums over the inner
// dimension in an order fixed by that dimension alone, so results are bitwise the same for any
// thread count.
import { partEnd, partStart } from "./split";
import { madd, MR, NR, packA } from "./gemm-pack";

/** Format codes of the quantized weight. */
export const QUANT_INT8: i32 = 0;
export const QUANT_NF4: i32 = 1;

/** Largest M that takes the GEMV path in the forward product. */
export const QUANT_GEMV_MAX_M: i32 = 4;

const BLOCK: i32 = 64;
const GROUP_SHIFT: i32 = 8; // 256 blocks per absmax group
const KC: i32 = 256;
const NC: i32 = 512;
const MC: i32 = 64;

const PACK_B_BYTES: usize = <usize>(KC * NC) << 2;
const PACK_A_BYTES: usize = <usize>(MC * KC) << 2;
const TILE_BYTES: usize = <usize>(MR * NR) << 2;
const ROW_BYTES: usize = <usize>(max(KC, NC)) << 2;
// Decoded 64-weight block, the NF4 byte planes and the per-row accumulators of the GEMV path.
const GEMV_FIXED_BYTES: usize = 256 + 64 + (<usize>QUANT_GEMV_MAX_M << 4);

// The 16 NF4 code values (see reference/quant.ts).
const NF4_TABLE: usize = memory.data<f32>([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236328, 1.0,
]);

/** Returns the scratch bytes one thread needs for rows padded to kp weights. */
export function quantScratchBytes(kp: i32): usize {
  const gemv = (<usize>(QUANT_GEMV_MAX_M * kp) << 2) + GEMV_FIXED_BYTES;
  const packed = PACK_B_BYTES + PACK_A_BYTES + TILE_BYTES + ROW_BYTES + 64;
  return max(gemv, packed) + 64;
}

/**
 * Computes the forward (backward 0) or backward (backward 1) product with the quantized weight
 * (kind, codes, scales, absmaxSteps, absmaxMean, n, k, kp), as the file header describes.
 * `scales` is the f32 row scales (int8) or the i8 absmax codes (NF4). x is row-major [m, inner]
 * and out row-major [m, cols], where (inner, cols) is (k, n) forward and (n, k) backward.
 * `accumulate` 1 adds to out. `scratch` contains nt slices of `scratchStride` bytes, at least
 * quantScratchBytes(kp) each.
 */
export function quantGemm(
  kind: i32,
  codes: usize,
  scales: usize,
  absmaxSteps: usize,
  absmaxMean: f32,
  n: i32,
  k: i32,
  kp: i32,
  x: usize,
  m: i32,
  backward: i32,
  out: usize,
  accumulate: i32,
  scratch: usize,
  scratchStride: usize,
  tid: i32,
  nt: i32,
): void {
  const work = (scratch + <usize>tid * scratchStride + 63) & ~(<usize>63);
  const cols = backward ? k : n;
  const inner = backward ? n : k;
  const j0 = partStart(cols, NR, tid, nt);
  const j1 = partEnd(cols, NR, tid, nt);
  if (j0 >= j1 || m == 0) return;
  wKind = kind;
  wCodes = codes;
  wScales = scales;
  wSteps = absmaxSteps;
  wMean = absmaxMean;
  wKp = kp;
  if (!backward && m <= QUANT_GEMV_MAX_M) {
    gemvForward(x, m, k, j0, j1, out, n, accumulate, work);
    return;
  }
  packedProduct(backward, x, m, inner, cols, j0, j1, out, accumulate, work);
}

// The weight of the current call. Globals are per instance, and every pool thread has its own
// instance, so each thread reads only the call it runs. Globals replace an object because the stub
// runtime has no heap of its own.
let wKind: i32 = 0;
let wCodes: usize = 0;
let wScales: usize = 0;
let wSteps: usize = 0;
let wMean: f32 = 0;
let wKp: i32 = 0;

// Decodes W[row, c0 : c1] of the current weight into dst (contiguous f32).
function decodeRow(row: i32, c0: i32, c1: i32, dst: usize): void {
  if ((c0 & (BLOCK - 1)) == 0) {
    decodeRowBlocks(row, c0, c1, dst);
    return;
  }
  const base = <usize>row * <usize>wKp;
  if (wKind == QUANT_INT8) {
    const scale = load<f32>(wScales + (<usize>row << 2));
    for (let c = c0; c < c1; c++) {
      const q = <f32>load<i8>(wCodes + base + <usize>c);
      store<f32>(dst + (<usize>(c - c0) << 2), q * scale);
    }
    return;
  }
  const blocksPerRow = wKp / BLOCK;
  let c = c0;
  while (c < c1) {
    const blockEnd = min(c1, (c / BLOCK + 1) * BLOCK);
    const a = absmaxOf(row * blocksPerRow + c / BLOCK);
    for (; c < blockEnd; c++) {
      const byte = <u32>load<u8>(wCodes + ((base + <usize>c) >> 1));
      const index = c & 1 ? byte >> 4 : byte & 15;
      const v = load<f32>(NF4_TABLE + (<usize>index << 2));
      store<f32>(dst + (<usize>(c - c0) << 2), v * a);
    }
  }
}

// Set by packedProduct: this thread's NF4 byte planes (see fillPlanes).
let rowPlanes: usize = 0;

// Decodes W[row, c0 : c1] with SIMD, whole 64-weight blocks at a time, for c0 a multiple of 64.
// It writes up to c1 rounded up to 64 (the padding of the row decodes to zeros), and gives the
// same values as the scalar loop of decodeRow.
function decodeRowBlocks(row: i32, c0: i32, c1: i32, dst: usize): void {
  const base = <usize>row * <usize>wKp;
  const blocksPerRow = wKp / BLOCK;
  const int8 = wKind == QUANT_INT8;
  const rowScale = int8 ? load<f32>(wScales + (<usize>row << 2)) : <f32>0;
  for (let c = c0; c < c1; c += BLOCK) {
    const out = dst + (<usize>(c - c0) << 2);
    let scale: v128;
    if (int8) {
      decodeInt8Block(wCodes + base + <usize>c, out);
      scale = f32x4.splat(rowScale);
    } else {
      decodeNf4Block(wCodes + ((base + <usize>c) >> 1), rowPlanes, out);
      scale = f32x4.splat(absmaxOf(row * blocksPerRow + c / BLOCK));
    }
    for (let i: usize = 0; i < 256; i += 16) {
      v128.store(out + i, f32x4.mul(v128.load(out + i), scale));
    }
  }
}

// Returns â_b = q_b * step_g + mean for NF4 block `block` of the current weight.
@inline
function absmaxOf(block: i32): f32 {
  const q = <f32>load<i8>(wScales + <usize>block);
  const step = load<f32>(wSteps + (<usize>(block >> GROUP_SHIFT) << 2));
  return q * step + wMean;
}

// --- packed path -------------------------------------------------------------------------------

function packedProduct(
  backward: i32,
  x: usize,
  m: i32,
  inner: i32,
  cols: i32,
  j0: i32,
  j1: i32,
  out: usize,
  accumulate: i32,
  work: usize,
): void {
  const packedB = work;
  const packedA = packedB + PACK_B_BYTES;
  const tile = packedA + PACK_A_BYTES;
  const row = tile + TILE_BYTES;
  rowPlanes = row + ROW_BYTES;
  if (wKind == QUANT_NF4) fillPlanes(rowPlanes);
  const outRowBytes = <usize>cols << 2;
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = min(NC, j1 - jc);
    for (let pc = 0; pc < inner; pc += KC) {
      const kc = min(KC, inner - pc);
      if (backward) packBackward(pc, kc, jc, nc, packedB, row);
      else packForward(pc, kc, jc, nc, packedB, row);
      const add = pc > 0 || accumulate != 0 ? 1 : 0;
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(x, inner, 1, ic, mc, pc, kc, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const pb = packedB + ((<usize>jr * <usize>kc) << 2);
          const width = min(NR, nc - jr);
          for (let ir = 0; ir < mc; ir += MR) {
            const pa = packedA + ((<usize>ir * <usize>kc) << 2);
            const height = min(MR, mc - ir);
            const ct = out + ((<usize>(ic + ir) * <usize>cols + <usize>(jc + jr)) << 2);
            if (height == MR && width == NR) {
              microKernel(kc, pa, pb, ct, outRowBytes, add);
            } else {
              microKernel(kc, pa, pb, tile, <usize>NR << 2, 0);
              writeTile(tile, ct, outRowBytes, height, width, add);
            }
          }
        }
      }
    }
  }
}

// Packs B(p, j) = W[j, p] for p in [p0, p0 + kc), j in [j0, j0 + nc): panel q contains columns
// j0 + q*NR .. and element (p, lane) sits at panel + (p * NR + lane) * 4. Lanes past nc are zero.
function packForward(
  p0: i32,
  kc: i32,
  j0: i32,
  nc: i32,
  dst: usize,
  row: usize,
): void {
  zeroLastPanel(dst, kc, nc);
  for (let c = 0; c < nc; c++) {
    decodeRow(j0 + c, p0, p0 + kc, row);
    let at = dst + ((<usize>(c & ~(NR - 1)) * <usize>kc + <usize>(c & (NR - 1))) << 2);
    for (let p = 0; p < kc; p++) {
      store<f32>(at, load<f32>(row + (<usize>p << 2)));
      at += <usize>NR << 2;
    }
  }
}

// Packs B(p, j) = W[p, j]: each decoded row segment of W is one k-step of every panel.
function packBackward(
  p0: i32,
  kc: i32,
  j0: i32,
  nc: i32,
  dst: usize,
  row: usize,
): void {
  zeroLastPanel(dst, kc, nc);
  const full = nc & ~(NR - 1);
  for (let p = 0; p < kc; p++) {
    decodeRow(p0 + p, j0, j0 + nc, row);
    const step = <usize>p * <usize>NR;
    for (let c = 0; c < full; c += NR) {
      const at = dst + ((<usize>c * <usize>kc + step) << 2);
      v128.store(at, v128.load(row + (<usize>c << 2)));
      v128.store(at, v128.load(row + (<usize>c << 2), 16), 16);
    }
    for (let c = full; c < nc; c++) {
      const at = dst + ((<usize>full * <usize>kc + step + <usize>(c - full)) << 2);
      store<f32>(at, load<f32>(row + (<usize>c << 2)));
    }
  }
}

function zeroLastPanel(dst: usize, kc: i32, nc: i32): void {
  const full = nc & ~(NR - 1);
  if (full == nc) return;
  memory.fill(dst + ((<usize>full * <usize>kc) << 2), 0, <usize>(kc * NR) << 2);
}

// One MR x NR = 4 x 8 tile over kc steps of packed A and B: C = acc (add 0) or C += acc (add 1).
function microKernel(kc: i32, pa: usize, pb: usize, c: usize, rowBytes: usize, add: i32): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);

  for (let p = 0; p < kc; p++) {
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

// Writes the valid height x width corner of a full tile into a row-major C.
function writeTile(
  tile: usize,
  c: usize,
  rowBytes: usize,
  height: i32,
  width: i32,
  add: i32,
): void {
  for (let r = 0; r < height; r++) {
    for (let q = 0; q < width; q++) {
      const dst = c + <usize>r * rowBytes + (<usize>q << 2);
      const v = load<f32>(tile + (<usize>(r * NR + q) << 2));
      store<f32>(dst, add ? load<f32>(dst) + v : v);
    }
  }
}

// --- GEMV path ---------------------------------------------------------------------------------

// Forward product for m <= QUANT_GEMV_MAX_M rows and output columns [j0, j1). X is copied to
// rows of kp values padded with zeros, then each W row is decoded one 64-weight block at a time
// into `decoded` and dotted with every X row. int8 rows apply their scale once at the end; NF4
// blocks scale their partial dot product by the block's absmax.
function gemvForward(
  x: usize,
  m: i32,
  k: i32,
  j0: i32,
  j1: i32,
  out: usize,
  n: i32,
  accumulate: i32,
  work: usize,
): void {
  const kp = wKp;
  const rowsBytes = <usize>kp << 2;
  const xs = work;
  const decoded = xs + <usize>m * rowsBytes;
  const planes = decoded + 256;
  const sums = planes + 64;
  for (let r = 0; r < m; r++) {
    const dst = xs + <usize>r * rowsBytes;
    memory.copy(dst, x + ((<usize>r * <usize>k) << 2), <usize>k << 2);
    memory.fill(dst + (<usize>k << 2), 0, <usize>(kp - k) << 2);
  }
  if (wKind == QUANT_NF4) fillPlanes(planes);
  if (m == 1 && wKind == QUANT_NF4) permuteForNf4(xs, kp, decoded);
  if (m == 1) {
    if (wKind == QUANT_INT8) gemvInt8OneRow(xs, j0, j1, out, accumulate);
    else gemvNf4OneRow(xs, planes, j0, j1, out, accumulate);
    return;
  }
  const blocksPerRow = kp / BLOCK;
  for (let j = j0; j < j1; j++) {
    memory.fill(sums, 0, <usize>m << 4);
    const rowCodes = wCodes + (wKind == QUANT_INT8 ? <usize>j * <usize>kp : (<usize>j * <usize>kp) >> 1);
    for (let b = 0; b < blocksPerRow; b++) {
      let scale: f32 = 1;
      if (wKind == QUANT_INT8) {
        decodeInt8Block(rowCodes + (<usize>b << 6), decoded);
      } else {
        decodeNf4Block(rowCodes + (<usize>b << 5), planes, decoded);
        scale = absmaxOf(j * blocksPerRow + b);
      }
      const xOffset = <usize>b << 8;
      for (let r = 0; r < m; r++) {
        const partial = dot64(xs + <usize>r * rowsBytes + xOffset, decoded);
        const at = sums + (<usize>r << 4);
        v128.store(at, madd(partial, f32x4.splat(scale), v128.load(at)));
      }
    }
    const rowScale: f32 = wKind == QUANT_INT8 ? load<f32>(wScales + (<usize>j << 2)) : 1;
    for (let r = 0; r < m; r++) {
      const s = v128.load(sums + (<usize>r << 4));
      const total =
        (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) +
        (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
      const dst = out + ((<usize>r * <usize>n + <usize>j) << 2);
      const value = total * rowScale;
      store<f32>(dst, accumulate ? load<f32>(dst) + value : value);
    }
  }
}

// One X row (decoding a token): each decoded vector feeds its multiply-add at once, without the
// block buffer. int8 weights go to f32 by sign extension and conversion, 16 per load.
function gemvInt8OneRow(xs: usize, j0: i32, j1: i32, out: usize, accumulate: i32): void {
  const kp = <usize>wKp;
  for (let j = j0; j < j1; j++) {
    const codes = wCodes + <usize>j * kp;
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    for (let i: usize = 0; i < kp; i += 16) {
      const v = v128.load(codes + i);
      const lo = i16x8.extend_low_i8x16_s(v);
      const hi = i16x8.extend_high_i8x16_s(v);
      const x = xs + (i << 2);
      a0 = madd(v128.load(x), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), a0);
      a1 = madd(v128.load(x, 16), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), a1);
      a2 = madd(v128.load(x, 32), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), a2);
      a3 = madd(v128.load(x, 48), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), a3);
    }
    const value = sumLanes(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))) *
      load<f32>(wScales + (<usize>j << 2));
    const dst = out + (<usize>j << 2);
    store<f32>(dst, accumulate ? load<f32>(dst) + value : value);
  }
}

// One X row with NF4 weights. The row `xs` is stored permuted to match the nibbles: in each group
// of 32 elements, the 16 even ones come first, then the 16 odd ones (see permuteForNf4), so the
// low and high nibbles of 16 bytes multiply 16 contiguous x values each without interleaving.
function gemvNf4OneRow(
  xs: usize,
  planes: usize,
  j0: i32,
  j1: i32,
  out: usize,
  accumulate: i32,
): void {
  const kp = wKp;
  const blocksPerRow = kp / BLOCK;
  const p0 = v128.load(planes);
  const p1 = v128.load(planes, 16);
  const p2 = v128.load(planes, 32);
  const p3 = v128.load(planes, 48);
  const mask = i8x16.splat(15);
  for (let j = j0; j < j1; j++) {
    const codes = wCodes + ((<usize>j * <usize>kp) >> 1);
    let acc = f32x4.splat(0);
    for (let b = 0; b < blocksPerRow; b++) {
      let block = f32x4.splat(0);
      for (let h: usize = 0; h < 2; h++) {
        const v = v128.load(codes + (<usize>b << 5) + (h << 4));
        const x = xs + ((<usize>b << 8) + (h << 7));
        block = lookupDot(v128.and(v, mask), p0, p1, p2, p3, x, block);
        block = lookupDot(v128.and(i16x8.shr_u(v, 4), mask), p0, p1, p2, p3, x + 64, block);
      }
      acc = madd(block, f32x4.splat(absmaxOf(j * blocksPerRow + b)), acc);
    }
    const value = sumLanes(acc);
    const dst = out + (<usize>j << 2);
    store<f32>(dst, accumulate ? load<f32>(dst) + value : value);
  }
}

// Adds the products of 16 code values (indices in `index`) with x[0:16] to `acc`.
@inline
function lookupDot(
  index: v128,
  p0: v128,
  p1: v128,
  p2: v128,
  p3: v128,
  x: usize,
  acc: v128,
): v128 {
  const b0 = i8x16.swizzle(p0, index);
  const b1 = i8x16.swizzle(p1, index);
  const b2 = i8x16.swizzle(p2, index);
  const b3 = i8x16.swizzle(p3, index);
  const low = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const high = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const low2 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const high2 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  let a = madd(v128.load(x), i16x8.shuffle(low, high, 0, 8, 1, 9, 2, 10, 3, 11), acc);
  let c = f32x4.mul(v128.load(x, 16), i16x8.shuffle(low, high, 4, 12, 5, 13, 6, 14, 7, 15));
  a = madd(v128.load(x, 32), i16x8.shuffle(low2, high2, 0, 8, 1, 9, 2, 10, 3, 11), a);
  c = madd(v128.load(x, 48), i16x8.shuffle(low2, high2, 4, 12, 5, 13, 6, 14, 7, 15), c);
  return f32x4.add(a, c);
}

// Reorders a row of kp values in place for gemvNf4OneRow: in each group of 32, even then odd.
function permuteForNf4(row: usize, kp: i32, scratch: usize): void {
  for (let g = 0; g < kp; g += 32) {
    const group = row + (<usize>g << 2);
    memory.copy(scratch, group, 128);
    for (let i = 0; i < 16; i++) {
      store<f32>(group + (<usize>i << 2), load<f32>(scratch + (<usize>(2 * i) << 2)));
      store<f32>(group + (<usize>(16 + i) << 2), load<f32>(scratch + (<usize>(2 * i + 1) << 2)));
    }
  }
}

@inline
function sumLanes(s: v128): f32 {
  return (
    (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) +
    (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3))
  );
}

// Returns the four lane sums of x[0:64] * d[0:64].
@inline
function dot64(x: usize, d: usize): v128 {
  let a0 = f32x4.mul(v128.load(x), v128.load(d));
  let a1 = f32x4.mul(v128.load(x, 16), v128.load(d, 16));
  for (let i: usize = 32; i < 256; i += 32) {
    a0 = madd(v128.load(x + i), v128.load(d + i), a0);
    a1 = madd(v128.load(x + i, 16), v128.load(d + i, 16), a1);
  }
  return f32x4.add(a0, a1);
}

// Decodes 64 int8 codes to f32 (unscaled).
@inline
function decodeInt8Block(src: usize, dst: usize): void {
  for (let i: usize = 0; i < 64; i += 16) {
    const v = v128.load(src + i);
    const lo = i16x8.extend_low_i8x16_s(v);
    const hi = i16x8.extend_high_i8x16_s(v);
    const out = dst + (i << 2);
    v128.store(out, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)));
    v128.store(out, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), 16);
    v128.store(out, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), 32);
    v128.store(out, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), 48);
  }
}

// Stores byte p of each of the 16 NF4 code values' f32 bits at planes + 16 p, for swizzling.
function fillPlanes(planes: usize): void {
  for (let i: usize = 0; i < 16; i++) {
    const bits = load<u32>(NF4_TABLE + (i << 2));
    for (let p: usize = 0; p < 4; p++) store<u8>(planes + p * 16 + i, <u8>(bits >> (<u32>p * 8)));
  }
}

// Decodes 64 NF4 indices (32 bytes) to their code values (unscaled).
@inline
function decodeNf4Block(src: usize, planes: usize, dst: usize): void {
  const p0 = v128.load(planes);
  const p1 = v128.load(planes, 16);
  const p2 = v128.load(planes, 32);
  const p3 = v128.load(planes, 48);
  const mask = i8x16.splat(15);
  for (let h: usize = 0; h < 2; h++) {
    const v = v128.load(src + (h << 4));
    const even = v128.and(v, mask);
    const odd = v128.and(i16x8.shr_u(v, 4), mask);
    // Indices of elements 0..15 and 16..31 of this half block, in order.
    const first = i8x16.shuffle(even, odd, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const second = i8x16.shuffle(even, odd, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const out = dst + (h << 7);
    lookup16(first, p0, p1, p2, p3, out);
    lookup16(second, p0, p1, p2, p3, out + 64);
  }
}

// Looks up 16 indices in the code table and stores their 16 f32 values: each byte of the f32 bits
// comes from one swizzle, then the bytes are interleaved into 16-bit and 32-bit lanes.
@inline
function lookup16(index: v128, p0: v128, p1: v128, p2: v128, p3: v128, out: usize): void {
  const b0 = i8x16.swizzle(p0, index);
  const b1 = i8x16.swizzle(p1, index);
  const b2 = i8x16.swizzle(p2, index);
  const b3 = i8x16.swizzle(p3, index);
  const low = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const high = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const low2 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const high2 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128.store(out, i16x8.shuffle(low, high, 0, 8, 1, 9, 2, 10, 3, 11));
  v128.store(out, i16x8.shuffle(low, high, 4, 12, 5, 13, 6, 14, 7, 15), 16);
  v128.store(out, i16x8.shuffle(low2, high2, 0, 8, 1, 9, 2, 10, 3, 11), 32);
  v128.store(out, i16x8.shuffle(low2, high2, 4, 12, 5, 13, 6, 14, 7, 15), 48);
}

// Attention as blocked matrix products, for inputs with many query rows (training, prefill).
// Shapes, masking rules and the meaning of lse are those of attention.ts. For a block of up to
// QUERY_BLOCK query rows of one head, the score block Q·Kᵀ, the output P·V and, in backward,
// dP = dO·Vᵀ, dQ = dS·K, dK += dSᵀ·Q and dV += Pᵀ·dO are products that gemmRange computes with
// the GEMM micro-kernel. The row-by-row kernels of attention.ts and attention-backward.ts do
// the same work with dot products at about a third of that rate.
//
// Under the causal mask a block reads only the keys its last row can see, and entries beyond a
// row's own last key are set to 0 after the product. Every score is the same chain of
// multiply-adds in forward and backward (gemmRange's guarantee), so backward recomputes the
// forward scores bitwise. Forward deals (head, block) items to the threads. Backward gives each
// thread whole KV heads, because dK and dV sum over every query row of the head's group. Either
// way no result depends on the thread count.
import {
  B,
  D,
  group,
  H,
  Hkv,
  keyVisible,
  keyVisibleMask4,
  S,
  scale,
  score1,
  scores4,
  setGeometry,
  slopeOf,
  T,
  visibleEnd,
} from "./attention-common";
import { gemmRange, gemmRangeWorkBytes } from "./gemm";
import { DTYPE_F32 } from "./gemm-pack";
import { dotF32, expF32, expF32x4, expShiftSumF32, rowMaxF32 } from "./simdmath";

/**
 * Query rows per block. Smaller blocks waste less of the causal diagonal but pack K and V more
 * often. On GPT-2's heads of 256 rows, 24, 36, 48, 60 and 96 ran within a few percent of each
 * other, and 48 (eight 6-row tiles) was among the fastest in forward and backward.
 */
const QUERY_BLOCK: i32 = 48;

/**
 * Returns the scratch bytes one thread needs: gemmRange's packing space and one (forward) or two
 * (backward) QUERY_BLOCK x keys f32 blocks.
 */
export function attentionTiledScratchBytes(keys: i32, backward: i32): usize {
  const blocks: usize = backward != 0 ? 2 : 1;
  return gemmRangeWorkBytes() + ((blocks * <usize>QUERY_BLOCK * <usize>keys) << 2);
}

/** Returns the number of keys that query rows [t0, t0 + rows) read: up to the last row's. */
@inline
function blockEnd(t0: i32, rows: i32): i32 {
  return visibleEnd(t0 + rows - 1);
}

/**
 * Attention forward, as attentionForwardF32 computes it, with the same arguments except
 * `scratch`: nt slices of `scratchStride` bytes, each attentionTiledScratchBytes(keys, 0).
 */
export function attentionForwardTiledF32(
  q: usize,
  k: usize,
  v: usize,
  out: usize,
  lse: usize,
  keyMask: usize,
  slopes: usize,
  scratch: usize,
  scratchStride: usize,
  batch: i32,
  heads: i32,
  kvHeads: i32,
  queries: i32,
  keys: i32,
  keyStride: i32,
  headSize: i32,
  scale: f32,
  causal: i32,
  tid: i32,
  nt: i32,
): void {
  setGeometry(batch, heads, kvHeads, queries, keys, headSize, scale, causal, keyMask, slopes);
  const work = scratch + <usize>tid * scratchStride;
  const probs = work + gemmRangeWorkBytes();
  const rowBytes = (<usize>D) << 2;
  const blocks = (T + QUERY_BLOCK - 1) / QUERY_BLOCK;
  const items = B * H * blocks;
  for (let item = tid; item < items; item += nt) {
    const bh = item / blocks;
    // Later blocks read more keys under the causal mask. Odd heads take their blocks in reverse
    // order, so that dealing items round-robin gives each thread a mix of short and long ones.
    const block = bh & 1 ? blocks - 1 - item % blocks : item % blocks;
    const t0 = block * QUERY_BLOCK;
    const h = bh % H;
    const b = bh / H;
    const rows = min(QUERY_BLOCK, T - t0);
    const end = blockEnd(t0, rows);
    const r0 = bh * T + t0;
    const kv = <usize>((b * Hkv + h / group) * keyStride) * rowBytes;
    const slope = slopeOf(h);

    // probs[i, s] = q[t0 + i] · k[s], then softmax row by row.
    gemmRange(q + <usize>r0 * rowBytes, D, 1, k + kv, 1, D, DTYPE_F32, probs, S, 1, 0, rows,
      0, end, D, 0, work);
    for (let i = 0; i < rows; i++) {
      const row = probs + ((<usize>(i * S)) << 2);
      softmaxRow(row, b, slope, visibleEnd(t0 + i), end, lse + ((<usize>(r0 + i)) << 2));
    }
    // out[t0 + i] = probs[i] · v.
    gemmRange(probs, S, 1, v + kv, D, 1, DTYPE_F32, out + <usize>r0 * rowBytes, D, 1, 0, rows,
      0, D, end, 0, work);
  }
}

/**
 * Turns the dot products [0, rowEnd) of one row into probabilities in place, zeroes [rowEnd, end)
 * and stores the row's log-sum-exp. A row with no visible key gets zeros and lse +inf.
 */
function softmaxRow(row: usize, b: i32, slope: f32, rowEnd: i32, end: i32, lseAt: usize): void {
  const hidden = f32x4.splat(<f32>-Infinity);
  let s = 0;
  for (; s + 4 <= rowEnd; s += 4) {
    const at = row + ((<usize>s) << 2);
    v128.store(at, v128.bitselect(scores4(v128.load(at), slope, s), hidden, keyVisibleMask4(b, s)));
  }
  for (; s < rowEnd; s++) {
    const at = row + ((<usize>s) << 2);
    store<f32>(at, keyVisible(b, s) ? score1(load<f32>(at), slope, s) : <f32>-Infinity);
  }
  const m = rowMaxF32(row, rowEnd);
  if (m == -Infinity) {
    store<f32>(lseAt, Infinity);
    memory.fill(row, 0, (<usize>end) << 2);
    return;
  }
  const sum = expShiftSumF32(row, row, rowEnd, m);
  store<f32>(lseAt, m + Mathf.log(sum));
  const inv = f32x4.splat(1 / sum);
  s = 0;
  for (; s + 4 <= rowEnd; s += 4) {
    const at = row + ((<usize>s) << 2);
    v128.store(at, f32x4.mul(v128.load(at), inv));
  }
  for (; s < rowEnd; s++) {
    const at = row + ((<usize>s) << 2);
    store<f32>(at, load<f32>(at) * f32x4.extract_lane(inv, 0));
  }
  memory.fill(row + ((<usize>rowEnd) << 2), 0, (<usize>(end - rowEnd)) << 2);
}

/**
 * Attention backward, as attentionBackwardF32 computes it: dq, delta and, when needKeyValue is
 * 1, dk and dv (else they are left untouched). `scratch`: nt slices of `scratchStride` bytes,
 * each attentionTiledScratchBytes(keys, 1).
 */
export function attentionBackwardTiledF32(
  q: usize,
  k: usize,
  v: usize,
  out: usize,
  dout: usize,
  lse: usize,
  delta: usize,
  dq: usize,
  dk: usize,
  dv: usize,
  keyMask: usize,
  slopes: usize,
  scratch: usize,
  scratchStride: usize,
  batch: i32,
  heads: i32,
  kvHeads: i32,
  queries: i32,
  keys: i32,
  headSize: i32,
  scale: f32,
  causal: i32,
  needKeyValue: i32,
  tid: i32,
  nt: i32,
): void {
  setGeometry(batch, heads, kvHeads, queries, keys, headSize, scale, causal, keyMask, slopes);
  const work = scratch + <usize>tid * scratchStride;
  const probs = work + gemmRangeWorkBytes();
  const grads = probs + ((<usize>QUERY_BLOCK * <usize>S) << 2);
  const rowBytes = (<usize>D) << 2;
  const units = B * Hkv;
  for (let unit = tid; unit < units; unit += nt) {
    const b = unit / Hkv;
    const g = unit % Hkv;
    const kv = <usize>(unit * S) * rowBytes;
    if (needKeyValue != 0) {
      memory.fill(dk + kv, 0, <usize>S * rowBytes);
      memory.fill(dv + kv, 0, <usize>S * rowBytes);
    }
    for (let h = g * group; h < (g + 1) * group; h++) {
      const slope = slopeOf(h);
      for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
        const rows = min(QUERY_BLOCK, T - t0);
        const end = blockEnd(t0, rows);
        const r0 = (b * H + h) * T + t0;
        const at = <usize>r0 * rowBytes;
        for (let i = 0; i < rows; i++) {
          const rowAt = at + <usize>i * rowBytes;
          store<f32>(delta + ((<usize>(r0 + i)) << 2), dotF32(dout + rowAt, out + rowAt, D));
        }
        // probs = q·kᵀ and grads = dout·vᵀ for the block, then P and dS in place.
        gemmRange(q + at, D, 1, k + kv, 1, D, DTYPE_F32, probs, S, 1, 0, rows, 0, end, D, 0, work);
        gemmRange(dout + at, D, 1, v + kv, 1, D, DTYPE_F32, grads, S, 1, 0, rows, 0, end, D, 0,
          work);
        for (let i = 0; i < rows; i++) {
          const offset = (<usize>(i * S)) << 2;
          const r = r0 + i;
          gradientRow(probs + offset, grads + offset, b, slope, visibleEnd(t0 + i), end,
            load<f32>(lse + ((<usize>r) << 2)), load<f32>(delta + ((<usize>r) << 2)));
        }
        // dq = dS·k; dk += dSᵀ·q; dv += Pᵀ·dout.
        gemmRange(grads, S, 1, k + kv, D, 1, DTYPE_F32, dq + at, D, 1, 0, rows, 0, D, end, 0,
          work);
        if (needKeyValue == 0) continue;
        gemmRange(grads, 1, S, q + at, D, 1, DTYPE_F32, dk + kv, D, 1, 0, end, 0, D, rows, 1,
          work);
        gemmRange(probs, 1, S, dout + at, D, 1, DTYPE_F32, dv + kv, D, 1, 0, end, 0, D, rows, 1,
          work);
      }
    }
  }
}

/**
 * Turns one row of dot products q·k (at p) and dout·v (at ds) over keys [0, end) into
 * p = exp(score - lse) and dS * scale = p * (dp - delta) * scale, with 0 for hidden keys and for
 * keys at or past rowEnd.
 */
function gradientRow(
  p: usize,
  ds: usize,
  b: i32,
  slope: f32,
  rowEnd: i32,
  end: i32,
  rowLse: f32,
  rowDelta: f32,
): void {
  let s = 0;
  if (rowLse != Infinity) {
    const vlse = f32x4.splat(rowLse);
    const vdelta = f32x4.splat(rowDelta);
    const vscale = f32x4.splat(scale);
    for (; s + 4 <= rowEnd; s += 4) {
      const o = (<usize>s) << 2;
      const score = scores4(v128.load(p + o), slope, s);
      const prob = v128.and(expF32x4(f32x4.sub(score, vlse)), keyVisibleMask4(b, s));
      v128.store(p + o, prob);
      v128.store(ds + o, f32x4.mul(f32x4.mul(prob, f32x4.sub(v128.load(ds + o), vdelta)), vscale));
    }
    for (; s < rowEnd; s++) {
      const o = (<usize>s) << 2;
      let prob: f32 = 0;
      if (keyVisible(b, s)) prob = expF32(score1(load<f32>(p + o), slope, s) - rowLse);
      store<f32>(p + o, prob);
      store<f32>(ds + o, prob * (load<f32>(ds + o) - rowDelta) * scale);
    }
  }
  memory.fill(p + ((<usize>s) << 2), 0, (<usize>(end - s)) << 2);
  memory.fill(ds + ((<usize>s) << 2), 0, (<usize>(end - s)) << 2);
}

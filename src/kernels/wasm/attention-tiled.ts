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
//
// Training may drop attention probabilities as torch's attention dropout does: each kept one
// is scaled by 1 / (1 - p). The mask of element (b, h, t, s) is word i % 4 of the Philox block
// at counter + i / 4, with i = ((b * H + h) * T + t) * S + s, as wasm/dropout.ts draws its
// masks, so backward regenerates it.
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
import { philoxBlocks4 } from "./philox";
import { dotF32, expF32, expF32x4, expShiftSumF32, rowMaxF32 } from "./simdmath";

/**
 * Query rows per block. Smaller blocks waste less of the causal diagonal but pack K and V more
 * often. On GPT-2's heads of 256 rows, 24, 36, 48, 60 and 96 ran within a few percent of each
 * other, and 48 (eight 6-row tiles) was among the fastest in forward and backward.
 */
const QUERY_BLOCK: i32 = 48;

/**
 * Returns the scratch bytes one thread needs: gemmRange's packing space, one (forward) or two
 * (backward) QUERY_BLOCK x keys f32 blocks, a row of keys dropout factors and four Philox blocks.
 */
export function attentionTiledScratchBytes(keys: i32, backward: i32): usize {
  const blocks: usize = backward != 0 ? 2 : 1;
  const rows = blocks * <usize>QUERY_BLOCK + 1;
  return gemmRangeWorkBytes() + ((rows * <usize>keys) << 2) + 64;
}

// Attention dropout of the current call, per thread like attention-common.ts: keep an element
// when the top 24 bits of its word are >= threshold (0 = no dropout), and scale it by keepScale.
let threshold: u32 = 0;
let keepScale: f32 = 1;
let key0: u32 = 0;
let key1: u32 = 0;
let counterBase: u64 = 0;

function setDropout(drop: u32, scaleKept: f32, k0: u32, k1: u32, lo: u32, hi: u32): void {
  threshold = drop;
  keepScale = scaleKept;
  key0 = k0;
  key1 = k1;
  counterBase = (<u64>hi << 32) | <u64>lo;
}

/**
 * Writes the dropout factor (0 or keepScale) of elements [0, end) of score row `row` (the row
 * index (b * H + h) * T + t) to `factors`. `words` is 64 bytes of scratch. The words come four
 * blocks at a time, for the 16-element groups of the flat index that the row overlaps.
 */
function dropoutFactors(row: i32, end: i32, factors: usize, words: usize): void {
  const first = <u64>row * <u64>S;
  const last = first + <u64>end;
  for (let group = first & ~(<u64>15); group < last; group += 16) {
    philoxBlocks4(counterBase + (group >> 2), key0, key1, words);
    const from = max(group, first);
    const to = min(group + 16, last);
    for (let index = from; index < to; index++) {
      const word = load<u32>(words + ((<usize>(index - group)) << 2));
      const factor: f32 = (word >>> 8) >= threshold ? keepScale : 0;
      store<f32>(factors + ((<usize>(index - first)) << 2), factor);
    }
  }
}

/** Multiplies row[s] by factors[s] for s in [0, end). */
function scaleByFactors(row: usize, factors: usize, end: i32): void {
  let s = 0;
  for (; s + 4 <= end; s += 4) {
    const o = (<usize>s) << 2;
    v128.store(row + o, f32x4.mul(v128.load(row + o), v128.load(factors + o)));
  }
  for (; s < end; s++) {
    const o = (<usize>s) << 2;
    store<f32>(row + o, load<f32>(row + o) * load<f32>(factors + o));
  }
}

/** Returns the number of keys that query rows [t0, t0 + rows) read: up to the last row's. */
@inline
function blockEnd(t0: i32, rows: i32): i32 {
  return visibleEnd(t0 + rows - 1);
}

/**
 * Attention forward, as attentionForwardF32 computes it, with the same arguments except
 * `scratch`: nt slices of `scratchStride` bytes, each attentionTiledScratchBytes(keys, 0), and
 * the dropout of the probabilities: `dropThreshold` (ceil(p * 2^24), 0 for none), `keptScale`
 * (1 / (1 - p)) and the Philox key and first counter.
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
  dropThreshold: u32,
  keptScale: f32,
  dropKey0: u32,
  dropKey1: u32,
  counterLo: u32,
  counterHi: u32,
  tid: i32,
  nt: i32,
): void {
  setGeometry(batch, heads, kvHeads, queries, keys, headSize, scale, causal, keyMask, slopes);
  setDropout(dropThreshold, keptScale, dropKey0, dropKey1, counterLo, counterHi);
  const work = scratch + <usize>tid * scratchStride;
  const probs = work + gemmRangeWorkBytes();
  const factors = probs + ((<usize>QUERY_BLOCK * <usize>S) << 2);
  const words = factors + ((<usize>S) << 2);
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
      const rowEnd = visibleEnd(t0 + i);
      softmaxRow(row, b, slope, rowEnd, end, lse + ((<usize>(r0 + i)) << 2));
      if (threshold != 0) {
        dropoutFactors(r0 + i, rowEnd, factors, words);
        scaleByFactors(row, factors, rowEnd);
      }
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
 * each attentionTiledScratchBytes(keys, 1). The dropout arguments are the forward call's.
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
  dropThreshold: u32,
  keptScale: f32,
  dropKey0: u32,
  dropKey1: u32,
  counterLo: u32,
  counterHi: u32,
  needKeyValue: i32,
  tid: i32,
  nt: i32,
): void {
  setGeometry(batch, heads, kvHeads, queries, keys, headSize, scale, causal, keyMask, slopes);
  setDropout(dropThreshold, keptScale, dropKey0, dropKey1, counterLo, counterHi);
  const work = scratch + <usize>tid * scratchStride;
  const probs = work + gemmRangeWorkBytes();
  const grads = probs + ((<usize>QUERY_BLOCK * <usize>S) << 2);
  const factors = grads + ((<usize>QUERY_BLOCK * <usize>S) << 2);
  const words = factors + ((<usize>S) << 2);
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
          const rowEnd = visibleEnd(t0 + i);
          // With dropout, dout·vᵀ is the gradient of the kept probabilities: the factors turn
          // it into dp, and the kept probabilities replace P for dv.
          if (threshold != 0) {
            dropoutFactors(r, rowEnd, factors, words);
            scaleByFactors(grads + offset, factors, rowEnd);
          }
          gradientRow(probs + offset, grads + offset, b, slope, rowEnd, end,
            load<f32>(lse + ((<usize>r) << 2)), load<f32>(delta + ((<usize>r) << 2)));
          if (threshold != 0) scaleByFactors(probs + offset, factors, rowEnd);
        }
        // dq = dS·k; dk += dSᵀ·q; dv += Pᵀ·dout (P with dropout applied).
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

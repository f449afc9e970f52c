// Fused scaled dot-product attention with grouped KV heads, ALiBi, a causal mask and a key padding
// mask: the forward pass (backward in attention-backward.ts). Shapes: q [B, H, T, D], k and v
// [B, Hkv, S, D], out [B, H, T, D], lse [B, H, T]. The T queries are the last T of the S key
// positions (a KV cache contains the first S - T), so query t is at absolute position S - T + t.
//
// Masked keys are skipped, which is what adding the dtype's minimum before softmax gives in f32:
// exp(min - max) is exactly 0 whenever one key is visible. A query row with no visible key gives
// zeros. The forward pass stores the log-sum-exp of each row's scores so that backward recomputes
// the probabilities instead of keeping a [B, H, T, S] matrix.
//
// Results are bitwise independent of the thread count and of how rows are grouped into tiles:
// the lanes of dot4F32 and dot2x4F32 equal dotF32, and the tiled updates perform the same
// multiply-adds in the same key order as single ones. So backward also recomputes exactly the
// forward scores. Work items (pairs of query rows) are dealt out round-robin because causal
// rows grow in cost with t.
import {
  B,
  D,
  group,
  H,
  Hkv,
  keyVisible,
  keyVisibleMask4,
  rowBytes,
  S,
  score1,
  scores4,
  setGeometry,
  slopeOf,
  T,
  visibleEnd,
} from "./attention-common";
import {
  axpy2x4F32,
  axpy4F32,
  axpyF32,
  dot2x4F32,
  dot2x4Rest,
  dot4F32,
  dotF32,
  expShiftSumF32,
  rowMaxF32,
  zeroF32,
} from "./simdmath";

/**
 * Attention forward. q, k, v, out, lse: f32 offsets (shapes in the file header, except that k
 * and v may be [B, Hkv, keyStride, D] with only the first S positions read, such as a KV cache
 * buffer of capacity keyStride). keyMask: 0 or
 * an offset of B * S i32 or f32 values (nonzero = real key). slopes: 0 or an offset of H f32
 * ALiBi slopes, adding slopes[h] * s to the score of key s. scratch: nt * 2 * S f32 values, two
 * score rows per thread. scale: multiplies q·k. causal: 1 hides keys after the query's
 * position. A row with no visible key gets zeros in out and +inf in lse.
 */
export function attentionForwardF32(
  q: usize,
  k: usize,
  v: usize,
  out: usize,
  lse: usize,
  keyMask: usize,
  slopes: usize,
  scratch: usize,
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
  const scores0 = scratch + ((<usize>tid * 2 * <usize>S) << 2);
  const scores1 = scores0 + ((<usize>S) << 2);
  const pairsPerHead = (T + 1) >> 1;
  const items = B * H * pairsPerHead;
  for (let item = tid; item < items; item += nt) {
    const bh = item / pairsPerHead;
    const t0 = (item % pairsPerHead) * 2;
    const h = bh % H;
    const b = bh / H;
    const r0 = bh * T + t0;
    const kvBase = <usize>((b * Hkv + h / group) * keyStride) * rowBytes;
    const slope = slopeOf(h);
    const q0 = q + <usize>r0 * rowBytes;
    const end0 = visibleEnd(t0);

    if (t0 + 1 >= T) {
      scoreRange(q0, k + kvBase, scores0, b, slope, 0, end0);
      finishRow(scores0, end0, out + <usize>r0 * rowBytes, lse + ((<usize>r0) << 2), v + kvBase);
      continue;
    }

    // Two query rows share each load of k: first the keys both attend to, then the rest.
    const q1 = q0 + rowBytes;
    const end1 = visibleEnd(t0 + 1);
    let s = 0;
    for (; s + 4 <= end0; s += 4) {
      const dots0 = dot2x4F32(q0, q1, k + kvBase + <usize>s * rowBytes, rowBytes, D);
      const dots1 = dot2x4Rest();
      const visible = keyVisibleMask4(b, s);
      storeScores4(scores0, s, dots0, slope, visible);
      storeScores4(scores1, s, dots1, slope, visible);
    }
    scoreRange(q0, k + kvBase, scores0, b, slope, s, end0);
    scoreRange(q1, k + kvBase, scores1, b, slope, s, end1);
    finishPair(scores0, scores1, end0, end1, out + <usize>r0 * rowBytes, lse + ((<usize>r0) << 2), v + kvBase);
  }
}

@inline
function storeScores4(scores: usize, s: i32, dots: v128, slope: f32, visible: v128): void {
  const masked = f32x4.splat(<f32>-Infinity);
  v128.store(scores + ((<usize>s) << 2), v128.bitselect(scores4(dots, slope, s), masked, visible));
}

/** Writes the scores of keys [from, to) of one query row; hidden keys get -inf. */
function scoreRange(
  qRow: usize,
  kRows: usize,
  scores: usize,
  b: i32,
  slope: f32,
  from: i32,
  to: i32,
): void {
  let s = from;
  for (; s + 4 <= to; s += 4) {
    const dots = dot4F32(qRow, kRows + <usize>s * rowBytes, rowBytes, D);
    storeScores4(scores, s, dots, slope, keyVisibleMask4(b, s));
  }
  for (; s < to; s++) {
    let score: f32 = -Infinity;
    if (keyVisible(b, s)) score = score1(dotF32(qRow, kRows + <usize>s * rowBytes, D), slope, s);
    store<f32>(scores + ((<usize>s) << 2), score);
  }
}

/**
 * Turns the scores [0, end) of one row into probabilities in place, stores the row's
 * log-sum-exp, and returns 1 / sum(exp(score - max)), or 0 when no key is visible.
 */
function softmaxRow(scores: usize, end: i32, lseAt: usize): f32 {
  const m = rowMaxF32(scores, end);
  if (m == -Infinity) {
    store<f32>(lseAt, Infinity);
    return 0;
  }
  const sum = expShiftSumF32(scores, scores, end, m);
  store<f32>(lseAt, m + Mathf.log(sum));
  return 1 / sum;
}

/** oRow += sum over keys s in [from, to) of p[s] * inv * v[s]. */
function accumulateRange(
  oRow: usize,
  p: usize,
  inv: f32,
  vRows: usize,
  from: i32,
  to: i32,
): void {
  let s = from;
  for (; s + 4 <= to; s += 4) {
    const weights = f32x4.mul(v128.load(p + ((<usize>s) << 2)), f32x4.splat(inv));
    axpy4F32(oRow, weights, vRows + <usize>s * rowBytes, rowBytes, D);
  }
  for (; s < to; s++) {
    const weight = load<f32>(p + ((<usize>s) << 2));
    if (weight != 0) axpyF32(oRow, weight * inv, vRows + <usize>s * rowBytes, D);
  }
}

/** Softmax of one row's scores, then out = P·v (zeros when no key is visible). */
function finishRow(scores: usize, end: i32, oRow: usize, lseAt: usize, vRows: usize): void {
  zeroF32(oRow, D);
  const inv = softmaxRow(scores, end, lseAt);
  if (inv != 0) accumulateRange(oRow, scores, inv, vRows, 0, end);
}

/** finishRow for two consecutive rows, which share each load of v where both attend to the key. */
function finishPair(
  scores0: usize,
  scores1: usize,
  end0: i32,
  end1: i32,
  oRow0: usize,
  lseAt0: usize,
  vRows: usize,
): void {
  const oRow1 = oRow0 + rowBytes;
  zeroF32(oRow0, D);
  zeroF32(oRow1, D);
  const inv0 = softmaxRow(scores0, end0, lseAt0);
  const inv1 = softmaxRow(scores1, end1, lseAt0 + 4);
  let s = 0;
  if (inv0 != 0 && inv1 != 0) {
    const vinv0 = f32x4.splat(inv0);
    const vinv1 = f32x4.splat(inv1);
    for (; s + 4 <= min(end0, end1); s += 4) {
      const w0 = f32x4.mul(v128.load(scores0 + ((<usize>s) << 2)), vinv0);
      const w1 = f32x4.mul(v128.load(scores1 + ((<usize>s) << 2)), vinv1);
      axpy2x4F32(oRow0, oRow1, w0, w1, vRows + <usize>s * rowBytes, rowBytes, D);
    }
  }
  if (inv0 != 0) accumulateRange(oRow0, scores0, inv0, vRows, s, end0);
  if (inv1 != 0) accumulateRange(oRow1, scores1, inv1, vRows, s, end1);
}

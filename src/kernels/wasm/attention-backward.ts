// Backward of the fused attention in attention.ts (shapes and masking rules in its header).
// attentionBackwardQueryF32 computes dq and delta = rowsum(dout * out), split by query rows;
// attentionBackwardKeyValueF32 then computes dk and dv, split by key rows, so no two threads
// write the same row. Both recompute the probabilities p = exp(score - lse) bitwise as the forward
// pass computed its scores, and dS = p * (dp - delta) with dp = dout · v.
import {
  B,
  causal,
  D,
  group,
  H,
  Hkv,
  keyVisible,
  keyVisibleMask4,
  rowBytes,
  S,
  scale,
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
  expF32,
  expF32x4,
  zeroF32,
} from "./simdmath";

/**
 * Attention backward for the queries: dq [B, H, T, D], and delta [B, H, T] = rowsum(dout * out),
 * which attentionBackwardKeyValueF32 reads. Arguments as in attentionForwardF32, plus out and
 * lse from the forward pass and dout, the gradient of out.
 */
export function attentionBackwardQueryF32(
  q: usize,
  k: usize,
  v: usize,
  out: usize,
  dout: usize,
  lse: usize,
  delta: usize,
  dq: usize,
  keyMask: usize,
  slopes: usize,
  batch: i32,
  heads: i32,
  kvHeads: i32,
  queries: i32,
  keys: i32,
  headSize: i32,
  scale: f32,
  causal: i32,
  tid: i32,
  nt: i32,
): void {
  setGeometry(batch, heads, kvHeads, queries, keys, headSize, scale, causal, keyMask, slopes);
  const pairsPerHead = (T + 1) >> 1;
  const items = B * H * pairsPerHead;
  for (let item = tid; item < items; item += nt) {
    const bh = item / pairsPerHead;
    const t0 = (item % pairsPerHead) * 2;
    const h = bh % H;
    const b = bh / H;
    const r0 = bh * T + t0;
    const kvBase = <usize>((b * Hkv + h / group) * S) * rowBytes;
    const kRows = k + kvBase;
    const vRows = v + kvBase;
    const slope = slopeOf(h);
    const rows = min(2, T - t0);
    for (let i = 0; i < rows; i++) {
      const r = r0 + i;
      const rowDelta = dotF32(dout + <usize>r * rowBytes, out + <usize>r * rowBytes, D);
      store<f32>(delta + ((<usize>r) << 2), rowDelta);
      zeroF32(dq + <usize>r * rowBytes, D);
    }
    const lse0 = load<f32>(lse + ((<usize>r0) << 2));
    const delta0 = load<f32>(delta + ((<usize>r0) << 2));
    const end0 = visibleEnd(t0);
    const q0 = q + <usize>r0 * rowBytes;
    const do0 = dout + <usize>r0 * rowBytes;
    const dq0 = dq + <usize>r0 * rowBytes;
    if (rows == 1) {
      queryRange(q0, do0, dq0, lse0, delta0, kRows, vRows, b, slope, 0, end0);
      continue;
    }

    const lse1 = load<f32>(lse + ((<usize>r0 + 1) << 2));
    const delta1 = load<f32>(delta + ((<usize>r0 + 1) << 2));
    const end1 = visibleEnd(t0 + 1);
    const q1 = q0 + rowBytes;
    const do1 = do0 + rowBytes;
    const dq1 = dq0 + rowBytes;
    let s = 0;
    // Two rows share each load of k and v over the keys both attend to.
    if (lse0 != Infinity && lse1 != Infinity) {
      const vlse0 = f32x4.splat(lse0);
      const vlse1 = f32x4.splat(lse1);
      for (; s + 4 <= min(end0, end1); s += 4) {
        const kBlock = kRows + <usize>s * rowBytes;
        const vBlock = vRows + <usize>s * rowBytes;
        const visible = keyVisibleMask4(b, s);
        const dots0 = dot2x4F32(q0, q1, kBlock, rowBytes, D);
        const dots1 = dot2x4Rest();
        const p0 = v128.and(expF32x4(f32x4.sub(scores4(dots0, slope, s), vlse0)), visible);
        const p1 = v128.and(expF32x4(f32x4.sub(scores4(dots1, slope, s), vlse1)), visible);
        const dp0 = dot2x4F32(do0, do1, vBlock, rowBytes, D);
        const dp1 = dot2x4Rest();
        const ds0 = scoreGrad4(p0, dp0, delta0);
        const ds1 = scoreGrad4(p1, dp1, delta1);
        axpy2x4F32(dq0, dq1, ds0, ds1, kBlock, rowBytes, D);
      }
    }
    queryRange(q0, do0, dq0, lse0, delta0, kRows, vRows, b, slope, s, end0);
    queryRange(q1, do1, dq1, lse1, delta1, kRows, vRows, b, slope, s, end1);
  }
}

/** Returns dS * scale = p * (dp - delta) * scale per lane, as the scalar paths compute it. */
@inline
function scoreGrad4(p: v128, dp: v128, rowDelta: f32): v128 {
  const ds = f32x4.mul(p, f32x4.sub(dp, f32x4.splat(rowDelta)));
  return f32x4.mul(ds, f32x4.splat(scale));
}

/** dqRow += sum over visible keys s in [from, to) of dS[s] * scale * k[s], for one query row. */
function queryRange(
  qRow: usize,
  doRow: usize,
  dqRow: usize,
  rowLse: f32,
  rowDelta: f32,
  kRows: usize,
  vRows: usize,
  b: i32,
  slope: f32,
  from: i32,
  to: i32,
): void {
  if (rowLse == Infinity) return;
  const vlse = f32x4.splat(rowLse);
  let s = from;
  for (; s + 4 <= to; s += 4) {
    const kBlock = kRows + <usize>s * rowBytes;
    const dots = dot4F32(qRow, kBlock, rowBytes, D);
    const p = v128.and(expF32x4(f32x4.sub(scores4(dots, slope, s), vlse)), keyVisibleMask4(b, s));
    const dp = dot4F32(doRow, vRows + <usize>s * rowBytes, rowBytes, D);
    axpy4F32(dqRow, scoreGrad4(p, dp, rowDelta), kBlock, rowBytes, D);
  }
  for (; s < to; s++) {
    if (!keyVisible(b, s)) continue;
    const kRow = kRows + <usize>s * rowBytes;
    const p = expF32(score1(dotF32(qRow, kRow, D), slope, s) - rowLse);
    const dp = dotF32(doRow, vRows + <usize>s * rowBytes, D);
    axpyF32(dqRow, p * (dp - rowDelta) * scale, kRow, D);
  }
}

// Inputs of the current attentionBackwardKeyValueF32 call, per thread like attention-common.ts.
let qIn: usize = 0;
let doutIn: usize = 0;
let lseIn: usize = 0;
let deltaIn: usize = 0;

/**
 * Attention backward for the keys and values: dk and dv [B, Hkv, S, D], summed over the H / Hkv
 * query heads that share each KV head. Needs delta from attentionBackwardQueryF32.
 */
export function attentionBackwardKeyValueF32(
  q: usize,
  k: usize,
  v: usize,
  dout: usize,
  lse: usize,
  delta: usize,
  dk: usize,
  dv: usize,
  keyMask: usize,
  slopes: usize,
  batch: i32,
  heads: i32,
  kvHeads: i32,
  queries: i32,
  keys: i32,
  headSize: i32,
  scale: f32,
  causal: i32,
  tid: i32,
  nt: i32,
): void {
  setGeometry(batch, heads, kvHeads, queries, keys, headSize, scale, causal, keyMask, slopes);
  qIn = q;
  doutIn = dout;
  lseIn = lse;
  deltaIn = delta;
  const pairsPerHead = (S + 1) >> 1;
  const items = B * Hkv * pairsPerHead;
  for (let item = tid; item < items; item += nt) {
    const bg = item / pairsPerHead;
    const s0 = (item % pairsPerHead) * 2;
    const g = bg % Hkv;
    const b = bg / Hkv;
    const at0 = <usize>(bg * S + s0) * rowBytes;
    const keyRows = min(2, S - s0);
    for (let i = 0; i < keyRows; i++) {
      zeroF32(dk + at0 + <usize>i * rowBytes, D);
      zeroF32(dv + at0 + <usize>i * rowBytes, D);
    }
    const visible0 = keyVisible(b, s0);
    const visible1 = keyRows == 2 && keyVisible(b, s0 + 1);
    if (visible0 && visible1) {
      keyPair(k + at0, v + at0, dk + at0, dv + at0, b, g, s0);
      continue;
    }
    for (let i = 0; i < keyRows; i++) {
      if (!keyVisible(b, s0 + i)) continue;
      const at = at0 + <usize>i * rowBytes;
      for (let h = g * group; h < (g + 1) * group; h++) {
        const rowBase = (b * H + h) * T;
        const slope = slopeOf(h);
        rowRange(k + at, v + at, dk + at, dv + at, s0 + i, slope, rowBase, firstRow(s0 + i), T);
      }
    }
  }
}

/** Returns the first query row that attends to key s: query t does when S - T + t >= s. */
@inline
function firstRow(s: i32): i32 {
  return causal ? max(0, s - (S - T)) : 0;
}

/**
 * dk[s] += dS * scale * q and dv[s] += p * dout over query rows [from, to) of one head, for one
 * key s that every row in the range attends to.
 */
function rowRange(
  kRow: usize,
  vRow: usize,
  dkRow: usize,
  dvRow: usize,
  s: i32,
  slope: f32,
  rowBase: i32,
  from: i32,
  to: i32,
): void {
  const alibi = f32x4.splat(slope * <f32>s);
  const vscale = f32x4.splat(scale);
  let t = from;
  // Four query rows at a time: their lse and delta are contiguous.
  for (; t + 4 <= to; t += 4) {
    const r = rowBase + t;
    const qBlock = qIn + <usize>r * rowBytes;
    const doBlock = doutIn + <usize>r * rowBytes;
    const dots = dot4F32(kRow, qBlock, rowBytes, D);
    const score = f32x4.add(f32x4.mul(dots, vscale), alibi);
    const p = expF32x4(f32x4.sub(score, v128.load(lseIn + ((<usize>r) << 2))));
    const dp = dot4F32(vRow, doBlock, rowBytes, D);
    const ds = f32x4.mul(p, f32x4.sub(dp, v128.load(deltaIn + ((<usize>r) << 2))));
    axpy4F32(dvRow, p, doBlock, rowBytes, D);
    axpy4F32(dkRow, f32x4.mul(ds, vscale), qBlock, rowBytes, D);
  }
  for (; t < to; t++) {
    const r = rowBase + t;
    const qRow = qIn + <usize>r * rowBytes;
    const doRow = doutIn + <usize>r * rowBytes;
    const p = expF32(score1(dotF32(qRow, kRow, D), slope, s) - load<f32>(lseIn + ((<usize>r) << 2)));
    const dp = dotF32(doRow, vRow, D);
    const ds = p * (dp - load<f32>(deltaIn + ((<usize>r) << 2)));
    axpyF32(dvRow, p, doRow, D);
    axpyF32(dkRow, ds * scale, qRow, D);
  }
}

/**
 * rowRange for the two visible keys s0 and s0 + 1 (rows at k0, v0, dk0, dv0 and one row on),
 * over every query head of KV head g. Four query rows at a time go through both keys, sharing
 * each load of q and dout.
 */
function keyPair(k0: usize, v0: usize, dk0: usize, dv0: usize, b: i32, g: i32, s0: i32): void {
  const k1 = k0 + rowBytes;
  const v1 = v0 + rowBytes;
  const dk1 = dk0 + rowBytes;
  const dv1 = dv0 + rowBytes;
  const vscale = f32x4.splat(scale);
  // Under the causal mask, key s0 + 1 may be visible from one query row later than key s0.
  const start0 = firstRow(s0);
  const start1 = firstRow(s0 + 1);
  for (let h = g * group; h < (g + 1) * group; h++) {
    const rowBase = (b * H + h) * T;
    const slope = slopeOf(h);
    const alibi0 = f32x4.splat(slope * <f32>s0);
    const alibi1 = f32x4.splat(slope * <f32>(s0 + 1));
    rowRange(k0, v0, dk0, dv0, s0, slope, rowBase, start0, start1);
    let t = start1;
    for (; t + 4 <= T; t += 4) {
      const r = rowBase + t;
      const qBlock = qIn + <usize>r * rowBytes;
      const doBlock = doutIn + <usize>r * rowBytes;
      const rowLse = v128.load(lseIn + ((<usize>r) << 2));
      const rowDelta = v128.load(deltaIn + ((<usize>r) << 2));
      const dots0 = dot2x4F32(k0, k1, qBlock, rowBytes, D);
      const dots1 = dot2x4Rest();
      const p0 = expF32x4(f32x4.sub(f32x4.add(f32x4.mul(dots0, vscale), alibi0), rowLse));
      const p1 = expF32x4(f32x4.sub(f32x4.add(f32x4.mul(dots1, vscale), alibi1), rowLse));
      const dp0 = dot2x4F32(v0, v1, doBlock, rowBytes, D);
      const dp1 = dot2x4Rest();
      const ds0 = f32x4.mul(f32x4.mul(p0, f32x4.sub(dp0, rowDelta)), vscale);
      const ds1 = f32x4.mul(f32x4.mul(p1, f32x4.sub(dp1, rowDelta)), vscale);
      axpy2x4F32(dv0, dv1, p0, p1, doBlock, rowBytes, D);
      axpy2x4F32(dk0, dk1, ds0, ds1, qBlock, rowBytes, D);
    }
    rowRange(k0, v0, dk0, dv0, s0, slope, rowBase, t, T);
    rowRange(k1, v1, dk1, dv1, s0 + 1, slope, rowBase, t, T);
  }
}

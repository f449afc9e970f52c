// Fused scaled dot-product attention with grouped KV heads, ALiBi, a causal mask and a key padding
// mask; forward and backward. Shapes: q [B, H, T, D], k and v [B, Hkv, S, D], out [B, H, T, D],
// lse [B, H, T]. The T queries are the last T of the S key positions (a KV cache contains the
// first S - T), so query t is at absolute position S - T + t.
//
// Masked keys are skipped, which is what adding the dtype's minimum before softmax gives in f32:
// exp(min - max) is exactly 0 whenever one key is visible. A query row with no visible key gives
// zeros. The forward pass stores the log-sum-exp of each row's scores so that backward recomputes
// the probabilities instead of keeping a [B, H, T, S] matrix.
//
// Every row (forward, dq) or key row (dk, dv) is computed by one thread in the same order on
// any thread count, so results are bitwise independent of the thread count. Rows are dealt out
// round-robin because causal rows grow in cost with t. Scores are computed four keys (or four
// query rows) at a time with dot4F32, whose lanes equal dotF32 bitwise, so backward recomputes
// exactly the scores of the forward pass.
import {
  axpy4F32,
  axpyF32,
  dot4F32,
  dotF32,
  expF32,
  expF32x4,
  expShiftSumF32,
  rowMaxF32,
  zeroF32,
} from "./simdmath";

/** Returns true when key s of batch b is a real token. keyMask may hold i32 or f32 values. */
@inline
function keyVisible(keyMask: usize, b: i32, S: i32, s: i32): bool {
  if (keyMask == 0) return true;
  // 0, 0.0 and -0.0 are the only bit patterns with all bits but the sign clear, in i32 and f32.
  return (load<u32>(keyMask + ((<usize>(b * S + s)) << 2)) & 0x7fffffff) != 0;
}

@inline
function slopeOf(slopes: usize, h: i32): f32 {
  return slopes == 0 ? 0 : load<f32>(slopes + ((<usize>h) << 2));
}

/** Returns a lane mask, all ones in lane i when key s + i of batch b is a real token. */
@inline
function keyVisibleMask4(keyMask: usize, b: i32, S: i32, s: i32): v128 {
  if (keyMask == 0) return i32x4.splat(-1);
  const flags = v128.load(keyMask + ((<usize>(b * S + s)) << 2));
  return i32x4.ne(v128.and(flags, i32x4.splat(0x7fffffff)), i32x4.splat(0));
}

/** Returns [s, s + 1, s + 2, s + 3] as f32 lanes. */
@inline
function keyIndices4(s: i32): v128 {
  return f32x4.convert_i32x4_s(i32x4.add(i32x4.splat(s), i32x4(0, 1, 2, 3)));
}

/**
 * Attention forward. q, k, v, out, lse: f32 offsets (shapes in the file header). keyMask: 0 or
 * an offset of B * S i32 or f32 values (nonzero = real key). slopes: 0 or an offset of H f32
 * ALiBi slopes, adding slopes[h] * s to the score of key s. scratch: nt * S f32 values, one
 * score row per thread. scale: multiplies q·k. causal: 1 hides keys after the query's position.
 * A row with no visible key gets zeros in out and +inf in lse.
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
  B: i32,
  H: i32,
  Hkv: i32,
  T: i32,
  S: i32,
  D: i32,
  scale: f32,
  causal: i32,
  tid: i32,
  nt: i32,
): void {
  const rows = B * H * T;
  const group = H / Hkv;
  const rowBytes = (<usize>D) << 2;
  const scores = scratch + (((<usize>tid) * <usize>S) << 2);
  const vscale = f32x4.splat(scale);
  const minusInf = f32x4.splat(<f32>-Infinity);
  for (let r = tid; r < rows; r += nt) {
    const t = r % T;
    const h = (r / T) % H;
    const b = r / (H * T);
    const kvBase = <usize>((b * Hkv + h / group) * S) * rowBytes;
    const kRows = k + kvBase;
    const vRows = v + kvBase;
    const qRow = q + <usize>r * rowBytes;
    const oRow = out + <usize>r * rowBytes;
    const visibleEnd = causal ? S - T + t + 1 : S;
    const slope = slopeOf(slopes, h);
    const vslope = f32x4.splat(slope);

    // Scores of the keys before the causal limit; hidden keys get -inf.
    let s = 0;
    for (; s + 4 <= visibleEnd; s += 4) {
      const dots = dot4F32(qRow, kRows + <usize>s * rowBytes, rowBytes, D);
      const score = f32x4.add(f32x4.mul(dots, vscale), f32x4.mul(vslope, keyIndices4(s)));
      const visible = keyVisibleMask4(keyMask, b, S, s);
      v128.store(scores + ((<usize>s) << 2), v128.bitselect(score, minusInf, visible));
    }
    for (; s < visibleEnd; s++) {
      let score: f32 = -Infinity;
      if (keyVisible(keyMask, b, S, s)) {
        score = dotF32(qRow, kRows + <usize>s * rowBytes, D) * scale + slope * <f32>s;
      }
      store<f32>(scores + ((<usize>s) << 2), score);
    }
    zeroF32(oRow, D);
    const m = rowMaxF32(scores, visibleEnd);
    if (m == -Infinity) {
      store<f32>(lse + ((<usize>r) << 2), Infinity);
      continue;
    }

    const sum = expShiftSumF32(scores, scores, visibleEnd, m);
    const inv: f32 = 1 / sum;
    s = 0;
    for (; s + 4 <= visibleEnd; s += 4) {
      const p = f32x4.mul(v128.load(scores + ((<usize>s) << 2)), f32x4.splat(inv));
      axpy4F32(oRow, p, vRows + <usize>s * rowBytes, rowBytes, D);
    }
    for (; s < visibleEnd; s++) {
      const p = load<f32>(scores + ((<usize>s) << 2));
      if (p != 0) axpyF32(oRow, p * inv, vRows + <usize>s * rowBytes, D);
    }
    store<f32>(lse + ((<usize>r) << 2), m + Mathf.log(sum));
  }
}

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
  B: i32,
  H: i32,
  Hkv: i32,
  T: i32,
  S: i32,
  D: i32,
  scale: f32,
  causal: i32,
  tid: i32,
  nt: i32,
): void {
  const rows = B * H * T;
  const group = H / Hkv;
  const rowBytes = (<usize>D) << 2;
  const vscale = f32x4.splat(scale);
  for (let r = tid; r < rows; r += nt) {
    const t = r % T;
    const h = (r / T) % H;
    const b = r / (H * T);
    const kvBase = <usize>((b * Hkv + h / group) * S) * rowBytes;
    const kRows = k + kvBase;
    const vRows = v + kvBase;
    const qRow = q + <usize>r * rowBytes;
    const dqRow = dq + <usize>r * rowBytes;
    const doRow = dout + <usize>r * rowBytes;
    const visibleEnd = causal ? S - T + t + 1 : S;
    const slope = slopeOf(slopes, h);
    const vslope = f32x4.splat(slope);
    const rowDelta = dotF32(doRow, out + <usize>r * rowBytes, D);
    store<f32>(delta + ((<usize>r) << 2), rowDelta);
    zeroF32(dqRow, D);
    const rowLse = load<f32>(lse + ((<usize>r) << 2));
    if (rowLse == Infinity) continue;

    // dS = P * (dP - delta) with dP = dout · v, then dq += dS * scale * k.
    const vlse = f32x4.splat(rowLse);
    const vdelta = f32x4.splat(rowDelta);
    let s = 0;
    for (; s + 4 <= visibleEnd; s += 4) {
      const kBlock = kRows + <usize>s * rowBytes;
      const dots = dot4F32(qRow, kBlock, rowBytes, D);
      const score = f32x4.add(f32x4.mul(dots, vscale), f32x4.mul(vslope, keyIndices4(s)));
      const visible = keyVisibleMask4(keyMask, b, S, s);
      const p = v128.and(expF32x4(f32x4.sub(score, vlse)), visible);
      const dp = dot4F32(doRow, vRows + <usize>s * rowBytes, rowBytes, D);
      const ds = f32x4.mul(f32x4.mul(p, f32x4.sub(dp, vdelta)), vscale);
      axpy4F32(dqRow, ds, kBlock, rowBytes, D);
    }
    for (; s < visibleEnd; s++) {
      if (!keyVisible(keyMask, b, S, s)) continue;
      const kRow = kRows + <usize>s * rowBytes;
      const score = dotF32(qRow, kRow, D) * scale + slope * <f32>s;
      const p = expF32(score - rowLse);
      const dp = dotF32(doRow, vRows + <usize>s * rowBytes, D);
      axpyF32(dqRow, p * (dp - rowDelta) * scale, kRow, D);
    }
  }
}

/**
 * Attention backward for the keys and values: dk and dv [B, Hkv, S, D], summed over the H / Hkv
 * query heads that share each KV head. Work is split by key row, so no two threads write the
 * same row. Needs delta from attentionBackwardQueryF32.
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
  B: i32,
  H: i32,
  Hkv: i32,
  T: i32,
  S: i32,
  D: i32,
  scale: f32,
  causal: i32,
  tid: i32,
  nt: i32,
): void {
  const keyRows = B * Hkv * S;
  const group = H / Hkv;
  const rowBytes = (<usize>D) << 2;
  const vscale = f32x4.splat(scale);
  for (let kr = tid; kr < keyRows; kr += nt) {
    const s = kr % S;
    const g = (kr / S) % Hkv;
    const b = kr / (Hkv * S);
    const kRow = k + <usize>kr * rowBytes;
    const vRow = v + <usize>kr * rowBytes;
    const dkRow = dk + <usize>kr * rowBytes;
    const dvRow = dv + <usize>kr * rowBytes;
    zeroF32(dkRow, D);
    zeroF32(dvRow, D);
    if (!keyVisible(keyMask, b, S, s)) continue;
    // Query t attends to key s when S - T + t >= s.
    const tStart = causal ? max(0, s - (S - T)) : 0;

    for (let h = g * group; h < (g + 1) * group; h++) {
      const slope = slopeOf(slopes, h);
      const alibi = f32x4.splat(slope * <f32>s);
      const rowBase = (b * H + h) * T;
      // Four query rows at a time: their lse and delta are contiguous.
      let t = tStart;
      for (; t + 4 <= T; t += 4) {
        const r = rowBase + t;
        const qBlock = q + <usize>r * rowBytes;
        const doBlock = dout + <usize>r * rowBytes;
        const dots = dot4F32(kRow, qBlock, rowBytes, D);
        const score = f32x4.add(f32x4.mul(dots, vscale), alibi);
        const p = expF32x4(f32x4.sub(score, v128.load(lse + ((<usize>r) << 2))));
        const dp = dot4F32(vRow, doBlock, rowBytes, D);
        const ds = f32x4.mul(f32x4.mul(p, f32x4.sub(dp, v128.load(delta + ((<usize>r) << 2)))), vscale);
        axpy4F32(dvRow, p, doBlock, rowBytes, D);
        axpy4F32(dkRow, ds, qBlock, rowBytes, D);
      }
      for (; t < T; t++) {
        const r = rowBase + t;
        const qRow = q + <usize>r * rowBytes;
        const doRow = dout + <usize>r * rowBytes;
        const score = dotF32(qRow, kRow, D) * scale + slope * <f32>s;
        const p = expF32(score - load<f32>(lse + ((<usize>r) << 2)));
        const dp = dotF32(doRow, vRow, D);
        const ds = p * (dp - load<f32>(delta + ((<usize>r) << 2)));
        axpyF32(dvRow, p, doRow, D);
        axpyF32(dkRow, ds * scale, qRow, D);
      }
    }
  }
}

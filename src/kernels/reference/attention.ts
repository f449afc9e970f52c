// Reference attention: plain f64 loops over an explicit probability matrix, the oracle for
// wasm/attention.ts. Shapes: q [B, H, T, D], k and v [B, Hkv, S, D]; query t is at absolute
// position S - T + t. Masked scores are -inf, and a row with no visible key gives zeros.

export interface AttentionRefOptions {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  scale: number;
  causal: boolean;
  /** [B, S]: nonzero = real key. */
  keyMask?: ArrayLike<number>;
  /** [H]: adds slopes[h] * s to the score of key s. */
  slopes?: ArrayLike<number>;
  /**
   * [B, H, T, S] dropout factors (0, or 1 / (1 - p) for a kept probability) that multiply the
   * probabilities before they weight v.
   */
  dropFactors?: ArrayLike<number>;
}

/** Returns the probabilities [B, H, T, S] (rows with no visible key are all zero). */
export function attentionProbsRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  o: AttentionRefOptions,
): Float64Array {
  const { B, H, Hkv, T, S, D, scale } = o;
  const probs = new Float64Array(B * H * T * S);
  const scores = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const row = ((b * H + h) * T + t) * S;
        let m = -Infinity;
        for (let s = 0; s < S; s++) {
          const hidden =
            (o.causal && s > S - T + t) || (o.keyMask !== undefined && o.keyMask[b * S + s] === 0);
          if (hidden) {
            scores[s] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dot += q[((b * H + h) * T + t) * D + d] * k[((b * Hkv + kvh) * S + s) * D + d];
          }
          scores[s] = dot * scale + (o.slopes === undefined ? 0 : o.slopes[h] * s);
          m = Math.max(m, scores[s]);
        }
        if (m === -Infinity) continue;
        let sum = 0;
        for (let s = 0; s < S; s++) sum += Math.exp(scores[s] - m);
        for (let s = 0; s < S; s++) probs[row + s] = Math.exp(scores[s] - m) / sum;
      }
    }
  }
  return probs;
}

/** Returns the attention output [B, H, T, D]. */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: AttentionRefOptions,
): Float64Array {
  const { B, H, Hkv, T, S, D } = o;
  const probs = attentionProbsRef(q, k, o);
  const out = new Float64Array(B * H * T * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const row = (b * H + h) * T + t;
        for (let s = 0; s < S; s++) {
          const p = probs[row * S + s] * (o.dropFactors?.[row * S + s] ?? 1);
          for (let d = 0; d < D; d++) out[row * D + d] += p * v[((b * Hkv + kvh) * S + s) * D + d];
        }
      }
    }
  }
  return out;
}

/** Returns the gradients of q, k and v for the output gradient dout [B, H, T, D]. */
export function attentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dout: ArrayLike<number>,
  o: AttentionRefOptions,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, H, Hkv, T, S, D, scale } = o;
  const probs = attentionProbsRef(q, k, o);
  const dq = new Float64Array(B * H * T * D);
  const dk = new Float64Array(B * Hkv * S * D);
  const dv = new Float64Array(B * Hkv * S * D);
  const dp = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        const row = (b * H + h) * T + t;
        // dP = (dout vᵀ) * factors, dS = P * (dP - rowsum(P * dP)).
        let rowDot = 0;
        for (let s = 0; s < S; s++) {
          let acc = 0;
          for (let d = 0; d < D; d++)
            acc += dout[row * D + d] * v[((b * Hkv + kvh) * S + s) * D + d];
          dp[s] = acc * (o.dropFactors?.[row * S + s] ?? 1);
          rowDot += probs[row * S + s] * dp[s];
        }
        for (let s = 0; s < S; s++) {
          const p = probs[row * S + s];
          const kept = p * (o.dropFactors?.[row * S + s] ?? 1);
          const ds = p * (dp[s] - rowDot) * scale;
          const kv = ((b * Hkv + kvh) * S + s) * D;
          for (let d = 0; d < D; d++) {
            dq[row * D + d] += ds * k[kv + d];
            dk[kv + d] += ds * q[row * D + d];
            dv[kv + d] += kept * dout[row * D + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

// Causal scaled dot-product attention with grouped KV heads, ALiBi and a key padding mask, fused
// in one wasm kernel. Shapes: B batch, H query heads, Hkv KV heads, T query rows, S key rows,
// D head size.
import {
  attentionBackwardF32,
  attentionForwardF32,
  type AttentionDims,
} from "../../kernels/bindings/attention.js";
import type { Rng } from "../random.js";
import { record } from "../tape.js";
import { formatShape, Tensor } from "../tensor.js";
import { expectDtype, expectRank } from "./check.js";

export interface AttentionOptions {
  /** Hide from query t the keys after its absolute position S - T + t. */
  causal: boolean;
  /** Multiplies q·k. Default 1 / sqrt(D). */
  scale?: number;
  /**
   * [H] ALiBi slopes: adds slopes[h] * s to the score of key s. transformers' BLOOM counts s
   * over real tokens only; with left padding that differs by a constant per row, which softmax
   * cancels.
   */
  alibiSlopes?: Float32Array;
  /** [B, S] i32 or f32: 1 = real key, 0 = padding, hidden from every query. */
  keyMask?: Tensor;
  /**
   * Number S of key positions to read when k and v are KV cache buffers [B, Hkv, capacity, D]
   * whose first S positions are valid. The default is all of k's positions. Reading a buffer in
   * place saves copying the cached prefix at every decoding step. Backward requires S = capacity.
   */
  keyLength?: number;
  /**
   * Attention dropout in training: each probability is zeroed with probability p and the rest
   * are scaled by 1 / (1 - p), as torch's attention dropout does. The mask comes from `rng`'s
   * counter stream and backward regenerates it. Left out or p = 0: no dropout.
   */
  dropout?: { p: number; rng: Rng };
}

/**
 * Returns softmax(q kᵀ · scale + alibi + masks) v, [B, H, T, D], for q [B, H, T, D] and k, v
 * [B, Hkv, S, D] with H a multiple of Hkv and S >= T: the T queries are the last T positions,
 * the first S - T keys come from a KV cache. Query head h reads KV head floor(h / (H / Hkv)).
 * Masked scores are excluded from the softmax, as if they were -inf. This matches transformers'
 * eager attention, which adds the dtype's minimum instead: both give probability exactly 0 to
 * masked keys when any key is visible. A query row with no visible key yields zeros here, where
 * adding the minimum to every score would spread the probability evenly over all keys.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const dims = checkAttention(q, k, v, opts);
  const { B, H, Hkv, T, S } = dims;
  const keep: Tensor[] = [];
  if (opts.keyMask !== undefined) {
    dims.keyMask = opts.keyMask.offset;
    keep.push(opts.keyMask);
  }
  if (opts.alibiSlopes !== undefined) {
    const slopes = Tensor.from(opts.alibiSlopes, [H], "f32");
    dims.slopes = slopes.offset;
    keep.push(slopes);
  }
  if (opts.dropout !== undefined && opts.dropout.p > 0) {
    dims.dropout = { p: opts.dropout.p, stream: opts.dropout.rng.reserve(B * H * T * S) };
  }

  const out = Tensor.empty(q.shape);
  // [B, H, T] log-sum-exp of each score row, so backward can recompute the probabilities.
  const lse = Tensor.empty([B, H, T]);
  if (out.size > 0) attentionForwardF32(q.offset, k.offset, v.offset, out.offset, lse.offset, dims);

  return record(
    out,
    "attention",
    [q, k, v],
    (gradOut, needs) => {
      for (const t of keep) t.assertAlive("attention backward");
      if (dims.keyStride !== S) {
        throw new Error(
          `attention backward: keyLength ${S} is less than the ${dims.keyStride} positions of k; ` +
            `gradients need k and v of exactly S positions, so slice the cache or run under noGrad`,
        );
      }
      const dq = Tensor.empty(q.shape);
      const dk = Tensor.empty([B, Hkv, S, dims.D]);
      const dv = Tensor.empty([B, Hkv, S, dims.D]);
      const delta = Tensor.empty([B, H, T]);
      attentionBackwardF32(
        q.offset,
        k.offset,
        v.offset,
        out.offset,
        gradOut.offset,
        lse.offset,
        delta.offset,
        dq.offset,
        dk.offset,
        dv.offset,
        dims,
        needs[1] || needs[2],
      );
      return [dq, dk, dv];
    },
    [q, k, v, out, lse, ...keep],
  );
}

function checkAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionDims {
  expectDtype("attention", "q", q, "f32");
  expectDtype("attention", "k", k, "f32");
  expectDtype("attention", "v", v, "f32");
  expectRank("attention", "q [B, H, T, D]", q, 4);
  expectRank("attention", "k [B, Hkv, S, D]", k, 4);
  expectRank("attention", "v [B, Hkv, S, D]", v, 4);

  const [B, H, T, D] = q.shape;
  const [Bk, Hkv, capacity, Dk] = k.shape;
  const S = opts.keyLength ?? capacity;
  if (!Number.isInteger(S) || S < 0 || S > capacity) {
    throw new Error(
      `attention: keyLength must be a whole number from 0 to the ${capacity} positions of ` +
        `k ${formatShape(k.shape)}, got ${S}`,
    );
  }
  if (v.shape.some((d, i) => d !== k.shape[i])) {
    throw new Error(
      `attention: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must have the same shape`,
    );
  }

  if (Bk !== B || Dk !== D) {
    throw new Error(
      `attention: k ${formatShape(k.shape)} must be [B, Hkv, S, D] with B = ${B} and D = ${D} ` +
        `from q ${formatShape(q.shape)}`,
    );
  }

  if (Hkv === 0 || H % Hkv !== 0) {
    throw new Error(
      `attention: the ${H} query heads must be a multiple of the ${Hkv} KV heads ` +
        `(q ${formatShape(q.shape)}, k ${formatShape(k.shape)})`,
    );
  }

  if (S < T) {
    throw new Error(
      `attention: k has ${S} positions but q has ${T}; the queries must be the last T of S >= T ` +
        `key positions`,
    );
  }

  if (opts.keyMask !== undefined) {
    const m = opts.keyMask;
    expectDtype("attention", "keyMask", m, "i32", "f32");
    if (m.ndim !== 2 || m.shape[0] !== B || m.shape[1] !== S) {
      throw new Error(
        `attention: keyMask must be [B, S] = [${B}, ${S}], got ${formatShape(m.shape)}`,
      );
    }
  }

  if (opts.alibiSlopes !== undefined && opts.alibiSlopes.length !== H) {
    throw new Error(
      `attention: alibiSlopes must have one slope per query head (${H}), got ${opts.alibiSlopes.length}`,
    );
  }

  const p = opts.dropout?.p ?? 0;
  if (!(p >= 0 && p < 1)) {
    throw new Error(`attention: dropout probability must be in [0, 1), got ${p}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) {
    throw new Error(`attention: scale must be a finite number, got ${scale}`);
  }
  const keyStride = capacity;
  return { B, H, Hkv, T, S, keyStride, D, scale, causal: opts.causal, keyMask: 0, slopes: 0 };
}

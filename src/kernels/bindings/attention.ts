// Bindings to the attention kernels: the row-by-row ones in wasm/attention.ts and
// wasm/attention-backward.ts, and the blocked-product ones in wasm/attention-tiled.ts. Offsets
// are bytes into the shared memory; 0 means "absent" for the optional keyMask and slopes.
// Callers check shapes and dtypes.
import type { RngStream } from "../../engine/random.js";
import { getPool } from "../pool.js";
import { getRuntime } from "../runtime.js";
import { GEMM_SERIAL_MADDS, warmUpGemm } from "./gemm.js";
import { withKernelScratch } from "./scratch.js";

/** Sizes and options shared by the forward and backward kernels. */
export interface AttentionDims {
  /** Batch size. */
  B: number;
  /** Query heads. */
  H: number;
  /** Key/value heads; H must be a multiple. */
  Hkv: number;
  /** Query rows: the last T of the S key positions. */
  T: number;
  /** Key positions. */
  S: number;
  /**
   * Positions between consecutive KV heads in k and v: S (the default) for [B, Hkv, S, D], or
   * the capacity of a KV cache buffer [B, Hkv, capacity, D] whose first S positions are read.
   * The forward kernel only: backward needs keyStride = S.
   */
  keyStride?: number;
  /** Head size. */
  D: number;
  /** Multiplies q·k before the ALiBi bias and the masks. */
  scale: number;
  causal: boolean;
  /** Offset of B * S i32 or f32 values (nonzero = real key), or 0 for no key mask. */
  keyMask: number;
  /** Offset of H f32 ALiBi slopes, or 0 for none. */
  slopes: number;
  /**
   * Kernels to run: "tiled" (blocked matrix products) or "rows" (dot products row by row).
   * Without it attentionKernel() picks by T. Forward and backward must use the same.
   */
  kernel?: AttentionKernel;
  /**
   * Dropout of the attention probabilities: each is zeroed with probability p, else scaled by
   * 1 / (1 - p), with masks drawn from `stream` (B·H·T·S words). Only the tiled kernels apply it.
   */
  dropout?: { p: number; stream: RngStream };
}

export type AttentionKernel = "tiled" | "rows";

/**
 * From this many query rows on, the tiled kernels run by default. With fewer rows, as in
 * decoding one token, a block of products would be mostly padding.
 */
export const TILED_MIN_QUERIES = 16;

/**
 * Returns the kernels that run for `d`: d.kernel if set, else "tiled" from TILED_MIN_QUERIES rows
 * or with dropout.
 */
export function attentionKernel(d: AttentionDims): AttentionKernel {
  if (d.kernel === "rows" && d.dropout !== undefined) {
    throw new Error("attention: the row kernels apply no dropout; use the tiled kernels");
  }
  return d.kernel ?? (d.T >= TILED_MIN_QUERIES || d.dropout !== undefined ? "tiled" : "rows");
}

/** Returns the tiled kernels' dropout arguments: threshold, kept scale, key and counter. */
function dropoutArgs(d: AttentionDims): number[] {
  if (d.dropout === undefined || d.dropout.p === 0) return [0, 1, 0, 0, 0, 0];
  const { p, stream } = d.dropout;
  if (!(p > 0 && p < 1)) {
    throw new Error(`attention: dropout probability must be in [0, 1), got ${p}`);
  }
  // Keep element i when (word >>> 8) / 2^24 >= p, as the dropout kernel decides.
  const threshold = Math.ceil(p * 16777216);
  const { key0, key1, counterLo, counterHi } = stream;
  return [threshold, 1 / (1 - p), key0, key1, counterLo, counterHi];
}

/**
 * Returns 1 when the score and output products (B·H·T·S·D multiply-adds each) are small enough
 * that waking a worker costs more than it saves, as in decoding one token; else undefined, the
 * pool's thread count.
 */
function attentionThreads(d: AttentionDims): number | undefined {
  return d.B * d.H * d.T * d.S * d.D < GEMM_SERIAL_MADDS ? 1 : undefined;
}

/** Bytes of scratch per thread for the row kernel of attention forward: two score rows. */
function rowsScratchBytes(S: number): number {
  return 2 * S * 4;
}

/**
 * out [B, H, T, D] = softmax(q kᵀ scale + alibi + masks) v, and lse [B, H, T] = the log-sum-exp
 * of each score row (+inf for a row with no visible key, whose output is zeros).
 */
export function attentionForwardF32(
  q: number,
  k: number,
  v: number,
  out: number,
  lse: number,
  d: AttentionDims,
): void {
  const pool = getPool();
  const threads = attentionThreads(d) ?? pool.threads;
  const sizes = [d.B, d.H, d.Hkv, d.T, d.S, d.keyStride ?? d.S, d.D, d.scale, d.causal ? 1 : 0];
  if (attentionKernel(d) === "tiled") {
    warmUpGemm(pool);
    const bytes = Number(getRuntime().exports.attentionTiledScratchBytes(d.S, 0));
    withKernelScratch(bytes, threads, (scratch, stride) => {
      pool.run(
        "attentionForwardTiledF32",
        [q, k, v, out, lse, d.keyMask, d.slopes, scratch, stride, ...sizes, ...dropoutArgs(d)],
        threads,
      );
    });
    return;
  }
  // The row kernel finds its slice of the scratch by thread index, with a fixed stride.
  withKernelScratch(rowsScratchBytes(d.S) * threads, 1, (scratch) => {
    pool.run(
      "attentionForwardF32",
      [q, k, v, out, lse, d.keyMask, d.slopes, scratch, ...sizes],
      threads,
    );
  });
}

/**
 * Gradients of attention: dq [B, H, T, D], and dk and dv [B, Hkv, S, D] when needKeyValue (else
 * they are left untouched). delta is scratch of B * H * T f32 values. out and lse come from
 * attentionForwardF32 on the same inputs.
 */
export function attentionBackwardF32(
  q: number,
  k: number,
  v: number,
  out: number,
  dout: number,
  lse: number,
  delta: number,
  dq: number,
  dk: number,
  dv: number,
  d: AttentionDims,
  needKeyValue: boolean,
): void {
  if (d.keyStride !== undefined && d.keyStride !== d.S) {
    throw new Error(
      `attentionBackwardF32: keyStride must equal S = ${d.S} (got ${d.keyStride}); ` +
        `backward reads k and v as [B, Hkv, S, D]`,
    );
  }
  const sizes = [d.B, d.H, d.Hkv, d.T, d.S, d.D, d.scale, d.causal ? 1 : 0];
  const pool = getPool();
  const threads = attentionThreads(d) ?? pool.threads;
  if (attentionKernel(d) === "tiled") {
    warmUpGemm(pool);
    const bytes = Number(getRuntime().exports.attentionTiledScratchBytes(d.S, 1));
    withKernelScratch(bytes, threads, (scratch, stride) => {
      pool.run(
        "attentionBackwardTiledF32",
        [q, k, v, out, dout, lse, delta, dq, dk, dv, d.keyMask, d.slopes, scratch, stride].concat(
          sizes,
          dropoutArgs(d),
          [needKeyValue ? 1 : 0],
        ),
        threads,
      );
    });
    return;
  }
  pool.run(
    "attentionBackwardQueryF32",
    [q, k, v, out, dout, lse, delta, dq, d.keyMask, d.slopes, ...sizes],
    threads,
  );
  if (!needKeyValue) return;
  pool.run(
    "attentionBackwardKeyValueF32",
    [q, k, v, dout, lse, delta, dk, dv, d.keyMask, d.slopes, ...sizes],
    threads,
  );
}

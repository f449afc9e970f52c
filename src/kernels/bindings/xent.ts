// Bindings to the cross-entropy kernels in wasm/xent.ts. Arguments are byte offsets into the
// shared memory and sizes; callers check shapes, dtypes and label ranges.
import { getPool } from "../pool.js";

/**
 * For N rows of V f32 logits and N i32 labels: loss[r] = logsumexp(logits[r]) - logits[r, label]
 * (0 when the label is ignoreIndex). stats [N, 2] gets each row's max m and log(sum(exp(x - m))),
 * which the backward kernel reads. When grad is nonzero it also gets gradScale * (softmax -
 * onehot), zeros for ignored rows; grad may alias logits.
 */
export function crossEntropyForwardF32(
  logits: number,
  labels: number,
  loss: number,
  stats: number,
  grad: number,
  N: number,
  V: number,
  ignoreIndex: number,
  gradScale: number,
): void {
  getPool().run("crossEntropyForwardF32", [
    logits,
    labels,
    loss,
    stats,
    grad,
    N,
    V,
    ignoreIndex,
    gradScale,
  ]);
}

/** grad = gradScale * (softmax(logits) - onehot(labels)) from the forward stats; may alias logits. */
export function crossEntropyBackwardF32(
  logits: number,
  labels: number,
  stats: number,
  grad: number,
  N: number,
  V: number,
  ignoreIndex: number,
  gradScale: number,
): void {
  getPool().run("crossEntropyBackwardF32", [
    logits,
    labels,
    stats,
    grad,
    N,
    V,
    ignoreIndex,
    gradScale,
  ]);
}

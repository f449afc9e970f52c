// Cross-entropy fused with log-softmax over rows of logits (linear-xent.ts fuses it with the
// output projection as well). Shapes: N rows (tokens), V vocabulary.
//
// Rows whose label is ignoreIndex (-100 by default) count neither in the sum nor in the mean. When
// every label is ignored, the mean is defined as 0 with a zero gradient (torch gives NaN). This
// way a micro-batch whose targets were all truncated away does not poison gradient accumulation.
// crossEntropySum and linearCrossEntropySum report count 0 for such a batch. linear-xent.ts
// follows the same rules.
import { crossEntropyBackwardF32, crossEntropyForwardF32 } from "../../kernels/bindings/xent.js";
import { record } from "../tape.js";
import { formatShape, Tensor } from "../tensor.js";
import { expectDtype } from "./check.js";

export interface CrossEntropyOptions {
  /** Label value whose rows are skipped. Default -100, as in torch and transformers. */
  ignoreIndex?: number;
}

/** The summed loss over rows whose label is not ignored, and how many such rows there were. */
export interface LossSum {
  sum: number;
  count: number;
}

export const DEFAULT_IGNORE_INDEX = -100;

/**
 * Returns the mean cross-entropy of logits [..., V] against labels i32 [...] over the rows whose
 * label is not ignoreIndex, as a scalar. Backward to logits.
 */
export function crossEntropy(
  logits: Tensor,
  labels: Tensor,
  opts: CrossEntropyOptions = {},
): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX;
  const { N, V } = checkLogits("crossEntropy", logits, labels);
  const count = checkLabels("crossEntropy", labels, V, ignoreIndex);
  const { rowLoss, stats } = rowLosses(logits, labels, N, V, ignoreIndex);
  const out = Tensor.from([meanOf(rowLoss, count)], []);

  return record(
    out,
    "crossEntropy",
    [logits],
    (gradOut) => {
      const grad = Tensor.empty(logits.shape);
      const gradScale = count === 0 ? 0 : gradOut.item() / count;
      if (N > 0) {
        crossEntropyBackwardF32(
          logits.offset,
          labels.offset,
          stats.offset,
          grad.offset,
          N,
          V,
          ignoreIndex,
          gradScale,
        );
      }
      return [grad];
    },
    [logits, labels, stats],
  );
}

/** Returns the summed cross-entropy and the count of rows not ignored, without gradients. */
export function crossEntropySum(
  logits: Tensor,
  labels: Tensor,
  opts: CrossEntropyOptions = {},
): LossSum {
  const ignoreIndex = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX;
  const { N, V } = checkLogits("crossEntropySum", logits, labels);
  const count = checkLabels("crossEntropySum", labels, V, ignoreIndex);
  const { rowLoss } = rowLosses(logits, labels, N, V, ignoreIndex);
  return { sum: sumOf(rowLoss), count };
}

/** Returns the per-row losses [N] and log-sum-exp statistics [N, 2] of logits [N, V]. */
function rowLosses(
  logits: Tensor,
  labels: Tensor,
  N: number,
  V: number,
  ignoreIndex: number,
): { rowLoss: Tensor; stats: Tensor } {
  const rowLoss = Tensor.empty([N]);
  const stats = Tensor.empty([N, 2]);
  if (N > 0) {
    const { offset } = logits;
    crossEntropyForwardF32(
      offset,
      labels.offset,
      rowLoss.offset,
      stats.offset,
      0,
      N,
      V,
      ignoreIndex,
      0,
    );
  }
  return { rowLoss, stats };
}

/** Returns the sum of the per-row losses [N]. */
export function sumOf(rowLoss: Tensor): number {
  // Summed in f64, in row order, so the result does not depend on the thread count.
  let sum = 0;
  for (const x of rowLoss.f32()) sum += x;
  return sum;
}

function meanOf(rowLoss: Tensor, count: number): number {
  return count === 0 ? 0 : sumOf(rowLoss) / count;
}

function checkLogits(op: string, logits: Tensor, labels: Tensor): { N: number; V: number } {
  expectDtype(op, "logits", logits, "f32");
  expectDtype(op, "labels", labels, "i32");
  if (logits.ndim < 2) {
    throw new Error(`${op}: logits must be [N, V] or [..., V], got ${formatShape(logits.shape)}`);
  }
  const lead = logits.shape.slice(0, -1);
  if (labels.ndim !== lead.length || labels.shape.some((d, i) => d !== lead[i])) {
    throw new Error(
      `${op}: labels ${formatShape(labels.shape)} must have the leading shape ` +
        `${formatShape(lead)} of logits ${formatShape(logits.shape)}`,
    );
  }
  return { N: labels.size, V: logits.shape[logits.ndim - 1] };
}

/** Checks every label is in [0, V) or ignoreIndex and returns how many are not ignored. */
export function checkLabels(op: string, labels: Tensor, V: number, ignoreIndex: number): number {
  const data = labels.i32();
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const y = data[i];
    if (y === ignoreIndex) continue;
    if (y < 0 || y >= V) {
      throw new Error(
        `${op}: label ${y} at row ${i} is outside [0, ${V}) and is not ignoreIndex ${ignoreIndex}`,
      );
    }
    count++;
  }
  return count;
}

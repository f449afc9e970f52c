// linearCrossEntropy: cross-entropy of h Wᵀ computed chunk by chunk, so that a [tokens × vocab]
// logits matrix never exists whole. Shapes: N rows (tokens), C channels, V vocabulary. Ignored
// labels and the all-ignored case follow the rules of xent.ts.
import { gemm, matrixOperand, type GemmDType } from "../../kernels/bindings/gemm.js";
import { crossEntropyForwardF32 } from "../../kernels/bindings/xent.js";
import { isGradEnabled, record } from "../tape.js";
import { closeScratchScope, formatShape, openScratchScope, Tensor } from "../tensor.js";
import { expectDtype } from "./check.js";
import {
  checkLabels,
  DEFAULT_IGNORE_INDEX,
  sumOf,
  type CrossEntropyOptions,
  type LossSum,
} from "./xent.js";

export interface LinearCrossEntropyOptions extends CrossEntropyOptions {
  /** Rows of logits computed at a time. Default: equal chunks of at most chunkLogits logits. */
  chunkRows?: number;
  /** Logits per chunk when chunkRows is not given (default 16 Mi, 64 MiB of f32). */
  chunkLogits?: number;
  /** Layout of weight: "outIn" = [V, C] like nn.Linear and tied embeddings (the only one). */
  layout?: "outIn";
}

// Default logits per chunk (f32 values, 64 MiB). Each chunk's GEMMs pack the whole weight again,
// so larger chunks cost less time. Going from 32 to 64 MiB saved about 6% of the CPU time for
// GPT-2's vocabulary (512 rows, C 768, bf16 weight, 2 threads, measured on a shared 2-core
// machine).
export const CHUNK_LOGITS = 16 * 1024 * 1024;

/**
 * Returns the mean cross-entropy of h Wᵀ against labels, for h [N, C] f32, weight [V, C] (f32,
 * bf16 or f16) and labels i32 [N], computing chunkRows rows of logits at a time. The gradients
 * for h (and for weight when it requires one) are computed chunk by chunk during the forward
 * pass, and backward scales them by the upstream gradient. Under noGrad none are computed.
 */
export function linearCrossEntropy(
  h: Tensor,
  weight: Tensor,
  labels: Tensor,
  opts: LinearCrossEntropyOptions = {},
): Tensor {
  const needH = isGradEnabled() && h.needsGrad;
  const needW = isGradEnabled() && weight.needsGrad;
  const result = runLinearCrossEntropy("linearCrossEntropy", h, weight, labels, opts, needH, needW);
  const out = Tensor.from([result.count === 0 ? 0 : result.sum / result.count], []);

  return record(
    out,
    "linearCrossEntropy",
    [h, weight],
    (gradOut, needs) => {
      const g = gradOut.item();
      return [
        needs[0] ? scaled(result.dh, g, "h") : null,
        needs[1] ? scaled(result.dW, g, "weight") : null,
      ];
    },
    [result.dh, result.dW],
  );
}

/** Returns the summed loss of h Wᵀ against labels and the count of rows not ignored. */
export function linearCrossEntropySum(
  h: Tensor,
  weight: Tensor,
  labels: Tensor,
  opts: LinearCrossEntropyOptions = {},
): LossSum {
  const { sum, count } = runLinearCrossEntropy(
    "linearCrossEntropySum",
    h,
    weight,
    labels,
    opts,
    false,
    false,
  );
  return { sum, count };
}

interface LinearCrossEntropyResult extends LossSum {
  /** Gradient of the mean loss for h [N, C], when requested. */
  dh: Tensor | null;
  /** Gradient of the mean loss for weight [V, C] in f32, when requested. */
  dW: Tensor | null;
}

function runLinearCrossEntropy(
  op: string,
  h: Tensor,
  weight: Tensor,
  labels: Tensor,
  opts: LinearCrossEntropyOptions,
  needH: boolean,
  needW: boolean,
): LinearCrossEntropyResult {
  const { N, C, V } = checkLinear(op, h, weight, labels, opts);
  const ignoreIndex = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX;
  checkLabels(op, labels, V, ignoreIndex);
  const chunkLogits = opts.chunkLogits ?? CHUNK_LOGITS;
  if (!Number.isInteger(chunkLogits) || chunkLogits < 1) {
    throw new Error(`${op}: chunkLogits must be a whole number of at least 1, got ${chunkLogits}`);
  }
  const chunkRows = opts.chunkRows ?? Math.max(1, Math.floor(chunkLogits / Math.max(V, 1)));
  if (!Number.isInteger(chunkRows) || chunkRows < 1) {
    throw new Error(`${op}: chunkRows must be a whole number of at least 1, got ${chunkRows}`);
  }
  const dh = needH ? Tensor.zeros([N, C]) : null;
  const dW = needW ? Tensor.zeros([V, C]) : null;

  // Ignored rows contribute no loss and no gradient, so only the others go through the
  // projection. With loss masks on prompts that skips most of the [N, V] GEMMs.
  const kept = keptRows(labels.i32(), ignoreIndex);
  const count = kept.length;
  if (count === 0) return { sum: 0, count, dh, dW };

  // Everything below is temporary. It comes from the heap and is freed on return, so backward
  // can reuse the space of the logits chunk.
  const scope = openScratchScope();
  try {
    const compact = count < N;
    const hKept = compact ? gatherRows(h, kept) : h;
    const labelsKept = compact
      ? Tensor.from(
          labels.i32().filter((y) => y !== ignoreIndex),
          [count],
        )
      : labels;
    const dhKept = dh !== null && compact ? Tensor.empty([count, C]) : dh;
    // The default splits the kept rows into equal chunks: a short last chunk (21 of 1020 rows for
    // GPT-2) would run its [rows, V] GEMMs at under half the GFLOP/s of the others.
    const rowsPerChunk =
      opts.chunkRows ?? Math.ceil(count / Math.ceil(count / Math.min(chunkRows, count)));
    const sum = chunkedLoss(hKept, weight, labelsKept, { chunkRows: rowsPerChunk, dh: dhKept, dW });
    if (dh !== null && dhKept !== null && compact) scatterRows(dhKept, kept, dh);
    return { sum, count, dh, dW };
  } finally {
    closeScratchScope(scope, new Set());
  }
}

/**
 * Returns the summed loss of h Wᵀ against labels (none ignored), computing chunkRows rows of
 * logits at a time. Writes the gradient of the loss divided by N rows into dh and adds the
 * weight's into dW, when they are given.
 */
function chunkedLoss(
  h: Tensor,
  weight: Tensor,
  labels: Tensor,
  { chunkRows, dh, dW }: { chunkRows: number; dh: Tensor | null; dW: Tensor | null },
): number {
  const [N, C] = h.shape;
  const V = weight.shape[0];
  const wDtype = weight.dtype as GemmDType;
  const wantGrad = dh !== null || dW !== null;
  const rowLoss = Tensor.empty([N]);
  const stats = Tensor.empty([N, 2]);
  const chunk = Tensor.empty([Math.min(chunkRows, N), V]);
  for (let start = 0; start < N; start += chunkRows) {
    const rows = Math.min(chunkRows, N - start);
    const hOffset = h.offset + start * C * 4;
    // logits [rows, V] = h[start:start+rows] [rows, C] · weightᵀ [C, V].
    gemm({
      a: matrixOperand(hOffset, rows, C),
      b: matrixOperand(weight.offset, V, C, true),
      bDtype: wDtype,
      c: matrixOperand(chunk.offset, rows, V),
      m: rows,
      n: V,
      k: C,
      batch: 1,
    });
    // Per-row loss and log-sum-exp. With gradients, the logits turn into dLoss/dlogits in place.
    crossEntropyForwardF32(
      chunk.offset,
      labels.offset + start * 4,
      rowLoss.offset + start * 4,
      stats.offset + start * 8,
      wantGrad ? chunk.offset : 0,
      rows,
      V,
      DEFAULT_IGNORE_INDEX,
      1 / N,
    );
    if (dh !== null) {
      // dh rows [rows, C] = dlogits [rows, V] · weight [V, C].
      gemm({
        a: matrixOperand(chunk.offset, rows, V),
        b: matrixOperand(weight.offset, V, C),
        bDtype: wDtype,
        c: matrixOperand(dh.offset + start * C * 4, rows, C),
        m: rows,
        n: C,
        k: V,
        batch: 1,
      });
    }
    if (dW !== null) {
      // dW [V, C] += dlogitsᵀ [V, rows] · h rows [rows, C].
      gemm({
        a: matrixOperand(chunk.offset, rows, V, true),
        b: matrixOperand(hOffset, rows, C),
        bDtype: "f32",
        c: matrixOperand(dW.offset, V, C),
        m: V,
        n: C,
        k: rows,
        batch: 1,
        accumulate: true,
      });
    }
  }
  return sumOf(rowLoss);
}

/** Returns the indices of the rows whose label is not ignoreIndex. */
function keptRows(labels: Int32Array, ignoreIndex: number): Int32Array {
  const kept: number[] = [];
  labels.forEach((y, i) => {
    if (y !== ignoreIndex) kept.push(i);
  });
  return Int32Array.from(kept);
}

/** Returns the rows `indices` of x [N, C] as a new [indices.length, C] tensor. */
function gatherRows(x: Tensor, indices: Int32Array): Tensor {
  const C = x.shape[1];
  const out = Tensor.empty([indices.length, C]);
  const src = x.f32();
  const dst = out.f32();
  indices.forEach((row, i) => dst.set(src.subarray(row * C, row * C + C), i * C));
  return out;
}

/** Copies row i of x into row indices[i] of out. */
function scatterRows(x: Tensor, indices: Int32Array, out: Tensor): void {
  const C = x.shape[1];
  const src = x.f32();
  const dst = out.f32();
  indices.forEach((row, i) => dst.set(src.subarray(i * C, i * C + C), row * C));
}

/** Returns g * t, reusing t when g is 1 (the usual case: the loss is the root of backward). */
function scaled(t: Tensor | null, g: number, inputName: string): Tensor {
  if (t === null) {
    throw new Error(
      `linearCrossEntropy backward: the gradient for ${inputName} was not computed in the ` +
        `forward pass, which computes it only when gradients are enabled and ${inputName} ` +
        `requires a gradient at that time`,
    );
  }
  if (g === 1) return t;
  const out = Tensor.empty(t.shape);
  const src = t.f32();
  const dst = out.f32();
  const gf = Math.fround(g);
  for (let i = 0; i < src.length; i++) dst[i] = src[i] * gf;
  return out;
}

function checkLinear(
  op: string,
  h: Tensor,
  weight: Tensor,
  labels: Tensor,
  opts: LinearCrossEntropyOptions,
): { N: number; C: number; V: number } {
  expectDtype(op, "h", h, "f32");
  expectDtype(op, "weight", weight, "f32", "bf16", "f16");
  expectDtype(op, "labels", labels, "i32");
  if (opts.layout !== undefined && opts.layout !== "outIn") {
    throw new Error(
      `${op}: layout "${String(opts.layout)}" is not supported; weight must be [V, C] ("outIn")`,
    );
  }
  if (h.ndim !== 2 || weight.ndim !== 2 || labels.ndim !== 1) {
    throw new Error(
      `${op}: expected h [N, C], weight [V, C] and labels [N], got h ${formatShape(h.shape)}, ` +
        `weight ${formatShape(weight.shape)} and labels ${formatShape(labels.shape)}`,
    );
  }
  const [N, C] = h.shape;
  const [V, Cw] = weight.shape;
  if (Cw !== C || labels.shape[0] !== N) {
    throw new Error(
      `${op}: shapes do not match: h ${formatShape(h.shape)}, weight ${formatShape(weight.shape)} ` +
        `(must be [V, ${C}]), labels ${formatShape(labels.shape)} (must be [${N}])`,
    );
  }
  return { N, C, V };
}

// Cross-entropy over rows of logits, fused with log-softmax. Shapes: logits [N, V] f32, labels
// [N] i32. Threads split the rows; each row is computed the same way on any thread count.
import { partEnd, partStart } from "./split";
import { expF32, expF32x4, expShiftSumF32, rowMaxF32, sumExpShiftF32 } from "./simdmath";

// The log-sum-exp of a row is kept as two f32 values, the row max m and log(sum(exp(x - m))):
// with logits near 1e4 a single f32 lse is off by up to 5e-4, and so would be the loss.

/**
 * Per-row loss and log-sum-exp, and optionally the gradient. loss[r] = lse(logits[r]) -
 * logits[r, label] (0 for label == ignoreIndex). stats[2r] = max(logits[r]) and stats[2r + 1] =
 * log(sum(exp(logits[r] - max))), both 0 for ignored rows, which are skipped. When grad is
 * nonzero it gets gradScale * (softmax(logits[r]) - onehot(label)), and zeros for ignored rows.
 * grad may alias logits. logits, labels, loss, stats, grad: offsets. Labels must be in [0, V) or
 * ignoreIndex.
 */
export function crossEntropyForwardF32(
  logits: usize,
  labels: usize,
  loss: usize,
  stats: usize,
  grad: usize,
  N: i32,
  V: i32,
  ignoreIndex: i32,
  gradScale: f32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(N, 1, tid, nt);
  const end = partEnd(N, 1, tid, nt);
  const rowBytes = (<usize>V) << 2;
  for (let r = start; r < end; r++) {
    const xr = logits + <usize>r * rowBytes;
    const g = grad + <usize>r * rowBytes;
    const label = load<i32>(labels + ((<usize>r) << 2));
    const statsRow = stats + ((<usize>r) << 3);
    if (label == ignoreIndex) {
      store<f32>(statsRow, 0);
      store<f32>(statsRow + 4, 0);
      store<f32>(loss + ((<usize>r) << 2), 0);
      if (grad != 0) memory.fill(g, 0, rowBytes);
      continue;
    }

    const m = rowMaxF32(xr, V);
    // Read before the gradient may overwrite the row.
    const target = load<f32>(xr + ((<usize>label) << 2));
    // With a gradient, exp(x - m) goes to the gradient row and is scaled below, so each
    // element needs one exp.
    const sum = grad != 0 ? expShiftSumF32(xr, g, V, m) : sumExpShiftF32(xr, V, m);
    const logSum = Mathf.log(sum);
    store<f32>(statsRow, m);
    store<f32>(statsRow + 4, logSum);
    store<f32>(loss + ((<usize>r) << 2), m - target + logSum);
    if (grad != 0) {
      scaleRow(g, V, gradScale / sum);
      const gl = g + ((<usize>label) << 2);
      store<f32>(gl, load<f32>(gl) - gradScale);
    }
  }
}

/** x[i] *= scale for n f32 values. */
function scaleRow(x: usize, n: i32, scale: f32): void {
  const vs = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), vs));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    store<f32>(x + o, load<f32>(x + o) * scale);
  }
}

/**
 * grad[r] = gradScale * (softmax(logits[r]) - onehot(label)) from the stats of the forward pass,
 * and zeros for ignored rows. grad may alias logits.
 */
export function crossEntropyBackwardF32(
  logits: usize,
  labels: usize,
  stats: usize,
  grad: usize,
  N: i32,
  V: i32,
  ignoreIndex: i32,
  gradScale: f32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(N, 1, tid, nt);
  const end = partEnd(N, 1, tid, nt);
  const rowBytes = (<usize>V) << 2;
  for (let r = start; r < end; r++) {
    const label = load<i32>(labels + ((<usize>r) << 2));
    const ignored = label == ignoreIndex;
    writeGradRow(
      logits + <usize>r * rowBytes,
      grad + <usize>r * rowBytes,
      V,
      load<f32>(stats + ((<usize>r) << 3)),
      load<f32>(stats + ((<usize>r) << 3) + 4),
      ignored ? -1 : label,
      ignored ? 0 : gradScale,
    );
  }
}

/**
 * g[i] = scale * (exp(x[i] - m - logSum) - (i == label)). label -1 means no target; scale 0
 * gives zeros.
 */
function writeGradRow(
  x: usize,
  g: usize,
  V: i32,
  m: f32,
  logSum: f32,
  label: i32,
  scale: f32,
): void {
  if (scale == 0) {
    memory.fill(g, 0, (<usize>V) << 2);
    return;
  }
  const vm = f32x4.splat(m);
  const vl = f32x4.splat(logSum);
  const vs = f32x4.splat(scale);
  let i = 0;
  for (; i + 4 <= V; i += 4) {
    const o = (<usize>i) << 2;
    const shifted = f32x4.sub(f32x4.sub(v128.load(x + o), vm), vl);
    v128.store(g + o, f32x4.mul(expF32x4(shifted), vs));
  }
  for (; i < V; i++) {
    const o = (<usize>i) << 2;
    store<f32>(g + o, expF32(load<f32>(x + o) - m - logSum) * scale);
  }
  if (label >= 0) {
    const o = (<usize>label) << 2;
    store<f32>(g + o, load<f32>(g + o) - scale);
  }
}

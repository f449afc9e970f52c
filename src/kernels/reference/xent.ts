// Reference cross-entropy: plain f64 loops, the oracle for wasm/xent.ts. logits [N, V], labels [N].

export interface CrossEntropyRef {
  /** Per-row loss, 0 for ignored rows. */
  losses: Float64Array;
  /** Sum of the losses of rows whose label is not ignoreIndex. */
  sum: number;
  /** Rows whose label is not ignoreIndex. */
  count: number;
  /** Gradient of sum / count with respect to the logits (zeros when count is 0). */
  grad: Float64Array;
}

export function crossEntropyRef(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  N: number,
  V: number,
  ignoreIndex = -100,
): CrossEntropyRef {
  const losses = new Float64Array(N);
  const grad = new Float64Array(N * V);
  let count = 0;
  for (let r = 0; r < N; r++) if (labels[r] !== ignoreIndex) count++;
  let sum = 0;
  for (let r = 0; r < N; r++) {
    if (labels[r] === ignoreIndex) continue;
    let m = -Infinity;
    for (let c = 0; c < V; c++) m = Math.max(m, logits[r * V + c]);
    let z = 0;
    for (let c = 0; c < V; c++) z += Math.exp(logits[r * V + c] - m);
    const lse = m + Math.log(z);
    losses[r] = lse - logits[r * V + labels[r]];
    sum += losses[r];
    for (let c = 0; c < V; c++) {
      const onehot = c === labels[r] ? 1 : 0;
      grad[r * V + c] = (Math.exp(logits[r * V + c] - lse) - onehot) / count;
    }
  }
  return { losses, sum, count, grad };
}

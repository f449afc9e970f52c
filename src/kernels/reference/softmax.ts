// Reference softmax: plain f64 loops, the oracle for wasm/softmax.ts.

/** Returns softmax over each of `rows` rows of `cols` values. */
export function softmaxRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) {
      out[r * cols + c] = Math.exp(x[r * cols + c] - m);
      sum += out[r * cols + c];
    }
    for (let c = 0; c < cols; c++) out[r * cols + c] /= sum;
  }
  return out;
}

/** Returns dx = y * (dy - rowsum(dy * y)) from the softmax output y. */
export function softmaxBackwardRef(
  y: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  cols: number,
): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += y[r * cols + c] * dy[r * cols + c];
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - dot);
  }
  return dx;
}

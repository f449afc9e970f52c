// Reference RMSNorm and LayerNorm over the last dimension of [rows, c] arrays, written straight
// from the definitions. Gradients are checked by finite differences, so only forwards live here.
import type { NumberArray } from "./elementwise.js";

/** out = x / sqrt(mean(x^2) + eps) * w per row. */
export function rmsNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  c: number,
  eps: number,
  out: NumberArray,
): void {
  const rows = x.length / c;
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < c; j++) ss += x[r * c + j] ** 2;
    const rstd = 1 / Math.sqrt(ss / c + eps);
    for (let j = 0; j < c; j++) out[r * c + j] = x[r * c + j] * rstd * w[j];
  }
}

/** out = (x - mean) / sqrt(var + eps) * w + b per row, biased variance; b may be null. */
export function layerNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  c: number,
  eps: number,
  out: NumberArray,
): void {
  const rows = x.length / c;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < c; j++) s += x[r * c + j];
    const mean = s / c;
    let v = 0;
    for (let j = 0; j < c; j++) v += (x[r * c + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / c + eps);
    for (let j = 0; j < c; j++) {
      out[r * c + j] = (x[r * c + j] - mean) * rstd * w[j] + (b === null ? 0 : b[j]);
    }
  }
}

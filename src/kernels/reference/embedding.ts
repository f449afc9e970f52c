// Reference embedding gather and scatter-add.
import type { NumberArray } from "./elementwise.js";

/** out[t, :] = w[ids[t], :] for w [vocab, c] given as numbers. */
export function gatherRowsRef(
  w: ArrayLike<number>,
  ids: ArrayLike<number>,
  c: number,
  out: NumberArray,
): void {
  for (let t = 0; t < ids.length; t++) {
    for (let j = 0; j < c; j++) out[t * c + j] = w[ids[t] * c + j];
  }
}

/** dw[ids[t], :] += g[t, :]. */
export function scatterAddRowsRef(
  g: ArrayLike<number>,
  ids: ArrayLike<number>,
  c: number,
  dw: NumberArray,
): void {
  for (let t = 0; t < ids.length; t++) {
    for (let j = 0; j < c; j++) dw[ids[t] * c + j] += g[t * c + j];
  }
}

// Bindings to the softmax kernels in wasm/softmax.ts. Arguments are byte offsets into the shared
// memory and sizes; callers check shapes and dtypes.
import { getPool } from "../pool.js";

/** out = softmax(x) over each of `rows` rows of `cols` f32 values; out may alias x. */
export function softmaxF32(x: number, out: number, rows: number, cols: number): void {
  getPool().run("softmaxF32", [x, out, rows, cols]);
}

/** dx = y * (dy - rowsum(dy * y)) from the softmax output y; dx may alias dy. */
export function softmaxBackwardF32(
  y: number,
  dy: number,
  dx: number,
  rows: number,
  cols: number,
): void {
  getPool().run("softmaxBackwardF32", [y, dy, dx, rows, cols]);
}

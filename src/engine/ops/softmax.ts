// Softmax over the last dimension.
import { softmaxBackwardF32, softmaxF32 } from "../../kernels/bindings/softmax.js";
import { record } from "../tape.js";
import { Tensor } from "../tensor.js";
import { expectDtype } from "./check.js";

/** Returns softmax(x) over the last dimension of an f32 tensor of rank 1 or more. */
export function softmax(x: Tensor): Tensor {
  expectDtype("softmax", "x", x, "f32");
  if (x.ndim === 0) {
    throw new Error(`softmax: x must have at least one dimension, got a scalar ${x.describe()}`);
  }
  const cols = x.shape[x.ndim - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = Tensor.empty(x.shape);
  if (rows > 0) softmaxF32(x.offset, out.offset, rows, cols);

  return record(
    out,
    "softmax",
    [x],
    (gradOut) => {
      const dx = Tensor.empty(x.shape);
      if (rows > 0) softmaxBackwardF32(out.offset, gradOut.offset, dx.offset, rows, cols);
      return [dx];
    },
    [out],
  );
}

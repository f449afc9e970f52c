// Inverted dropout: during training each element is zeroed with probability p and the survivors
// are scaled by 1 / (1 - p), so the expected value is unchanged. The mask comes from the Rng's
// counter stream and is regenerated in the backward pass instead of being stored.
import { dropoutF32 } from "../../kernels/bindings/dropout.js";
import type { Rng } from "../random.js";
import { record } from "../tape.js";
import { Tensor } from "../tensor.js";
import { expectDtype } from "./check.js";

/**
 * Returns dropout(x) when `training` is true, and x itself when it is false or p is 0 (then the
 * generator does not advance). p = 1 gives zeros, as torch does.
 */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  expectDtype("dropout", "x", x, "f32");
  if (!(p >= 0 && p <= 1)) {
    throw new Error(`dropout: probability p must be in [0, 1], got ${p}`);
  }
  if (!training || p === 0) return x;
  if (p === 1) {
    const out = Tensor.zeros(x.shape);
    return record(out, "dropout", [x], () => [Tensor.zeros(x.shape)], []);
  }
  const stream = rng.reserve(x.size);
  const out = Tensor.empty(x.shape);
  dropoutF32(x.offset, out.offset, x.size, p, stream);
  return record(
    out,
    "dropout",
    [x],
    (g) => {
      const dx = Tensor.empty(x.shape);
      dropoutF32(g.offset, dx.offset, x.size, p, stream);
      return [dx];
    },
    [],
  );
}

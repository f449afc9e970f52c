// Embedding lookup: rows of a [V, C] table gathered by token id. The table may be a frozen f32,
// bf16 or f16 weight, or a trainable f32 one that receives a scatter-added gradient.
import { gatherRows, scatterAddRows } from "../../kernels/bindings/embedding.js";
import { record } from "../tape.js";
import { Tensor } from "../tensor.js";
import { expectDtype, expectRank } from "./check.js";

/** Throws unless every id is in [0, vocab), naming the first bad one. */
function checkIds(ids: Tensor, vocab: number): void {
  const values = ids.i32();
  for (let i = 0; i < values.length; i++) {
    const id = values[i];
    if (id < 0 || id >= vocab) {
      throw new Error(
        `embedding: ids[${i}] = ${id} is outside the vocabulary [0, ${vocab}) of the weight; ` +
          `check the tokenizer and the model's vocab_size`,
      );
    }
  }
}

/**
 * Returns weight[ids] as f32: weight [V, C] (f32, bf16 or f16), ids i32 [...] → [..., C].
 * Only an f32 weight that needs a gradient receives one; gradients never flow to ids.
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  expectDtype("embedding", "weight", weight, "f32", "bf16", "f16");
  expectDtype("embedding", "ids", ids, "i32");
  expectRank("embedding", "weight", weight, 2);
  const [vocab, c] = weight.shape;
  checkIds(ids, vocab);
  const n = ids.size;
  const out = Tensor.empty([...ids.shape, c]);
  if (weight.dtype !== "f32" && weight.needsGrad) {
    throw new Error(
      `embedding: weight ${weight.describe()} requires a gradient, but only f32 weights can be ` +
        `trained; convert it to f32 or freeze it`,
    );
  }
  gatherRows(weight.offset, weight.dtype as "f32" | "bf16" | "f16", ids.offset, out.offset, n, c);
  return record(
    out,
    "embedding",
    [weight, ids],
    (g, needs) => {
      if (!needs[0]) return [null, null];
      const dw = Tensor.zeros(weight.shape);
      scatterAddRows(g.offset, ids.offset, dw.offset, n, c);
      return [dw, null];
    },
    [ids],
  );
}

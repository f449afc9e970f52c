// The LoRA layer: a Linear hook that adds scaling · dropout(x) A^T B^T to the frozen layer's
// output, for every active adapter that is not merged into the weight (PEFT's lora.Linear).
//
// Legend: N rows of x (any leading dims), I in_features, O out_features, R rank.
import { addLinear, dropout, linear, scale, type Tensor } from "../engine/index.js";
import type { Rng } from "../engine/random.js";
import type { Linear, LinearHook } from "../nn/linear.js";

/** One named adapter on one Linear. A and B are persistent f32 tensors. */
export interface LoraWeights {
  /** lora_A.weight [R, I]. */
  A: Tensor;
  /** lora_B.weight [O, R]. */
  B: Tensor;
  r: number;
  alpha: number;
  /** lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
  scaling: number;
  dropout: number;
}

/** Source of dropout randomness shared by every LoRA layer of a model. */
export interface DropoutSource {
  rng: Rng | null;
}

export class LoraLinear implements LinearHook {
  readonly base: Linear;
  /** The Linear's dotted path in the model, for messages and file keys. */
  readonly path: string;
  readonly adapters = new Map<string, LoraWeights>();
  /** Adapters applied in forward, in order. */
  active: string[] = [];
  /** Adapters currently added into base.weight (their forward term is then skipped). */
  readonly merged = new Set<string>();
  /** When true the layer computes the base output only. */
  disabled = false;
  private readonly dropoutSource: DropoutSource;

  constructor(base: Linear, path: string, dropoutSource: DropoutSource) {
    this.base = base;
    this.path = path;
    this.dropoutSource = dropoutSource;
  }

  /** x [N.., I], base [N.., O] → base + Σ scaling · (dropout(x) A^T) B^T. */
  forward(x: Tensor, base: Tensor): Tensor {
    if (this.disabled) return base;
    let out = base;
    for (const name of this.active) {
      if (this.merged.has(name)) continue;
      const w = this.adapters.get(name);
      if (w === undefined) continue;
      // base is the frozen layer's fresh output, read by nothing else, so B's product is added
      // into its memory in place of two more [N.., O] tensors.
      out = addLinear(out, this.lowRank(x, w), w.B);
    }
    return out;
  }

  /** Returns scaling · dropout(x) A^T [N.., R], the input of lora_B. */
  private lowRank(x: Tensor, w: LoraWeights): Tensor {
    let input = x;
    if (w.dropout > 0 && this.base.training) {
      const rng = this.dropoutSource.rng;
      if (rng === null) {
        throw new Error(
          `LoRA ${this.path}: lora_dropout ${w.dropout} in training mode needs a random ` +
            `generator; pass { rng } to applyLora or loadAdapter`,
        );
      }
      input = dropout(x, w.dropout, rng, true);
    }
    // Scaling the [N, R] intermediate is cheaper than scaling the [N, O] output.
    return scale(linear(input, w.A, null, "outIn"), w.scaling); // [N.., R]
  }
}

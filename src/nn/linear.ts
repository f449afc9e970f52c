// A linear layer y = x W^T + b over the engine's linear op, with a hook where LoRA plugs in.
import { linear, type QuantizedTensor, type Tensor } from "../engine/index.js";
import { Module } from "./module.js";
import { expectParameterShape, newLinearWeight, newParameter, type WeightDType } from "./param.js";

/**
 * Wraps a Linear's output. LoRA sets one: y = hook.forward(x, base) where base is the frozen
 * layer's output linear(x, W, b).
 */
export interface LinearHook {
  forward(x: Tensor, base: Tensor): Tensor;
}

/**
 * Weight layout. "outIn" is torch.nn.Linear's [out, in], and "inOut" is GPT-2's Conv1D [in, out],
 * kept as stored so checkpoints load without a transpose.
 */
export type LinearLayout = "outIn" | "inOut";

export interface LinearOptions {
  bias?: boolean;
  layout?: LinearLayout;
  /** Storage type of the weight (default f32). The bias is always f32. */
  dtype?: WeightDType;
}

export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly layout: LinearLayout;
  readonly inFeatures: number;
  readonly outFeatures: number;
  hook: LinearHook | null = null;
  /**
   * The frozen weight stored as int8 or NF4, set by models/quantize.ts. When set, forward uses it
   * and `weight` is a disposed tensor that only keeps the shape and dtype of the original.
   */
  quantizedWeight: QuantizedTensor | null = null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.layout = options.layout ?? "outIn";
    this.weight = newLinearWeight(this.weightShape(), options.dtype ?? "f32");
    this.bias = (options.bias ?? true) ? newParameter([outFeatures]) : null;
  }

  /** Returns the stored weight shape: [out, in] for "outIn", [in, out] for "inOut". */
  weightShape(): [number, number] {
    return this.layout === "outIn"
      ? [this.outFeatures, this.inFeatures]
      : [this.inFeatures, this.outFeatures];
  }

  /** Applies the layer (and the hook, when set): x [..., in] → [..., out]. */
  forward(x: Tensor): Tensor {
    const base = linear(x, this.quantizedWeight ?? this.weight, this.bias, this.layout);
    return this.hook === null ? base : this.hook.forward(x, base);
  }

  protected override disposeOwnBuffers(): void {
    this.quantizedWeight?.dispose();
    this.quantizedWeight = null;
  }

  protected override ownParameters(): [string, Tensor | null][] {
    return [
      ["weight", this.weight],
      ["bias", this.bias],
    ];
  }

  protected override setOwnParameter(name: string, value: Tensor): void {
    if (name === "weight") {
      expectParameterShape("Linear", name, value, this.weightShape());
      this.weight = value;
    } else if (name === "bias" && this.bias !== null) {
      expectParameterShape("Linear", name, value, [this.outFeatures]);
      this.bias = value;
    } else {
      super.setOwnParameter(name, value);
    }
  }
}

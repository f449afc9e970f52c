// Normalisation layers. Their parameters are small, so they are always kept in f32.
import { layerNorm, rmsNorm, type Tensor } from "../engine/index.js";
import { Module } from "./module.js";
import { expectParameterShape, newParameter } from "./param.js";

/** Llama's RMSNorm: x / sqrt(mean(x^2) + eps) * weight over the last dimension. */
export class RMSNorm extends Module {
  weight: Tensor;
  readonly eps: number;

  constructor(channels: number, eps: number) {
    super();
    this.eps = eps;
    this.weight = newParameter([channels]);
    this.weight.f32().fill(1);
  }

  /** x [..., C] → [..., C]. */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }

  protected override ownParameters(): [string, Tensor | null][] {
    return [["weight", this.weight]];
  }

  protected override setOwnParameter(name: string, value: Tensor): void {
    if (name !== "weight") return super.setOwnParameter(name, value);
    expectParameterShape("RMSNorm", name, value, this.weight.shape);
    this.weight = value;
  }
}

/** LayerNorm with a weight and a bias over the last dimension (GPT-2, BLOOM). */
export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  readonly eps: number;

  constructor(channels: number, eps: number) {
    super();
    this.eps = eps;
    this.weight = newParameter([channels]);
    this.weight.f32().fill(1);
    this.bias = newParameter([channels]);
  }

  /** x [..., C] → [..., C]. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  protected override ownParameters(): [string, Tensor | null][] {
    return [
      ["weight", this.weight],
      ["bias", this.bias],
    ];
  }

  protected override setOwnParameter(name: string, value: Tensor): void {
    if (name !== "weight" && name !== "bias") return super.setOwnParameter(name, value);
    expectParameterShape("LayerNorm", name, value, this.weight.shape);
    if (name === "weight") this.weight = value;
    else this.bias = value;
  }
}

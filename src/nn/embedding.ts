// A lookup table of token (or position) vectors.
import { embedding, type Tensor } from "../engine/index.js";
import { Module } from "./module.js";
import { expectParameterShape, newParameter, type WeightDType } from "./param.js";

export class Embedding extends Module {
  /** The table [numEmbeddings, embeddingDim]; may stay bf16/f16 when frozen. */
  weight: Tensor;
  readonly numEmbeddings: number;
  readonly embeddingDim: number;

  constructor(numEmbeddings: number, embeddingDim: number, dtype: WeightDType = "f32") {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = newParameter([numEmbeddings, embeddingDim], dtype);
  }

  /** Gathers rows: ids i32 [...] → [..., embeddingDim] f32. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }

  protected override ownParameters(): [string, Tensor | null][] {
    return [["weight", this.weight]];
  }

  protected override setOwnParameter(name: string, value: Tensor): void {
    if (name !== "weight") return super.setOwnParameter(name, value);
    expectParameterShape("Embedding", name, value, [this.numEmbeddings, this.embeddingDim]);
    this.weight = value;
  }
}

// The causal language model interface that every architecture implements.
import type { Tensor } from "../engine/index.js";
import type { KVCache } from "../generate/kv-cache.js";
import type { Module } from "../nn/module.js";
import type { WeightDType } from "../nn/param.js";
import type { ModelConfig } from "../io/config.js";

/** Sizes shared by every architecture, whatever its config.json calls them. */
export interface ModelDims {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  /** Maximum sequence length of a learned position table, or null when positions are unbounded. */
  maxPositions: number | null;
  tieWordEmbeddings: boolean;
}

export interface ForwardOptions {
  /** [B, T] or [B, cached + T], 1 = real token, 0 = padding (i32 or f32). */
  attentionMask?: Tensor;
  /** i32 [B, T] or [T]; default 0..T-1 after any cached tokens, or derived from the mask. */
  positions?: Tensor;
  cache?: KVCache | null;
}

export interface LossOptions {
  attentionMask?: Tensor;
  positions?: Tensor;
  /** Label value that contributes no loss (default -100, as in transformers). */
  ignoreIndex?: number;
}

export interface CausalLM extends Module {
  /** The model's config.json; family-specific fields are in `config.raw`. */
  readonly config: ModelConfig;
  readonly modelType: string;
  readonly dims: ModelDims;
  /** Storage type of the weight matrices and embeddings. */
  readonly weightDtype: WeightDType;
  /**
   * The base model's dropout rates in training mode, by config.json key, with transformers'
   * defaults for keys config.json leaves out (GPT-2's are 0.1). Evaluation mode applies none.
   */
  readonly dropoutRates: Readonly<Record<string, number>>;
  /** Token ids i32 [B, T] → hidden states [B, T, C] after the final norm. */
  forward(inputIds: Tensor, options?: ForwardOptions): Tensor;
  /** Hidden states [..., C] → logits [..., V]. */
  logits(hidden: Tensor): Tensor;
  /** The output projection [V, C] (the token embedding when tied), for linearCrossEntropy. */
  lmHeadWeight(): Tensor;
  /** Hugging Face causal-LM loss: logits at t predict labels[t + 1], mean over kept labels. */
  loss(inputIds: Tensor, labels: Tensor, options?: LossOptions): Tensor;
  /** Creates an empty KV cache sized for this model. */
  createCache(batch: number, maxLength: number): KVCache;
}

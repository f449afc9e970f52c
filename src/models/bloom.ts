// BLOOM: ALiBi position biases instead of position embeddings, a LayerNorm right after the
// token embedding, a fused query_key_value projection, a GELU (tanh) MLP and the LM head tied to
// the token embedding.
//
// Legend: B batch, T tokens, C hidden_size, H n_head, D head size, V vocab.
import { add, gelu, reshape, slice, transpose, type Tensor } from "../engine/index.js";
import { freeUnsaved } from "../engine/tape.js";
import { Embedding } from "../nn/embedding.js";
import { Linear } from "../nn/linear.js";
import { Module, ModuleList } from "../nn/module.js";
import { LayerNorm } from "../nn/norm.js";
import type { ModelConfig } from "../io/config.js";
import type { WeightDType } from "../nn/param.js";
import {
  attend,
  CausalLMBase,
  dropoutRates,
  mergeHeads,
  runBlocks,
  trainingDropout,
} from "./base.js";
import { boolOr, numberOr, requireDivisible, requireInt, type RawConfig } from "./config-fields.js";
import { prepareForward, type ForwardContext } from "./context.js";
import type { ForwardOptions, ModelDims } from "./types.js";

/** The config.json fields this implementation reads, with transformers' defaults filled in. */
export interface BloomConfig {
  vocab_size: number;
  hidden_size: number;
  n_layer: number;
  n_head: number;
  layer_norm_epsilon: number;
  apply_residual_connection_post_layernorm: boolean;
  tie_word_embeddings: boolean;
  /** Dropout rates in training: attention and MLP outputs, attention weights (0 by default). */
  dropout: { hidden_dropout: number; attention_dropout: number };
}

export function parseBloomConfig(raw: RawConfig): BloomConfig {
  // Early BLOOM configs call the width n_embed; transformers maps it to hidden_size.
  const hidden = requireInt(raw, "bloom", "hidden_size", "n_embed");
  const heads = requireInt(raw, "bloom", "n_head", "num_attention_heads");
  requireDivisible("bloom", ["hidden_size", hidden], ["n_head", heads]);
  return {
    vocab_size: requireInt(raw, "bloom", "vocab_size"),
    hidden_size: hidden,
    n_layer: requireInt(raw, "bloom", "n_layer", "num_hidden_layers"),
    n_head: heads,
    layer_norm_epsilon: numberOr(raw, "bloom", "layer_norm_epsilon", 1e-5),
    apply_residual_connection_post_layernorm: boolOr(
      raw,
      "bloom",
      "apply_residual_connection_post_layernorm",
      false,
    ),
    tie_word_embeddings: boolOr(raw, "bloom", "tie_word_embeddings", true),
    dropout: dropoutRates(raw, "bloom", { hidden_dropout: 0, attention_dropout: 0 }),
  };
}

/**
 * Returns the ALiBi slope of each head as transformers' build_alibi_tensor computes it: a
 * geometric sequence over the largest power of two n <= heads, starting at 2^(-8/n); the
 * remaining heads take every other term of the sequence for 2n heads.
 */
export function alibiSlopes(heads: number): Float32Array {
  const closest = 2 ** Math.floor(Math.log2(heads));
  const base = 2 ** -(2 ** -(Math.log2(closest) - 3));
  const slopes: number[] = [];
  for (let i = 1; i <= closest; i++) slopes.push(base ** i);
  if (closest !== heads) {
    const extraBase = 2 ** -(2 ** -(Math.log2(2 * closest) - 3));
    const remaining = Math.min(closest, heads - closest);
    for (let i = 1; i < 1 + 2 * remaining; i += 2) slopes.push(extraBase ** i);
  }
  return Float32Array.from(slopes);
}

/** Returns the family-independent sizes of a parsed config. */
export function bloomDims(config: BloomConfig): ModelDims {
  return {
    vocabSize: config.vocab_size,
    hiddenSize: config.hidden_size,
    numLayers: config.n_layer,
    numHeads: config.n_head,
    numKvHeads: config.n_head,
    headDim: config.hidden_size / config.n_head,
    intermediateSize: 4 * config.hidden_size,
    maxPositions: null,
    tieWordEmbeddings: config.tie_word_embeddings,
  };
}

class BloomAttention extends Module {
  readonly queryKeyValue: Linear;
  readonly dense: Linear;
  private readonly heads: number;
  private readonly slopes: Float32Array;
  private readonly dropout: BloomConfig["dropout"];

  constructor(config: BloomConfig, dtype: WeightDType) {
    super();
    const c = config.hidden_size;
    this.heads = config.n_head;
    this.dropout = config.dropout;
    this.slopes = alibiSlopes(config.n_head);
    this.queryKeyValue = this.addModule("query_key_value", new Linear(c, 3 * c, { dtype }));
    this.dense = this.addModule("dense", new Linear(c, c, { dtype }));
  }

  /**
   * x [B, T, C] → [B, T, C]. The fused projection's 3C outputs are grouped per head as
   * [H, (q, k, v), D], unlike GPT-2's [q | k | v].
   */
  forward(x: Tensor, context: ForwardContext, layer: number): Tensor {
    const [batch, tokens, c] = x.shape;
    const h = this.heads;
    const d = c / h;
    const qkv = reshape(this.queryKeyValue.forward(x), [batch, tokens, h, 3, d]);
    const part = (i: number): Tensor =>
      transpose(reshape(slice(qkv, 3, i, i + 1), [batch, tokens, h, d]), 1, 2); // [B, H, T, D]
    // The ALiBi bias slope * key index differs from transformers' slope * (real tokens before
    // the key) by a constant per query row, which softmax cancels.
    const y = attend(context, layer, part(0), part(1), part(2), {
      scale: 1 / Math.sqrt(d),
      alibiSlopes: this.slopes,
      dropout: this.dropout.attention_dropout,
    });
    return trainingDropout(context, this.dense.forward(mergeHeads(y)), this.dropout.hidden_dropout);
  }
}

class BloomMLP extends Module {
  readonly up: Linear;
  readonly down: Linear;
  private readonly hiddenDropout: number;

  constructor(config: BloomConfig, dtype: WeightDType) {
    super();
    const c = config.hidden_size;
    this.hiddenDropout = config.dropout.hidden_dropout;
    this.up = this.addModule("dense_h_to_4h", new Linear(c, 4 * c, { dtype }));
    this.down = this.addModule("dense_4h_to_h", new Linear(4 * c, c, { dtype }));
  }

  forward(x: Tensor, context: ForwardContext): Tensor {
    const y = this.down.forward(gelu(this.up.forward(x), "tanh"));
    return trainingDropout(context, y, this.hiddenDropout);
  }
}

class BloomBlock extends Module {
  readonly inputNorm: LayerNorm;
  readonly attention: BloomAttention;
  readonly postAttentionNorm: LayerNorm;
  readonly mlp: BloomMLP;
  private readonly residualAfterNorm: boolean;

  constructor(config: BloomConfig, dtype: WeightDType) {
    super();
    const { hidden_size: c, layer_norm_epsilon: eps } = config;
    this.inputNorm = this.addModule("input_layernorm", new LayerNorm(c, eps));
    this.attention = this.addModule("self_attention", new BloomAttention(config, dtype));
    this.postAttentionNorm = this.addModule("post_attention_layernorm", new LayerNorm(c, eps));
    this.mlp = this.addModule("mlp", new BloomMLP(config, dtype));
    this.residualAfterNorm = config.apply_residual_connection_post_layernorm;
  }

  /** With apply_residual_connection_post_layernorm the residual is the normed input. */
  forward(x: Tensor, context: ForwardContext, layer: number): Tensor {
    const normed = this.inputNorm.forward(x);
    const attended = add(
      this.residualAfterNorm ? normed : x,
      freeUnsaved(() => this.attention.forward(normed, context, layer)),
    );
    const normed2 = this.postAttentionNorm.forward(attended);
    return add(
      this.residualAfterNorm ? normed2 : attended,
      freeUnsaved(() => this.mlp.forward(normed2, context)),
    );
  }
}

/** The transformer, registered as "transformer". */
class BloomModel extends Module {
  readonly wordEmbeddings: Embedding;
  readonly embeddingNorm: LayerNorm;
  readonly h: ModuleList<BloomBlock>;
  readonly lnF: LayerNorm;

  constructor(config: BloomConfig, dtype: WeightDType) {
    super();
    const { vocab_size: v, hidden_size: c, layer_norm_epsilon: eps } = config;
    this.wordEmbeddings = this.addModule("word_embeddings", new Embedding(v, c, dtype));
    this.embeddingNorm = this.addModule("word_embeddings_layernorm", new LayerNorm(c, eps));
    const blocks: BloomBlock[] = [];
    for (let i = 0; i < config.n_layer; i++) blocks.push(new BloomBlock(config, dtype));
    this.h = this.addModule("h", new ModuleList(blocks));
    this.lnF = this.addModule("ln_f", new LayerNorm(c, eps));
  }
}

export class BloomForCausalLM extends CausalLMBase {
  readonly config: ModelConfig;
  readonly bloomConfig: BloomConfig;
  readonly modelType = "bloom";
  readonly dims: ModelDims;
  readonly weightDtype: WeightDType;
  readonly transformer: BloomModel;
  /** The output projection, or null when tied to transformer.word_embeddings. */
  readonly lmHead: Linear | null;
  readonly dropoutRates: Readonly<Record<string, number>>;

  constructor(modelConfig: ModelConfig, dtype: WeightDType = "f32") {
    super();
    const raw = modelConfig.raw;
    const config = parseBloomConfig(raw);
    this.config = modelConfig;
    this.bloomConfig = config;
    this.weightDtype = dtype;
    this.transformer = this.addModule("transformer", new BloomModel(config, dtype));
    const { vocab_size: v, hidden_size: c } = config;
    this.lmHead = config.tie_word_embeddings
      ? null
      : this.addModule("lm_head", new Linear(c, v, { bias: false, dtype }));
    this.dims = bloomDims(config);
    this.dropoutRates = { ...config.dropout };
  }

  forward(inputIds: Tensor, options: ForwardOptions = {}): Tensor {
    this.throwIfDisposed("bloom.forward");
    const context = prepareForward("bloom.forward", inputIds, options);
    this.setDropoutContext(context);
    const { wordEmbeddings, embeddingNorm, h, lnF } = this.transformer;
    let x = embeddingNorm.forward(wordEmbeddings.forward(inputIds)); // [B, T, C]
    x = runBlocks(h.items, x, (block, hidden, i) => block.forward(hidden, context, i));
    context.cache?.commit();
    return lnF.forward(x);
  }

  lmHeadWeight(): Tensor {
    return this.lmHead?.weight ?? this.transformer.wordEmbeddings.weight;
  }
}

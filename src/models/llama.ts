// Llama-family decoder (Llama, SmolLM, TinyLlama, Mistral, Qwen2): RMSNorm, RoPE, grouped-query
// attention and a SwiGLU MLP. Qwen2 differs only by biases on q/k/v; Mistral by its sliding
// window, which matters only past `sliding_window` tokens.
//
// Legend: B batch, T tokens, C hidden_size, H heads, Hkv KV heads, D head_dim, V vocab.
import { add, rope, swiglu, type Tensor } from "../engine/index.js";
import { freeUnsaved } from "../engine/tape.js";
import { Embedding } from "../nn/embedding.js";
import { Linear } from "../nn/linear.js";
import { Module, ModuleList } from "../nn/module.js";
import { RMSNorm } from "../nn/norm.js";
import type { ModelConfig } from "../io/config.js";
import type { WeightDType } from "../nn/param.js";
import { attend, CausalLMBase, dropoutRates, mergeHeads, runBlocks, splitHeads } from "./base.js";
import {
  boolOr,
  numberOr,
  optionalInt,
  requireDivisible,
  requireInt,
  stringOr,
  type RawConfig,
} from "./config-fields.js";
import { prepareForward, type ForwardContext } from "./context.js";
import { ropeInvFreq } from "./rope.js";
import type { ForwardOptions, ModelDims } from "./types.js";

/** The config.json fields this implementation reads, with transformers' defaults filled in. */
export interface LlamaConfig {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  max_position_embeddings: number | null;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  mlp_bias: boolean;
  /** Number of recent keys each query attends to (Mistral, Qwen2 with use_sliding_window), or null. */
  sliding_window: number | null;
  /** Dropout rate of the attention weights in training (transformers' default is 0). */
  attention_dropout: number;
}

export function parseLlamaConfig(raw: RawConfig): LlamaConfig {
  const family = stringOr(raw, "llama", "model_type", "llama");
  const hidden = requireInt(raw, family, "hidden_size");
  const heads = requireInt(raw, family, "num_attention_heads");
  const kvHeads = optionalInt(raw, family, ["num_key_value_heads"]) ?? heads;
  requireDivisible(family, ["num_attention_heads", heads], ["num_key_value_heads", kvHeads]);
  const headDim = optionalInt(raw, family, ["head_dim"]);
  if (headDim === undefined)
    requireDivisible(family, ["hidden_size", hidden], ["num_attention_heads", heads]);
  const activation = stringOr(raw, family, "hidden_act", "silu");
  if (activation !== "silu") {
    throw new Error(
      `${family} config: hidden_act "${activation}" is not supported yet; expected "silu"`,
    );
  }
  const usesWindow = family === "mistral" || boolOr(raw, family, "use_sliding_window", false);
  return {
    model_type: family,
    vocab_size: requireInt(raw, family, "vocab_size"),
    hidden_size: hidden,
    intermediate_size: requireInt(raw, family, "intermediate_size"),
    num_hidden_layers: requireInt(raw, family, "num_hidden_layers"),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim ?? hidden / heads,
    rms_norm_eps: numberOr(raw, family, "rms_norm_eps", 1e-6),
    max_position_embeddings: optionalInt(raw, family, ["max_position_embeddings"]) ?? null,
    tie_word_embeddings: boolOr(raw, family, "tie_word_embeddings", false),
    attention_bias: boolOr(raw, family, "attention_bias", false),
    mlp_bias: boolOr(raw, family, "mlp_bias", false),
    sliding_window: usesWindow ? (optionalInt(raw, family, ["sliding_window"]) ?? null) : null,
    attention_dropout: dropoutRates(raw, family, { attention_dropout: 0 }).attention_dropout,
  };
}

/** Returns the family-independent sizes of a parsed config. */
export function llamaDims(config: LlamaConfig): ModelDims {
  return {
    vocabSize: config.vocab_size,
    hiddenSize: config.hidden_size,
    numLayers: config.num_hidden_layers,
    numHeads: config.num_attention_heads,
    numKvHeads: config.num_key_value_heads,
    headDim: config.head_dim,
    intermediateSize: config.intermediate_size,
    maxPositions: null,
    tieWordEmbeddings: config.tie_word_embeddings,
  };
}

class LlamaAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  private readonly config: LlamaConfig;
  private readonly invFreq: Float32Array;

  constructor(config: LlamaConfig, invFreq: Float32Array, dtype: WeightDType) {
    super();
    this.config = config;
    this.invFreq = invFreq;
    const {
      hidden_size: c,
      num_attention_heads: h,
      num_key_value_heads: hkv,
      head_dim: d,
    } = config;
    // Qwen2 always has q/k/v biases and no o_proj bias; Llama's attention_bias covers all four.
    const qwen2 = config.model_type === "qwen2";
    const qkvBias = config.attention_bias || qwen2;
    const oBias = config.attention_bias && !qwen2;
    this.q = this.addModule("q_proj", new Linear(c, h * d, { bias: qkvBias, dtype }));
    this.k = this.addModule("k_proj", new Linear(c, hkv * d, { bias: qkvBias, dtype }));
    this.v = this.addModule("v_proj", new Linear(c, hkv * d, { bias: qkvBias, dtype }));
    this.o = this.addModule("o_proj", new Linear(h * d, c, { bias: oBias, dtype }));
  }

  /** x [B, T, C] → [B, T, C]. */
  forward(x: Tensor, context: ForwardContext, layer: number): Tensor {
    const { num_attention_heads: h, num_key_value_heads: hkv, head_dim: d } = this.config;
    const q = rope(splitHeads(this.q.forward(x), h, d), context.positions, this.invFreq); // [B, H, T, D]
    const k = rope(splitHeads(this.k.forward(x), hkv, d), context.positions, this.invFreq); // [B, Hkv, T, D]
    const v = splitHeads(this.v.forward(x), hkv, d); // [B, Hkv, T, D]
    const y = attend(context, layer, q, k, v, {
      scale: 1 / Math.sqrt(d),
      dropout: this.config.attention_dropout,
    }); // [B, H, T, D]
    return this.o.forward(mergeHeads(y));
  }
}

class LlamaMLP extends Module {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;

  constructor(config: LlamaConfig, dtype: WeightDType) {
    super();
    const { hidden_size: c, intermediate_size: i, mlp_bias: bias } = config;
    this.gate = this.addModule("gate_proj", new Linear(c, i, { bias, dtype }));
    this.up = this.addModule("up_proj", new Linear(c, i, { bias, dtype }));
    this.down = this.addModule("down_proj", new Linear(i, c, { bias, dtype }));
  }

  /** down(silu(gate(x)) * up(x)). */
  forward(x: Tensor): Tensor {
    return this.down.forward(swiglu(this.gate.forward(x), this.up.forward(x)));
  }
}

class LlamaDecoderLayer extends Module {
  readonly inputNorm: RMSNorm;
  readonly attention: LlamaAttention;
  readonly postAttentionNorm: RMSNorm;
  readonly mlp: LlamaMLP;

  constructor(config: LlamaConfig, invFreq: Float32Array, dtype: WeightDType) {
    super();
    const { hidden_size: c, rms_norm_eps: eps } = config;
    this.inputNorm = this.addModule("input_layernorm", new RMSNorm(c, eps));
    this.attention = this.addModule("self_attn", new LlamaAttention(config, invFreq, dtype));
    this.postAttentionNorm = this.addModule("post_attention_layernorm", new RMSNorm(c, eps));
    this.mlp = this.addModule("mlp", new LlamaMLP(config, dtype));
  }

  forward(x: Tensor, context: ForwardContext, layer: number): Tensor {
    const attended = freeUnsaved(() =>
      this.attention.forward(this.inputNorm.forward(x), context, layer),
    );
    const h = add(x, attended);
    return add(
      h,
      freeUnsaved(() => this.mlp.forward(this.postAttentionNorm.forward(h))),
    );
  }
}

/** The decoder stack, registered as "model" (model.embed_tokens, model.layers.N, model.norm). */
class LlamaModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;

  constructor(config: LlamaConfig, invFreq: Float32Array, dtype: WeightDType) {
    super();
    const { vocab_size: v, hidden_size: c } = config;
    this.embedTokens = this.addModule("embed_tokens", new Embedding(v, c, dtype));
    const layers: LlamaDecoderLayer[] = [];
    for (let i = 0; i < config.num_hidden_layers; i++) {
      layers.push(new LlamaDecoderLayer(config, invFreq, dtype));
    }
    this.layers = this.addModule("layers", new ModuleList(layers));
    this.norm = this.addModule("norm", new RMSNorm(c, config.rms_norm_eps));
  }
}

export class LlamaForCausalLM extends CausalLMBase {
  readonly config: ModelConfig;
  readonly llamaConfig: LlamaConfig;
  readonly modelType: string;
  readonly dims: ModelDims;
  readonly weightDtype: WeightDType;
  /** RoPE inverse frequencies [D / 2], after any rope scaling. */
  readonly invFreq: Float32Array;
  readonly model: LlamaModel;
  /** The output projection, or null when tied to model.embed_tokens. */
  readonly lmHead: Linear | null;
  readonly dropoutRates: Readonly<Record<string, number>>;

  constructor(modelConfig: ModelConfig, dtype: WeightDType = "f32") {
    super();
    const raw = modelConfig.raw;
    const config = parseLlamaConfig(raw);
    this.config = modelConfig;
    this.llamaConfig = config;
    this.modelType = config.model_type;
    this.weightDtype = dtype;
    this.invFreq = ropeInvFreq(raw, config.model_type, config.head_dim);
    this.model = this.addModule("model", new LlamaModel(config, this.invFreq, dtype));
    const { vocab_size: v, hidden_size: c } = config;
    this.lmHead = config.tie_word_embeddings
      ? null
      : this.addModule("lm_head", new Linear(c, v, { bias: false, dtype }));
    this.dims = llamaDims(config);
    this.dropoutRates = { attention_dropout: config.attention_dropout };
  }

  forward(inputIds: Tensor, options: ForwardOptions = {}): Tensor {
    this.throwIfDisposed(`${this.modelType}.forward`);
    const context = prepareForward(`${this.modelType}.forward`, inputIds, options);
    this.checkSlidingWindow(context);
    this.setDropoutContext(context);
    let x = this.model.embedTokens.forward(inputIds); // [B, T, C]
    x = runBlocks(this.model.layers.items, x, (layer, h, i) => layer.forward(h, context, i));
    context.cache?.commit();
    return this.model.norm.forward(x);
  }

  lmHeadWeight(): Tensor {
    return this.lmHead?.weight ?? this.model.embedTokens.weight;
  }

  private checkSlidingWindow(context: ForwardContext): void {
    const window = this.llamaConfig.sliding_window;
    const keys = (context.cache?.length ?? 0) + context.tokens;
    if (window !== null && keys > window) {
      throw new Error(
        `${this.modelType}.forward: ${keys} tokens exceed sliding_window ${window}; ` +
          `sliding-window attention is not supported yet, so keep sequences within the window`,
      );
    }
  }
}

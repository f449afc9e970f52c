// GPT-2: learned position embeddings, pre-LayerNorm blocks, a GELU (tanh) MLP and the LM head
// tied to the token embedding. Its Conv1D layers store weights [in, out], the transpose of
// nn.Linear, so they load as Linear layers with layout "inOut" and no copy.
//
// Legend: B batch, T tokens, C n_embd, H n_head, D head size, V vocab.
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
import type { ForwardOptions, ModelDims } from "./types.js";

/** The config.json fields this implementation reads, with transformers' defaults filled in. */
export interface Gpt2Config {
  vocab_size: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_positions: number;
  n_inner: number;
  layer_norm_epsilon: number;
  activation_function: "gelu_new" | "gelu_pytorch_tanh" | "gelu";
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  tie_word_embeddings: boolean;
  /** Dropout rates in training: embeddings, residual branches, attention weights. */
  dropout: Gpt2Dropout;
}

export interface Gpt2Dropout {
  embd_pdrop: number;
  resid_pdrop: number;
  attn_pdrop: number;
}

// transformers' GPT2Config defaults, which apply when config.json leaves a rate out.
const GPT2_DROPOUT_DEFAULTS: Gpt2Dropout = { embd_pdrop: 0.1, resid_pdrop: 0.1, attn_pdrop: 0.1 };

const ACTIVATIONS = ["gelu_new", "gelu_pytorch_tanh", "gelu"] as const;

export function parseGpt2Config(raw: RawConfig): Gpt2Config {
  const embd = requireInt(raw, "gpt2", "n_embd", "hidden_size");
  const heads = requireInt(raw, "gpt2", "n_head", "num_attention_heads");
  requireDivisible("gpt2", ["n_embd", embd], ["n_head", heads]);
  const activation = stringOr(raw, "gpt2", "activation_function", "gelu_new");
  if (!(ACTIVATIONS as readonly string[]).includes(activation)) {
    throw new Error(
      `gpt2 config: activation_function "${activation}" is not supported yet; ` +
        `supported: ${ACTIVATIONS.join(", ")}`,
    );
  }
  return {
    vocab_size: requireInt(raw, "gpt2", "vocab_size"),
    n_embd: embd,
    n_layer: requireInt(raw, "gpt2", "n_layer", "num_hidden_layers"),
    n_head: heads,
    n_positions: requireInt(raw, "gpt2", "n_positions", "max_position_embeddings"),
    n_inner: optionalInt(raw, "gpt2", ["n_inner"]) ?? 4 * embd,
    layer_norm_epsilon: numberOr(raw, "gpt2", "layer_norm_epsilon", 1e-5),
    activation_function: activation as Gpt2Config["activation_function"],
    scale_attn_weights: boolOr(raw, "gpt2", "scale_attn_weights", true),
    scale_attn_by_inverse_layer_idx: boolOr(raw, "gpt2", "scale_attn_by_inverse_layer_idx", false),
    tie_word_embeddings: boolOr(raw, "gpt2", "tie_word_embeddings", true),
    dropout: dropoutRates(raw, "gpt2", GPT2_DROPOUT_DEFAULTS),
  };
}

/** Returns the family-independent sizes of a parsed config. */
export function gpt2Dims(config: Gpt2Config): ModelDims {
  return {
    vocabSize: config.vocab_size,
    hiddenSize: config.n_embd,
    numLayers: config.n_layer,
    numHeads: config.n_head,
    numKvHeads: config.n_head,
    headDim: config.n_embd / config.n_head,
    intermediateSize: config.n_inner,
    maxPositions: config.n_positions,
    tieWordEmbeddings: config.tie_word_embeddings,
  };
}

class Gpt2Attention extends Module {
  readonly cAttn: Linear;
  readonly cProj: Linear;
  private readonly config: Gpt2Config;
  private readonly scale: number;

  constructor(config: Gpt2Config, layer: number, dtype: WeightDType) {
    super();
    this.config = config;
    const c = config.n_embd;
    this.cAttn = this.addModule("c_attn", new Linear(c, 3 * c, { layout: "inOut", dtype }));
    this.cProj = this.addModule("c_proj", new Linear(c, c, { layout: "inOut", dtype }));
    const headDim = c / config.n_head;
    let scale = config.scale_attn_weights ? 1 / Math.sqrt(headDim) : 1;
    if (config.scale_attn_by_inverse_layer_idx) scale /= layer + 1;
    this.scale = scale;
  }

  /** x [B, T, C] → [B, T, C]. c_attn's 3C output columns are [q | k | v], each H heads of D. */
  forward(x: Tensor, context: ForwardContext, layer: number): Tensor {
    const [batch, tokens, c] = x.shape;
    const h = this.config.n_head;
    const d = c / h;
    const qkv = reshape(this.cAttn.forward(x), [batch, tokens, 3, h, d]);
    const part = (i: number): Tensor =>
      transpose(reshape(slice(qkv, 2, i, i + 1), [batch, tokens, h, d]), 1, 2); // [B, H, T, D]
    const { attn_pdrop, resid_pdrop } = this.config.dropout;
    const y = attend(context, layer, part(0), part(1), part(2), {
      scale: this.scale,
      dropout: attn_pdrop,
    });
    return trainingDropout(context, this.cProj.forward(mergeHeads(y)), resid_pdrop);
  }
}

class Gpt2MLP extends Module {
  readonly cFc: Linear;
  readonly cProj: Linear;
  private readonly approximate: "tanh" | "none";
  private readonly residDropout: number;

  constructor(config: Gpt2Config, dtype: WeightDType) {
    super();
    const { n_embd: c, n_inner: inner } = config;
    this.residDropout = config.dropout.resid_pdrop;
    this.cFc = this.addModule("c_fc", new Linear(c, inner, { layout: "inOut", dtype }));
    this.cProj = this.addModule("c_proj", new Linear(inner, c, { layout: "inOut", dtype }));
    this.approximate = config.activation_function === "gelu" ? "none" : "tanh";
  }

  forward(x: Tensor, context: ForwardContext): Tensor {
    const y = this.cProj.forward(gelu(this.cFc.forward(x), this.approximate));
    return trainingDropout(context, y, this.residDropout);
  }
}

class Gpt2Block extends Module {
  readonly ln1: LayerNorm;
  readonly attn: Gpt2Attention;
  readonly ln2: LayerNorm;
  readonly mlp: Gpt2MLP;

  constructor(config: Gpt2Config, layer: number, dtype: WeightDType) {
    super();
    const { n_embd: c, layer_norm_epsilon: eps } = config;
    this.ln1 = this.addModule("ln_1", new LayerNorm(c, eps));
    this.attn = this.addModule("attn", new Gpt2Attention(config, layer, dtype));
    this.ln2 = this.addModule("ln_2", new LayerNorm(c, eps));
    this.mlp = this.addModule("mlp", new Gpt2MLP(config, dtype));
  }

  forward(x: Tensor, context: ForwardContext, layer: number): Tensor {
    const attended = freeUnsaved(() => this.attn.forward(this.ln1.forward(x), context, layer));
    const h = add(x, attended);
    return add(
      h,
      freeUnsaved(() => this.mlp.forward(this.ln2.forward(h), context)),
    );
  }
}

/** The transformer, registered as "transformer" (transformer.wte, .wpe, .h.N, .ln_f). */
class Gpt2Model extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<Gpt2Block>;
  readonly lnF: LayerNorm;

  constructor(config: Gpt2Config, dtype: WeightDType) {
    super();
    const { vocab_size: v, n_embd: c, n_positions: p } = config;
    this.wte = this.addModule("wte", new Embedding(v, c, dtype));
    this.wpe = this.addModule("wpe", new Embedding(p, c, dtype));
    const blocks: Gpt2Block[] = [];
    for (let i = 0; i < config.n_layer; i++) blocks.push(new Gpt2Block(config, i, dtype));
    this.h = this.addModule("h", new ModuleList(blocks));
    this.lnF = this.addModule("ln_f", new LayerNorm(c, config.layer_norm_epsilon));
  }
}

export class GPT2LMHeadModel extends CausalLMBase {
  readonly config: ModelConfig;
  readonly gpt2Config: Gpt2Config;
  readonly modelType = "gpt2";
  readonly dims: ModelDims;
  readonly weightDtype: WeightDType;
  readonly transformer: Gpt2Model;
  /** The output projection, or null when tied to transformer.wte (every released GPT-2). */
  readonly lmHead: Linear | null;
  readonly dropoutRates: Readonly<Record<string, number>>;

  constructor(modelConfig: ModelConfig, dtype: WeightDType = "f32") {
    super();
    const raw = modelConfig.raw;
    const config = parseGpt2Config(raw);
    this.config = modelConfig;
    this.gpt2Config = config;
    this.weightDtype = dtype;
    this.transformer = this.addModule("transformer", new Gpt2Model(config, dtype));
    const { vocab_size: v, n_embd: c } = config;
    this.lmHead = config.tie_word_embeddings
      ? null
      : this.addModule("lm_head", new Linear(c, v, { bias: false, dtype }));
    this.dims = gpt2Dims(config);
    this.dropoutRates = { ...config.dropout };
  }

  forward(inputIds: Tensor, options: ForwardOptions = {}): Tensor {
    this.throwIfDisposed("gpt2.forward");
    const context = prepareForward("gpt2.forward", inputIds, options);
    this.checkPositions(context.positions);
    this.setDropoutContext(context);
    const { wte, wpe, h, lnF } = this.transformer;
    let x = add(wte.forward(inputIds), wpe.forward(context.positions)); // [B, T, C]
    x = trainingDropout(context, x, this.gpt2Config.dropout.embd_pdrop);
    x = runBlocks(h.items, x, (block, hidden, i) => block.forward(hidden, context, i));
    context.cache?.commit();
    return lnF.forward(x);
  }

  lmHeadWeight(): Tensor {
    return this.lmHead?.weight ?? this.transformer.wte.weight;
  }

  private checkPositions(positions: Tensor): void {
    const limit = this.gpt2Config.n_positions;
    const max = positions.i32().reduce((m, p) => Math.max(m, p), 0);
    if (max >= limit) {
      throw new Error(
        `gpt2.forward: position ${max} is outside the learned position table ` +
          `(n_positions ${limit}); shorten the input to at most ${limit} tokens`,
      );
    }
  }
}

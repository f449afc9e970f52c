// Pieces every architecture shares: head splitting, attention through the optional KV cache,
// and the causal-LM loss and logits on top of the hidden states.
//
// Legend: B batch, T tokens, S cached + new tokens, C channels, H heads, D head size, V vocab.
import {
  attention,
  crossEntropy,
  dropout,
  freeUnsaved,
  isGradEnabled,
  linear,
  linearCrossEntropy,
  reshape,
  transpose,
  Tensor,
} from "../engine/index.js";
import {
  closeScratchScope,
  openScratchScope,
  pinScratch,
  releaseScratch,
} from "../engine/tensor.js";
import { KVCache } from "../generate/kv-cache.js";
import type { Linear } from "../nn/linear.js";
import { Module } from "../nn/module.js";
import type { WeightDType } from "../nn/param.js";
import type { ModelConfig } from "../io/config.js";
import { seededRandomSource } from "../nn/random-source.js";
import { numberOr, type RawConfig } from "./config-fields.js";
import type { ForwardContext } from "./context.js";
import type { CausalLM, ForwardOptions, LossOptions, ModelDims } from "./types.js";

/** [B, T, H * D] → [B, H, T, D]. */
export function splitHeads(x: Tensor, heads: number, headDim: number): Tensor {
  const [batch, tokens] = x.shape;
  return transpose(reshape(x, [batch, tokens, heads, headDim]), 1, 2);
}

/** [B, H, T, D] → [B, T, H * D]. */
export function mergeHeads(x: Tensor): Tensor {
  const [batch, heads, tokens, headDim] = x.shape;
  return reshape(transpose(x, 1, 2), [batch, tokens, heads * headDim]);
}

export interface AttendOptions {
  scale: number;
  alibiSlopes?: Float32Array;
  /** Dropout probability of the attention weights in training (config.json's rate). */
  dropout?: number;
}

/**
 * Runs causal attention of q [B, H, T, D] over k, v [B, Hkv, T, D], first appending k and v to
 * the KV cache of `layer` when the forward has one (then keys span S = cached + T positions).
 */
export function attend(
  context: ForwardContext,
  layer: number,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttendOptions,
): Tensor {
  let keys = k;
  let values = v;
  let keyLength: number | undefined;
  // The cache buffers are read in place, with only their first keyLength positions valid.
  if (context.cache !== null) {
    ({ keys, values, length: keyLength } = context.cache.append(layer, k, v));
  }
  const rng = context.dropout?.rng ?? null;
  const p = options.dropout ?? 0;
  return attention(q, keys, values, {
    causal: true,
    scale: options.scale,
    alibiSlopes: options.alibiSlopes,
    keyMask: context.keyMask,
    keyLength,
    dropout: rng !== null && p > 0 ? { p, rng } : undefined,
  });
}

/** Returns dropout(x, p) when the forward trains with the base model's dropout, else x. */
export function trainingDropout(context: ForwardContext, x: Tensor, p: number): Tensor {
  const rng = context.dropout?.rng ?? null;
  if (rng === null || p === 0) return x;
  return dropout(x, p, rng, true);
}

/**
 * Checks the dropout rates of config.json: each key present must be a number in [0, 1). Returns
 * them with `defaults` (transformers' config defaults) for the missing ones.
 */
export function dropoutRates<K extends string>(
  raw: RawConfig,
  family: string,
  defaults: Record<K, number>,
): Record<K, number> {
  const rates = { ...defaults };
  for (const key of Object.keys(defaults) as K[]) {
    const rate = numberOr(raw, family, key, defaults[key]);
    if (!(rate >= 0 && rate < 1)) {
      throw new Error(`${family} config: "${key}" must be a dropout rate in [0, 1), got ${rate}`);
    }
    rates[key] = rate;
  }
  return rates;
}

/**
 * Runs the transformer blocks in order: x = step(blocks[i], x, i). Without a tape (generation,
 * evaluation) each block runs in a scratch scope, so its intermediates are freed as soon as it
 * returns and the pass holds one block's temporaries at a time instead of every layer's until
 * endStep(). The last output lives until endStep(). With a tape each block runs under
 * freeUnsaved: the activations its backward reads live until endStep(), and the rest (a frozen
 * layer's input, the copy made before a transpose) are freed when the block returns.
 */
export function runBlocks<B>(
  blocks: readonly B[],
  x: Tensor,
  step: (block: B, x: Tensor, layer: number) => Tensor,
): Tensor {
  if (isGradEnabled()) {
    blocks.forEach((block, i) => {
      const input = x;
      x = freeUnsaved(() => step(block, input, i));
    });
    return x;
  }
  // The previous block's output: a scratch tensor owned here, freed once the next block is done.
  let owned: Tensor | null = null;
  blocks.forEach((block, i) => {
    const scope = openScratchScope();
    let out: Tensor | null = null;
    try {
      out = step(block, x, i);
    } finally {
      closeScratchScope(scope, new Set(out === null ? [] : [out.base]));
    }
    if (owned !== null && owned !== out.base) releaseScratch(owned);
    owned = out.base.isScratch ? out.base : null;
    x = out;
  });
  if (owned !== null) {
    // Released while pinned, it goes to the enclosing scope, or to endStep() when none is open.
    pinScratch(owned);
    releaseScratch(owned);
  }
  return x;
}

/** Shifts labels left by one ([B, T] → [B * T]) so position t is scored against labels[t + 1]. */
export function shiftLabels(labels: Tensor, ignoreIndex: number): Tensor {
  if (labels.dtype !== "i32" || labels.ndim !== 2) {
    throw new Error(`loss: labels must be i32 [B, T], got ${labels.describe()}`);
  }
  const [batch, tokens] = labels.shape;
  const source = labels.i32();
  const out = new Int32Array(batch * tokens).fill(ignoreIndex);
  for (let b = 0; b < batch; b++) {
    out.set(source.subarray(b * tokens + 1, (b + 1) * tokens), b * tokens);
  }
  return Tensor.from(out, [batch * tokens], "i32");
}

/**
 * The shared half of every architecture: loss, logits and cache creation. In training mode the
 * families apply config.json's dropout rates as transformers does, drawing from the model's
 * random source (randomSourceOf), which LoRA's dropout shares.
 */
export abstract class CausalLMBase extends Module implements CausalLM {
  abstract readonly config: ModelConfig;
  abstract readonly modelType: string;
  abstract readonly dims: ModelDims;
  abstract readonly weightDtype: WeightDType;
  abstract forward(inputIds: Tensor, options?: ForwardOptions): Tensor;
  abstract lmHeadWeight(): Tensor;
  /** The untied output projection, or null when the token embedding is reused. */
  abstract readonly lmHead: Linear | null;
  /**
   * Logits the loss computes at a time (linearCrossEntropy's chunkLogits); undefined keeps its
   * default. enableGradientCheckpointing lowers it.
   */
  lossChunkLogits: number | undefined = undefined;
  /** The base model's dropout rates in training, by config.json key (0 where none is applied). */
  abstract readonly dropoutRates: Readonly<Record<string, number>>;

  /**
   * Sets context.dropout for one forward call: the model's generator (seeded if none was set)
   * in training mode when a dropout rate is above 0, else null.
   */
  protected setDropoutContext(context: ForwardContext): void {
    const any = Object.values(this.dropoutRates).some((rate) => rate > 0);
    context.dropout = this.training && any ? seededRandomSource(this) : null;
  }

  logits(hidden: Tensor): Tensor {
    if (this.lmHead !== null) return this.lmHead.forward(hidden);
    return linear(hidden, this.lmHeadWeight(), null, "outIn");
  }

  loss(inputIds: Tensor, labels: Tensor, options: LossOptions = {}): Tensor {
    this.throwIfDisposed("loss");
    const ignoreIndex = options.ignoreIndex ?? -100;
    if (
      labels.ndim !== 2 ||
      labels.shape[0] !== inputIds.shape[0] ||
      labels.shape[1] !== inputIds.shape[1]
    ) {
      throw new Error(
        `loss: labels ${labels.describe()} must have the shape of inputIds ${inputIds.describe()}`,
      );
    }
    const hidden = this.forward(inputIds, {
      attentionMask: options.attentionMask,
      positions: options.positions,
    });
    const [batch, tokens, channels] = hidden.shape;
    const flat = reshape(hidden, [batch * tokens, channels]);
    const targets = shiftLabels(labels, ignoreIndex);
    // A hook on lm_head (an adapter) changes the logits, so they must exist whole. Otherwise the
    // fused op computes the loss in chunks and [B * T, V] never exists.
    if (this.lmHead?.hook) return crossEntropy(this.logits(flat), targets, { ignoreIndex });
    return linearCrossEntropy(flat, this.lmHeadWeight(), targets, {
      ignoreIndex,
      chunkLogits: this.lossChunkLogits,
    });
  }

  createCache(batch: number, maxLength: number): KVCache {
    const { numLayers, numKvHeads, headDim } = this.dims;
    return new KVCache({ numLayers, batch, numKvHeads, headDim, maxLength });
  }
}

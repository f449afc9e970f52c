// Autoregressive generation with a KV cache: one forward over the (left-padded) prompts, then
// one token per step. Each step ends with endStep(), which frees the step's arena tensors while
// the cache's persistent buffers keep the keys and values.
//
// Legend: B batch (prompts), T tokens, V vocab.
import { endStep, noGrad, slice, Tensor } from "../engine/index.js";
import type { TextTokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/types.js";
import {
  checkSamplingOptions,
  chooseToken,
  seededUniform,
  type SamplingOptions,
} from "./sampling.js";
import { TextStream } from "./stream.js";

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate per prompt at most (default 32). */
  maxNewTokens?: number;
  /** Seed of the sampling generator (default 0). Greedy decoding ignores it. */
  seed?: number;
  /** Stop a row when it generates one of these ids (kept in its output). Null = never. */
  eosTokenId?: number | readonly number[] | null;
  /** Stop a row once its decoded text contains one of these strings. Needs `tokenizer`. */
  stopStrings?: readonly string[];
  /** Used for stop strings and for the text given to onText. */
  tokenizer?: TextTokenizer;
  /** Id used to left-pad shorter prompts (default 0). Padding is masked out. */
  padTokenId?: number;
  /** Called with each row's new text as it is decoded (needs `tokenizer`). */
  onText?: (delta: string, row: number) => void;
  /** Called with each generated token id. */
  onToken?: (id: number, row: number) => void;
  /** Called with each row's raw next-token logits [V] before any processing (a copy). */
  onLogits?: (logits: Float32Array, row: number, step: number) => void;
}

export type FinishReason = "eos" | "stop" | "length";

export interface GenerateResult {
  /** The generated ids of each row, without the prompt; an EOS that ended a row is included. */
  tokens: number[][];
  finishReasons: FinishReason[];
  /** Decoded text of each row's generated ids (special tokens skipped); "" without a tokenizer. */
  texts: string[];
}

interface RowState {
  prompt: readonly number[];
  generated: number[];
  stream: TextStream | null;
  finished: FinishReason | null;
}

/**
 * Generates continuations of `prompts` (each a non-empty list of token ids). Rows are
 * left-padded to one length and decoded together. Greedy rows get the tokens that their prompt
 * gives alone, but sampled rows share one random stream, so they depend on the batch.
 * Calls endStep() after every step, which frees every arena tensor, the caller's included.
 */
export function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions = {},
): GenerateResult {
  const maxNewTokens = options.maxNewTokens ?? 32;
  checkGenerateOptions(prompts, options, maxNewTokens);
  const eos = new Set(eosList(options.eosTokenId));
  const uniform = seededUniform(options.seed ?? 0);
  const tokenizer = options.tokenizer ?? null;
  const rows: RowState[] = prompts.map((prompt) => ({
    prompt,
    generated: [],
    stream: tokenizer === null ? null : new TextStream(tokenizer, prompt),
    finished: null,
  }));

  const promptLength = Math.max(...prompts.map((p) => p.length));
  checkPositionLimit(model, promptLength, maxNewTokens);
  const cache = model.createCache(prompts.length, promptLength + maxNewTokens);
  try {
    noGrad(() => {
      let logits = prefill(model, prompts, promptLength, options.padTokenId ?? 0, cache);
      for (let step = 0; step < maxNewTokens; step++) {
        const next = rows.map((row, b) =>
          row.finished === null
            ? pickToken(row, logits, b, step, model.dims.vocabSize, options, uniform)
            : null,
        );
        endStep();
        for (let b = 0; b < rows.length; b++) {
          const id = next[b];
          if (id !== null) acceptToken(rows[b], b, id, eos, options);
        }
        if (rows.every((row) => row.finished !== null) || step === maxNewTokens - 1) break;
        const feed = next.map((id, b) => id ?? lastToken(rows[b]));
        logits = decodeStep(model, feed, cache);
      }
    });
  } finally {
    endStep();
    cache.dispose();
  }
  return finish(rows, options);
}

function checkGenerateOptions(
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
  maxNewTokens: number,
): void {
  if (prompts.length === 0) throw new Error("generate: prompts is empty; pass at least one prompt");
  prompts.forEach((p, i) => {
    if (p.length === 0) {
      throw new Error(`generate: prompt ${i} is empty; start it with the BOS token or some text`);
    }
  });
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
    throw new Error(`generate: maxNewTokens must be a whole number >= 1, got ${maxNewTokens}`);
  }
  if ((options.stopStrings?.length ?? 0) > 0 && options.tokenizer === undefined) {
    throw new Error("generate: stopStrings need a tokenizer to decode the text; pass tokenizer");
  }
  if (options.onText !== undefined && options.tokenizer === undefined) {
    throw new Error("generate: onText needs a tokenizer to decode the text; pass tokenizer");
  }
  checkSamplingOptions(options);
}

function checkPositionLimit(model: CausalLM, promptLength: number, maxNewTokens: number): void {
  const limit = model.dims.maxPositions;
  if (limit !== null && promptLength + maxNewTokens > limit) {
    throw new Error(
      `generate: ${promptLength} prompt tokens + maxNewTokens ${maxNewTokens} exceed the ` +
        `${limit} positions of ${model.modelType}; shorten the prompt or lower maxNewTokens`,
    );
  }
}

function eosList(eos: GenerateOptions["eosTokenId"]): number[] {
  if (eos === undefined || eos === null) return [];
  return typeof eos === "number" ? [eos] : [...eos];
}

/** Runs the left-padded prompts [B, T] through the model and returns last-position logits [B * V]. */
function prefill(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  length: number,
  padId: number,
  cache: ReturnType<CausalLM["createCache"]>,
): Float32Array {
  const batch = prompts.length;
  const ids = new Int32Array(batch * length).fill(padId);
  const mask = new Int32Array(batch * length);
  prompts.forEach((prompt, b) => {
    const offset = b * length + length - prompt.length;
    ids.set(prompt, offset);
    mask.fill(1, offset, (b + 1) * length);
  });
  const hidden = model.forward(Tensor.from(ids, [batch, length], "i32"), {
    attentionMask: Tensor.from(mask, [batch, length], "i32"),
    cache,
  });
  return lastLogits(model, hidden);
}

/** Feeds one token per row through the cache and returns the logits [B * V]. */
function decodeStep(
  model: CausalLM,
  tokens: number[],
  cache: ReturnType<CausalLM["createCache"]>,
): Float32Array {
  const ids = Tensor.from(Int32Array.from(tokens), [tokens.length, 1], "i32");
  return lastLogits(model, model.forward(ids, { cache }));
}

/** hidden [B, T, C] → logits of the last position, copied out as [B * V]. */
function lastLogits(model: CausalLM, hidden: Tensor): Float32Array {
  const tokens = hidden.shape[1];
  return model.logits(slice(hidden, 1, tokens - 1, tokens)).toFloat32Array();
}

function pickToken(
  row: RowState,
  logits: Float32Array,
  b: number,
  step: number,
  vocab: number,
  options: GenerateOptions,
  uniform: () => number,
): number {
  const rowLogits = logits.slice(b * vocab, (b + 1) * vocab);
  options.onLogits?.(rowLogits.slice(), b, step);
  // The repetition penalty counts the prompt and the generated tokens, but not the padding.
  return chooseToken(rowLogits, [...row.prompt, ...row.generated], options, uniform);
}

function acceptToken(
  row: RowState,
  b: number,
  id: number,
  eos: Set<number>,
  options: GenerateOptions,
): void {
  row.generated.push(id);
  options.onToken?.(id, b);
  if (row.stream !== null) {
    const delta = row.stream.push(id);
    if (delta !== "") options.onText?.(delta, b);
  }
  if (eos.has(id)) row.finished = "eos";
  else if (options.stopStrings?.some((s) => row.stream?.text.includes(s))) row.finished = "stop";
}

function lastToken(row: RowState): number {
  return row.generated[row.generated.length - 1] ?? row.prompt[row.prompt.length - 1];
}

function finish(rows: RowState[], options: GenerateOptions): GenerateResult {
  const texts: string[] = [];
  rows.forEach((row, b) => {
    if (row.stream !== null) {
      const rest = row.stream.flush();
      if (rest !== "") options.onText?.(rest, b);
    }
    texts.push(row.stream?.text ?? "");
  });
  return {
    tokens: rows.map((r) => r.generated),
    finishReasons: rows.map((r) => r.finished ?? "length"),
    texts,
  };
}

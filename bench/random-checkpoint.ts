// Checkpoint folders with random weights for the benchmark configurations, written with our own
// safetensors writer into a cache folder under os.tmpdir(), so the training and decode jobs load
// a full-size model without downloading one. The parameter names and shapes come from the
// model classes themselves (createModel + namedParameters), so the files always match them.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SINGLE_FILE } from "../src/io/checkpoint.js";
import { readModelConfig } from "../src/io/config.js";
import { writeSafetensors, type TensorToWrite } from "../src/io/safetensors.js";
import { encodeBf16 } from "../src/engine/tensor.js";
import { createModel } from "../src/models/index.js";
import { runInChild } from "./process.js";

// The configuration of HuggingFaceTB/SmolLM2-135M, with Hugging Face keys.
const SMOLLM2_135M = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  vocab_size: 49152,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  hidden_act: "silu",
  tie_word_embeddings: true,
  bos_token_id: 0,
  eos_token_id: 0,
  initializer_range: 0.02,
  torch_dtype: "float32",
} as const;

/** config.json contents of each benchmark model, with Hugging Face keys. */
export const BENCH_MODELS = {
  // The configuration of HuggingFaceTB/SmolLM2-135M.
  "smollm2-135m": SMOLLM2_135M,
  // The same, stored in bf16 as the published checkpoint is: loading it as bf16, or quantizing
  // it, keeps the embedding in bf16 as the published model would.
  "smollm2-135m-bf16": { ...SMOLLM2_135M, torch_dtype: "bfloat16" },
  // The configuration of openai-community/gpt2 (124M parameters).
  "gpt2-124m": {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    n_positions: 1024,
    vocab_size: 50257,
    activation_function: "gelu_new",
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
    bos_token_id: 50256,
    eos_token_id: 50256,
    initializer_range: 0.02,
    torch_dtype: "float32",
  },
  // Small versions of both families for the smoke test: the same code paths in seconds.
  "tiny-llama": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 160,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 512,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 0,
    initializer_range: 0.02,
    torch_dtype: "float32",
  },
  "tiny-gpt2": {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    n_embd: 64,
    n_layer: 2,
    n_head: 4,
    n_positions: 512,
    vocab_size: 512,
    activation_function: "gelu_new",
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 0,
    initializer_range: 0.02,
    torch_dtype: "float32",
  },
} as const;

export type BenchModelName = keyof typeof BENCH_MODELS;

// Part of the cache folder name: bump it when the configs or the way values are drawn change,
// so that stale folders are not reused.
const CACHE_VERSION = 1;

export function isBenchModelName(name: string): name is BenchModelName {
  return Object.hasOwn(BENCH_MODELS, name);
}

/** Returns the cache folder of `model`'s random checkpoint (it may not exist yet). */
export function randomCheckpointDir(model: BenchModelName): string {
  return join(tmpdir(), "tslora-bench", `${model}-v${CACHE_VERSION}`);
}

/** True when the folder contains a complete checkpoint (model.safetensors is written last). */
export function hasRandomCheckpoint(model: BenchModelName, dir = randomCheckpointDir(model)) {
  return existsSync(join(dir, "config.json")) && existsSync(join(dir, SINGLE_FILE));
}

/**
 * Writes config.json and model.safetensors (f32, or bf16 when the config's torch_dtype is
 * bfloat16) with random weights for `model` into `dir` and
 * returns `dir`. Matrices and embeddings are uniform with standard deviation initializer_range,
 * 1-D weights (norm scales) are 1 and biases 0, so activations stay finite at any depth. The
 * values depend only on `seed`. Building the model to list its parameters allocates it once
 * (as bf16), so run this in its own process when the caller's peak memory matters.
 */
export function writeRandomCheckpoint(
  model: BenchModelName,
  dir = randomCheckpointDir(model),
  seed = 1,
): string {
  const raw = BENCH_MODELS[model];
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(raw, null, 2) + "\n");
  const config = readModelConfig(dir);
  const built = createModel(config, "bf16");
  const uniform = uniformSource(seed);
  const bound = raw.initializer_range * Math.sqrt(3);
  const storeBf16 = raw.torch_dtype === "bfloat16";

  const tensors: TensorToWrite[] = built.namedParameters().map(([name, parameter]) => {
    const shape = [...parameter.shape];
    const values = new Float32Array(shape.reduce((n, d) => n * d, 1));
    if (shape.length >= 2) {
      for (let i = 0; i < values.length; i++) values[i] = (2 * uniform() - 1) * bound;
    } else if (name.endsWith(".weight")) {
      values.fill(1);
    }
    if (storeBf16) {
      const bits = new Uint16Array(values.length);
      encodeBf16(values, bits);
      return { name, dtype: "BF16", shape, data: new Uint8Array(bits.buffer) };
    }
    const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    return { name, dtype: "F32", shape, data };
  });
  writeSafetensors(join(dir, SINGLE_FILE), tensors, { format: "pt" });
  return dir;
}

/** Returns `count` token ids drawn uniformly from [0, vocabSize); they depend only on `seed`. */
export function randomTokenIds(count: number, vocabSize: number, seed: number): Int32Array {
  const uniform = uniformSource(seed);
  const ids = new Int32Array(count);
  for (let i = 0; i < count; i++) ids[i] = Math.floor(uniform() * vocabSize);
  return ids;
}

/** Returns a generator of uniform numbers in [0, 1): Marsaglia's xorshift128, hash-seeded. */
function uniformSource(seed: number): () => number {
  let s = seed >>> 0;
  const state = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    state[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return () => {
    // xorshift128 on four 32-bit words; 2^-32 resolution is plenty for random weights.
    let t = state[3];
    const first = state[0];
    state[3] = state[2];
    state[2] = state[1];
    state[1] = first;
    t ^= t << 11;
    t ^= t >>> 8;
    state[0] = (t ^ first ^ (first >>> 19)) >>> 0;
    return state[0] / 4294967296;
  };
}

/** Writes the random checkpoint of options.model: the "checkpoint" task of bench/child.ts. */
export function writeCheckpointTask(options: unknown): string {
  const model = (options as { model?: unknown } | null)?.model;
  if (typeof model !== "string" || !isBenchModelName(model)) {
    throw new Error(
      `checkpoint task: model must be one of ${Object.keys(BENCH_MODELS).join(", ")}, ` +
        `got ${JSON.stringify(model)}`,
    );
  }
  return writeRandomCheckpoint(model);
}

/**
 * Returns the cache folder of `model`'s random checkpoint, writing it first in a child process
 * when it is missing (the writer allocates the model once, which must not count towards the
 * peak memory of a measured job).
 */
export async function ensureRandomCheckpoint(model: BenchModelName): Promise<string> {
  if (hasRandomCheckpoint(model)) return randomCheckpointDir(model);
  console.error(`bench: writing random ${model} weights to ${randomCheckpointDir(model)}`);
  return (await runInChild({ task: "checkpoint", options: { model } })) as string;
}

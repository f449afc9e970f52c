// Writes tiny random checkpoints of every supported family in Hugging Face layout
// (config.json + model.safetensors), for tests that need a real loading path but no real data.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readModelConfig } from "../../src/io/config.js";
import { encodeFromFloat32, type FloatDType } from "../../src/io/dtypes.js";
import { writeSafetensors, type TensorToWrite } from "../../src/io/safetensors.js";
import { createModel } from "../../src/models/registry.js";
import { makeRandom } from "./random.js";

export type TinyFamily = "gpt2" | "llama" | "qwen2" | "mistral" | "bloom";

export interface TinyModelOptions {
  seed?: number;
  /** Stored dtype of every tensor (default F32). */
  dtype?: FloatDType;
  /** Drop the "transformer." / "model." prefix, as Hub GPT-2 and BLOOM checkpoints do. */
  bareNames?: boolean;
  /** Store a tied embedding under "lm_head.weight" instead of its embedding name. */
  tiedAsLmHead?: boolean;
  /** Fields that replace or extend the family's tiny config. */
  config?: Record<string, unknown>;
  /** Copy tokenizer.json (and tokenizer_config.json when present) from this folder. */
  tokenizerFrom?: string;
}

/** Returns a small config.json object of `family`: 2 layers, width 32-48, vocab 64. */
export function tinyConfig(family: TinyFamily): Record<string, unknown> {
  switch (family) {
    case "gpt2":
      return {
        model_type: "gpt2",
        vocab_size: 64,
        n_embd: 32,
        n_layer: 2,
        n_head: 4,
        n_positions: 48,
        n_inner: 48,
        activation_function: "gelu_new",
        layer_norm_epsilon: 1e-5,
      };
    case "llama":
    case "mistral":
    case "qwen2":
      return {
        model_type: family,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-6,
        rope_theta: 10000,
        max_position_embeddings: 128,
        tie_word_embeddings: family === "llama",
        hidden_act: "silu",
        ...(family === "mistral" ? { sliding_window: 4096 } : {}),
      };
    case "bloom":
      // Six heads: not a power of two, so the extra ALiBi slopes are used.
      return {
        model_type: "bloom",
        vocab_size: 64,
        hidden_size: 48,
        n_layer: 2,
        n_head: 6,
        layer_norm_epsilon: 1e-5,
      };
  }
}

/** Returns random values: 1-D weights (norms) near 1, biases small, matrices within ±0.3. */
function randomValues(name: string, shape: readonly number[], next: () => number): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const u = next() * 2 - 1;
    if (shape.length === 2) out[i] = 0.3 * u;
    else if (name.endsWith(".bias")) out[i] = 0.1 * u;
    else out[i] = 1 + 0.1 * u;
  }
  return out;
}

/** Writes the checkpoint of a random tiny `family` model into `dir` and returns its config. */
export function writeTinyModel(
  dir: string,
  family: TinyFamily,
  options: TinyModelOptions = {},
): Record<string, unknown> {
  mkdirSync(dir, { recursive: true });
  const config = { ...tinyConfig(family), ...options.config };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));

  // The model itself lists the parameter names and shapes the config implies.
  const model = createModel(readModelConfig(dir), "f32");
  const next = makeRandom(options.seed ?? 1);
  const dtype = options.dtype ?? "F32";
  const tensors: TensorToWrite[] = [];
  const tiedName = model.dims.tieWordEmbeddings
    ? model.namedParameters().find(([, t]) => t === model.lmHeadWeight())?.[0]
    : undefined;
  for (const [path, tensor] of model.namedParameters()) {
    let name = options.bareNames ? path.replace(/^(transformer|model)\./, "") : path;
    if (options.tiedAsLmHead && path === tiedName) name = "lm_head.weight";
    const values = randomValues(path, tensor.shape, next);
    tensors.push({ name, dtype, shape: [...tensor.shape], data: encodeFromFloat32(values, dtype) });
    tensor.dispose();
  }
  writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });

  if (options.tokenizerFrom !== undefined) {
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
      const source = join(options.tokenizerFrom, file);
      if (existsSync(source)) copyFileSync(source, join(dir, file));
    }
  }
  return config;
}

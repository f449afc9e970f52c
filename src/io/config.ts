// config.json and generation_config.json of a Hugging Face model folder. Fields keep their
// config.json names (Llama spelling for the common ones), with the spellings of other families
// and of transformers 4 and 5 folded in: n_embd/n_layer/n_head (GPT-2, BLOOM), torch_dtype
// (4.x) or dtype (5.x), rope_theta and rope_scaling (4.x) or rope_parameters (5.x).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** RoPE scaling with rope_type "default", "linear", "dynamic", "llama3", "yarn", ... */
export interface RopeScaling {
  rope_type: string;
  /** Scaling factor; absent for "default". */
  factor: number | null;
  /** Every field as written in the file (low_freq_factor, original_max_position_embeddings, ...). */
  raw: Record<string, unknown>;
}

export interface ModelConfig {
  /** The file this config was read from. */
  path: string;
  model_type: string;
  architectures: string[];
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Equals num_attention_heads when the file has no num_key_value_heads (no GQA). */
  num_key_value_heads: number;
  /** head_dim from the file, else hidden_size / num_attention_heads. */
  head_dim: number;
  /** intermediate_size, n_inner (GPT-2), or null when absent (the model uses 4 × hidden_size). */
  intermediate_size: number | null;
  max_position_embeddings: number | null;
  rms_norm_eps: number | null;
  layer_norm_epsilon: number | null;
  /** hidden_act, or activation_function (GPT-2). */
  hidden_act: string | null;
  /** rope_theta or rope_parameters.rope_theta; null for models without RoPE. */
  rope_theta: number | null;
  /** Null when absent or rope_type "default" with no factor. */
  rope_scaling: RopeScaling | null;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  mlp_bias: boolean;
  /** "float32", "bfloat16", "float16" from dtype or torch_dtype; null when absent. */
  dtype: string | null;
  bos_token_id: number | null;
  /** eos_token_id as a list (the file may hold one integer or a list). */
  eos_token_id: number[];
  pad_token_id: number | null;
  /** The whole parsed config.json, for family-specific fields. */
  raw: Record<string, unknown>;
}

export interface GenerationConfig {
  path: string;
  bos_token_id: number | null;
  eos_token_id: number[];
  pad_token_id: number | null;
  max_new_tokens: number | null;
  max_length: number | null;
  do_sample: boolean | null;
  temperature: number | null;
  top_k: number | null;
  top_p: number | null;
  repetition_penalty: number | null;
  raw: Record<string, unknown>;
}

// transformers' per-family default for tie_word_embeddings when the key is absent.
const UNTIED_BY_DEFAULT = new Set(["llama", "mistral", "qwen2", "mixtral", "gemma"]);

type Json = Record<string, unknown>;

/** Reads and parses a JSON object file, with errors that name the file and the fix. */
export function readJsonObject(path: string, what: string): Json {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new Error(`${what}: ${path} not found. The folder must be a Hugging Face model folder`);
    }
    throw new Error(`${what}: cannot read ${path} (${(err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(
      `${what}: ${path} is not valid JSON (${(err as Error).message}). ` +
        `Re-download it or fix the file`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${what}: ${path} must contain a JSON object, got ${typeof parsed}`);
  }
  return parsed as Json;
}

/** Field access with errors that name the file, the field, the expectation and the value. */
class Fields {
  constructor(
    readonly raw: Json,
    readonly path: string,
  ) {}

  private invalid(key: string, expected: string): never {
    throw new Error(
      `config: ${this.path}: field "${key}" must be ${expected}, ` +
        `got ${JSON.stringify(this.raw[key])}. Fix the file`,
    );
  }

  /** Returns the first present key's value, checked with `valid`. */
  private first<T>(keys: string[], valid: (v: unknown) => v is T, expected: string): T | null {
    for (const key of keys) {
      const value = this.raw[key];
      if (value === undefined || value === null) continue;
      if (!valid(value)) this.invalid(key, expected);
      return value;
    }
    return null;
  }

  positiveInt(keys: string[]): number | null {
    return this.first(keys, isPositiveInt, "an integer > 0");
  }

  requiredPositiveInt(keys: string[]): number {
    const value = this.positiveInt(keys);
    if (value === null) {
      throw new Error(
        `config: ${this.path}: missing field "${keys[0]}"` +
          (keys.length > 1 ? ` (or ${keys.slice(1).join(", ")})` : "") +
          `; the config is incomplete or is not a causal language model config`,
      );
    }
    return value;
  }

  number(keys: string[]): number | null {
    return this.first(keys, isFiniteNumber, "a number");
  }

  string(keys: string[]): string | null {
    return this.first(keys, isString, "a string");
  }

  boolean(key: string, fallback: boolean): boolean {
    return this.first([key], isBoolean, "true or false") ?? fallback;
  }

  nonNegativeInt(keys: string[]): number | null {
    return this.first(keys, isTokenId, "an integer >= 0");
  }

  tokenId(key: string): number | null {
    return this.first([key], isTokenId, "an integer >= 0");
  }

  tokenIds(key: string): number[] {
    const value = this.first([key], isTokenIdOrList, "an integer >= 0 or a list of them");
    if (value === null) return [];
    return Array.isArray(value) ? value : [value];
  }
}

function isPositiveInt(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) > 0;
}
function isTokenId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}
function isTokenIdOrList(v: unknown): v is number | number[] {
  return isTokenId(v) || (Array.isArray(v) && v.every(isTokenId));
}
function isFiniteNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}
function isString(v: unknown): v is string {
  return typeof v === "string";
}
function isBoolean(v: unknown): v is boolean {
  return typeof v === "boolean";
}

/**
 * Reads RoPE settings from rope_theta + rope_scaling (transformers 4) or rope_parameters
 * (transformers 5, which contains rope_theta and rope_type together).
 */
function readRope(f: Fields): { theta: number | null; scaling: RopeScaling | null } {
  const params = f.raw.rope_parameters;
  const scaling = f.raw.rope_scaling;
  for (const [key, value] of [
    ["rope_parameters", params],
    ["rope_scaling", scaling],
  ] as const) {
    if (
      value !== undefined &&
      value !== null &&
      (typeof value !== "object" || Array.isArray(value))
    ) {
      throw new Error(
        `config: ${f.path}: field "${key}" must be an object, got ${JSON.stringify(value)}. ` +
          `Fix the file`,
      );
    }
  }
  const section = { ...((scaling as Json | null) ?? {}), ...((params as Json | null) ?? {}) };
  const sub = new Fields(section, `${f.path} (${params ? "rope_parameters" : "rope_scaling"})`);
  const theta = f.number(["rope_theta"]) ?? sub.number(["rope_theta"]);

  // Older files spell rope_type as "type"; "default" with no factor means no scaling.
  const ropeType = sub.string(["rope_type", "type"]);
  const factor = sub.number(["factor"]);
  if (ropeType === null && factor === null) return { theta, scaling: null };
  if ((ropeType ?? "default") === "default" && factor === null) return { theta, scaling: null };
  if (ropeType === null) {
    throw new Error(
      `config: ${f.path}: RoPE scaling has factor ${factor} but no "rope_type". ` +
        `Add rope_type (linear, dynamic, llama3, yarn, ...)`,
    );
  }
  const raw = { ...section };
  delete raw.rope_theta;
  return { theta, scaling: { rope_type: ropeType, factor, raw } };
}

/** Reads `dir`/config.json into a ModelConfig; throws naming the file and field on errors. */
export function readModelConfig(dir: string): ModelConfig {
  const path = join(dir, "config.json");
  const f = new Fields(readJsonObject(path, "config"), path);
  const modelType = f.string(["model_type"]);
  if (modelType === null) {
    throw new Error(
      `config: ${path}: missing field "model_type". A transformers config.json names its ` +
        `architecture there (e.g. "llama", "gpt2")`,
    );
  }
  const hidden = f.requiredPositiveInt(["hidden_size", "n_embd", "n_embed"]);
  const heads = f.requiredPositiveInt(["num_attention_heads", "n_head"]);
  const headDim = f.positiveInt(["head_dim"]) ?? hidden / heads;
  if (!Number.isInteger(headDim)) {
    throw new Error(
      `config: ${path}: hidden_size ${hidden} is not divisible by num_attention_heads ` +
        `${heads}, and there is no "head_dim". Fix the file`,
    );
  }
  const kvHeads = f.positiveInt(["num_key_value_heads"]) ?? heads;
  if (heads % kvHeads !== 0) {
    throw new Error(
      `config: ${path}: num_attention_heads ${heads} is not a multiple of ` +
        `num_key_value_heads ${kvHeads}. Fix the file`,
    );
  }
  const architectures = f.raw.architectures;
  const rope = readRope(f);
  return {
    path,
    model_type: modelType,
    architectures: Array.isArray(architectures) ? architectures.filter(isString) : [],
    vocab_size: f.requiredPositiveInt(["vocab_size"]),
    hidden_size: hidden,
    num_hidden_layers: f.requiredPositiveInt(["num_hidden_layers", "n_layer"]),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    intermediate_size: f.positiveInt(["intermediate_size", "n_inner"]),
    max_position_embeddings: f.positiveInt(["max_position_embeddings", "n_positions"]),
    rms_norm_eps: f.number(["rms_norm_eps"]),
    layer_norm_epsilon: f.number(["layer_norm_epsilon", "layer_norm_eps"]),
    hidden_act: f.string(["hidden_act", "activation_function"]),
    rope_theta: rope.theta,
    rope_scaling: rope.scaling,
    tie_word_embeddings: f.boolean("tie_word_embeddings", !UNTIED_BY_DEFAULT.has(modelType)),
    attention_bias: f.boolean("attention_bias", false),
    mlp_bias: f.boolean("mlp_bias", false),
    dtype: f.string(["dtype", "torch_dtype"]),
    bos_token_id: f.tokenId("bos_token_id"),
    eos_token_id: f.tokenIds("eos_token_id"),
    pad_token_id: f.tokenId("pad_token_id"),
    raw: f.raw,
  };
}

/** Reads `dir`/generation_config.json, or returns null when the folder has none. */
export function readGenerationConfig(dir: string): GenerationConfig | null {
  const path = join(dir, "generation_config.json");
  if (!existsSync(path)) return null;
  const f = new Fields(readJsonObject(path, "generation config"), path);
  const doSample = f.raw.do_sample;
  if (doSample !== undefined && doSample !== null && typeof doSample !== "boolean") {
    throw new Error(
      `config: ${path}: field "do_sample" must be true or false, got ` +
        `${JSON.stringify(doSample)}. Fix the file`,
    );
  }
  return {
    path,
    bos_token_id: f.tokenId("bos_token_id"),
    eos_token_id: f.tokenIds("eos_token_id"),
    pad_token_id: f.tokenId("pad_token_id"),
    max_new_tokens: f.positiveInt(["max_new_tokens"]),
    max_length: f.positiveInt(["max_length"]),
    do_sample: doSample ?? null,
    temperature: f.number(["temperature"]),
    top_k: f.nonNegativeInt(["top_k"]),
    top_p: f.number(["top_p"]),
    repetition_penalty: f.number(["repetition_penalty"]),
    raw: f.raw,
  };
}

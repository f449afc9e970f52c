// Maps config.json's model_type to the architecture that implements it.
import type { WeightDType } from "../nn/param.js";
import { bloomDims, BloomForCausalLM, parseBloomConfig } from "./bloom.js";
import type { ModelConfig } from "../io/config.js";
import { GPT2LMHeadModel, gpt2Dims, parseGpt2Config } from "./gpt2.js";
import { llamaDims, LlamaForCausalLM, parseLlamaConfig } from "./llama.js";
import type { CausalLM, ModelDims } from "./types.js";

interface Architecture {
  /** The transformers class name, for messages. */
  className: string;
  build(config: ModelConfig, dtype: WeightDType): CausalLM;
  dims(config: ModelConfig): ModelDims;
}

const GPT2: Architecture = {
  className: "GPT2LMHeadModel",
  build: (config, dtype) => new GPT2LMHeadModel(config, dtype),
  dims: (config) => gpt2Dims(parseGpt2Config(config.raw)),
};

const LLAMA: Architecture = {
  className: "LlamaForCausalLM",
  build: (config, dtype) => new LlamaForCausalLM(config, dtype),
  dims: (config) => llamaDims(parseLlamaConfig(config.raw)),
};

const BLOOM: Architecture = {
  className: "BloomForCausalLM",
  build: (config, dtype) => new BloomForCausalLM(config, dtype),
  dims: (config) => bloomDims(parseBloomConfig(config.raw)),
};

const ARCHITECTURES: ReadonlyMap<string, Architecture> = new Map([
  ["gpt2", GPT2],
  ["llama", LLAMA],
  ["mistral", LLAMA],
  ["qwen2", LLAMA],
  ["bloom", BLOOM],
]);

/** Returns the transformers class that implements `modelType` (e.g. "LlamaForCausalLM"). */
export function architectureName(config: ModelConfig): string {
  return architectureOf(config).className;
}

/** The model_type values that createModel accepts. */
export const KNOWN_MODEL_TYPES: readonly string[] = [...ARCHITECTURES.keys()];

/**
 * Builds the architecture named by `config.model_type` with zero-filled weights stored as
 * `dtype` (norms and biases stay f32). Load a checkpoint into it with loadWeights.
 */
export function createModel(config: ModelConfig, dtype: WeightDType = "f32"): CausalLM {
  return architectureOf(config).build(config, dtype);
}

/** Returns the sizes that `config` implies, without allocating the model. */
export function modelDims(config: ModelConfig): ModelDims {
  return architectureOf(config).dims(config);
}

function architectureOf(config: ModelConfig): Architecture {
  const modelType = config.model_type;
  const architecture = ARCHITECTURES.get(modelType);
  if (architecture === undefined) {
    throw new Error(
      `unknown model_type "${modelType}" in ${config.path}; known model ` +
        `types: ${KNOWN_MODEL_TYPES.join(", ")}`,
    );
  }
  return architecture;
}

// Maps config.json's model_type to the architecture that implements it.
import type { WeightDType } from "../nn/param.js";
import { BloomForCausalLM } from "./bloom.js";
import type { ModelConfig } from "../io/config.js";
import { GPT2LMHeadModel } from "./gpt2.js";
import { LlamaForCausalLM } from "./llama.js";
import type { CausalLM } from "./types.js";

type Constructor = (config: ModelConfig, dtype: WeightDType) => CausalLM;

const ARCHITECTURES: ReadonlyMap<string, Constructor> = new Map<string, Constructor>([
  ["gpt2", (config, dtype) => new GPT2LMHeadModel(config, dtype)],
  ["llama", (config, dtype) => new LlamaForCausalLM(config, dtype)],
  ["mistral", (config, dtype) => new LlamaForCausalLM(config, dtype)],
  ["qwen2", (config, dtype) => new LlamaForCausalLM(config, dtype)],
  ["bloom", (config, dtype) => new BloomForCausalLM(config, dtype)],
]);

/** The model_type values that createModel accepts. */
export const KNOWN_MODEL_TYPES: readonly string[] = [...ARCHITECTURES.keys()];

/**
 * Builds the architecture named by `config.model_type` with zero-filled weights stored as
 * `dtype` (norms and biases stay f32). Load a checkpoint into it with loadWeights.
 */
export function createModel(config: ModelConfig, dtype: WeightDType = "f32"): CausalLM {
  const modelType = config.model_type;
  const build = ARCHITECTURES.get(modelType);
  if (build === undefined) {
    throw new Error(
      `createModel: unknown model_type "${modelType}" in ${config.path}; known model ` +
        `types: ${KNOWN_MODEL_TYPES.join(", ")}`,
    );
  }
  return build(config, dtype);
}

// The context length a model reports in config.json, and the --max-length it allows.
import { readModelConfig, type ModelConfig } from "../io/config.js";
import { modelDims } from "../models/registry.js";
import { isDefaultValue, UsageError, type OptionValues } from "./train-options.js";

/**
 * Returns the context length in tokens that `config` reports, the value `tslora info` prints as
 * "context": the size of a learned position table (GPT-2's n_positions), else
 * max_position_embeddings, or null when config.json gives neither.
 */
export function contextLength(config: ModelConfig): number | null {
  return modelDims(config).maxPositions ?? config.max_position_embeddings;
}

/**
 * Returns the --max-length to use with the model folder `dir`. The default is lowered to the
 * model's context length, and a --max-length above it given on the command line is rejected.
 * Models that report no context length accept any --max-length.
 */
export function resolveMaxLength(verb: string, dir: string, values: OptionValues): number {
  const maxLength = Number(values["max-length"]);
  const context = contextLength(readModelConfig(dir));
  if (context === null || maxLength <= context) return maxLength;
  if (isDefaultValue(values, "max-length")) return context;
  throw new UsageError(
    `tslora ${verb}: --max-length ${maxLength} is above the context length of the model ` +
      `(${context} tokens, from ${dir}/config.json); pass --max-length ${context} or less`,
  );
}

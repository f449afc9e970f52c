// Loading a model and its tokenizer from a local Hugging Face folder or a Hub id.
import { readModelConfig } from "../io/config.js";
import { resolveModelDir, type HubOptions } from "../io/hub.js";
import { loadTokenizer, type TextTokenizer } from "../io/tokenizer.js";
import type { QuantizeOption } from "../engine/index.js";
import type { QuantizeSummary } from "./quantize.js";
import type { CausalLM } from "./types.js";
import { checkLoadOptions, loadModelFromDir, type LoadDType } from "./weights.js";

export interface LoadModelOptions {
  /** Storage type of weight matrices and embeddings (default "auto"). Compute is f32. */
  dtype?: LoadDType;
  hub?: HubOptions;
  /** Quantize the Linear layers of the transformer blocks while loading (default "none"). */
  quantize?: QuantizeOption;
  /** Filled with the quantized layers' memory before and after, when quantizing. */
  quantizeSummary?: QuantizeSummary;
}

export interface LoadedModel {
  model: CausalLM;
  tokenizer: TextTokenizer;
  /** The local model folder. */
  dir: string;
}

/** Loads the model and tokenizer of a local folder or Hub id ("owner/name[@revision]"). */
export async function loadModel(
  idOrPath: string,
  options: LoadModelOptions = {},
): Promise<LoadedModel> {
  checkLoadOptions("loadModel", options.dtype ?? "auto", options.quantize ?? "none");
  const dir = await resolveModelDir(idOrPath, options.hub);
  // config.json is checked first. The tokenizer reads it too, but only for fallback token ids,
  // so its errors would not say that the model's config is broken.
  readModelConfig(dir);
  const tokenizer = await loadTokenizer(dir);
  const model = loadModelFromDir(dir, options.dtype ?? "auto", {
    quantize: options.quantize,
    summary: options.quantizeSummary,
  });
  return { model, tokenizer, dir };
}

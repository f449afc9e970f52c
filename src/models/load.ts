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
  // A model may have more embeddings than the tokenizer has ids, never fewer in use.
  if (tokenizer.vocabSize > model.dims.vocabSize) {
    process.emitWarning(
      `the tokenizer in ${dir} has ${tokenizer.vocabSize} token ids, but the model's vocab_size ` +
        `is ${model.dims.vocabSize}, so text that uses ids from ${model.dims.vocabSize} on ` +
        `fails; check that tokenizer.json belongs to this model`,
      "TokenizerWarning",
    );
    // Node emits warnings on a later tick; let it, so that the warning comes before any error.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { model, tokenizer, dir };
}

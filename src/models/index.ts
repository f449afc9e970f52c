// Causal language models of the supported families, and loading them from Hugging Face folders.
export type { CausalLM, ForwardOptions, LossOptions, ModelDims } from "./types.js";
export { architectureName, createModel, KNOWN_MODEL_TYPES, modelDims } from "./registry.js";
export { loadModel, type LoadModelOptions, type LoadedModel } from "./load.js";
export {
  LOAD_DTYPES,
  loadModelFromDir,
  loadWeights,
  type LoadDType,
  type LoadFromDirOptions,
  type TensorLoader,
} from "./weights.js";
export {
  dequantizeLinear,
  disposeQuantized,
  formatMiB,
  quantizableLinears,
  quantizationOf,
  quantizeModel,
  quantizingLoader,
  type QuantizeSummary,
} from "./quantize.js";
export { GPT2LMHeadModel, gpt2Dims, parseGpt2Config, type Gpt2Config } from "./gpt2.js";
export { LlamaForCausalLM, llamaDims, parseLlamaConfig, type LlamaConfig } from "./llama.js";
export {
  BloomForCausalLM,
  alibiSlopes,
  bloomDims,
  parseBloomConfig,
  type BloomConfig,
} from "./bloom.js";

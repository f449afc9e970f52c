// The tslora library: load a Hugging Face causal language model, run it, and generate text.
//
//   const { model, tokenizer } = await loadModel("path/or/owner-name");
//   const { texts } = generateText(model, tokenizer, "Once upon a time,", { maxNewTokens: 40 });

// Models: loading, the model interface and the supported architectures.
export {
  architectureName,
  createModel,
  KNOWN_MODEL_TYPES,
  loadModel,
  loadModelFromDir,
  loadWeights,
  modelDims,
  BloomForCausalLM,
  GPT2LMHeadModel,
  LlamaForCausalLM,
  type CausalLM,
  type ForwardOptions,
  type LoadDType,
  type LoadedModel,
  type LoadModelOptions,
  type LossOptions,
  type ModelDims,
} from "./models/index.js";

// Quantized frozen bases (int8, NF4): loadModel(id, { quantize }) or quantizeModel(model, kind).
export {
  dequantizeLinear,
  quantizationOf,
  quantizeModel,
  type QuantizeSummary,
} from "./models/index.js";
export { QuantizedTensor, type QuantKind, type QuantizeOption } from "./engine/index.js";

// Generation.
export {
  generate,
  generateText,
  KVCache,
  TextStream,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
  type GenerateTextOptions,
  type SamplingOptions,
} from "./generate/index.js";

// LoRA adapters with PEFT's config, maths and files.
export {
  activeAdapter,
  applyLora,
  countParameters,
  deleteAdapter,
  disableAdapters,
  enableAdapters,
  listAdapters,
  loadAdapter,
  loraConfig,
  mergeAdapter,
  mergeAndUnload,
  mergeCheckpoint,
  saveAdapter,
  setActiveAdapter,
  trainableParameters,
  trainableParametersReport,
  unmergeAdapter,
  withAdaptersDisabled,
  type LoraConfig,
  type LoraConfigInput,
} from "./lora/index.js";

// Building blocks for custom models and adapters.
export {
  Embedding,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  RMSNorm,
  type LinearHook,
  type LinearLayout,
} from "./nn/index.js";

// Tensors and autodiff, for running forward and backward passes directly.
export { backward, endStep, noGrad, Tensor, type DType } from "./engine/index.js";

// Tokenizers, configs and the Hub.
export { loadTokenizer, type TextTokenizer } from "./io/tokenizer.js";
export { readModelConfig, readGenerationConfig, type ModelConfig } from "./io/config.js";
export { resolveModelDir, type HubOptions } from "./io/hub.js";

// Training and evaluation.
export {
  fineTune,
  trainLoop,
  learningRateAt,
  enableGradientCheckpointing,
  NonFiniteLossError,
  type FineTuneOptions,
  type FineTuneResult,
  type StepMetrics,
  type TrainLoopOptions,
  type ValidationMetrics,
} from "./train/index.js";
export {
  compareWithBase,
  evaluateLoss,
  evaluateSquad,
  squadPrompts,
  type LossReport,
  type SquadEvaluation,
  type SquadPrompt,
} from "./eval/index.js";

// Datasets: readers, prompt templates, tokenization with loss masks, splits and batches.
export {
  BatchIterator,
  loadDataset,
  parseTemplate,
  splitByGroup,
  SQUAD_TEMPLATE,
  tokenizeSamples,
  type Batch,
  type LoadedDataset,
  type LoadDatasetOptions,
  type FieldsSample,
  type Sample,
  type SquadQuestion,
  type TokenizedExample,
  type TokenizeReport,
} from "./data/index.js";
export { exactMatch, f1Score, normalizeAnswer, scoreSquad } from "./eval/squad-metric.js";
export { AdamW, clipGradNorm, gradNorm, type AdamWOptions } from "./engine/optim.js";
export { Rng } from "./engine/random.js";

// LoRA: PEFT-compatible adapters (config, injection, named adapters, files, merge, report).
export {
  ALL_LINEAR,
  LORA_DEFAULTS,
  familyDefaultTargets,
  loraConfig,
  loraScaling,
  type ExcludeSpec,
  type InitLoraWeights,
  type LoraBias,
  type LoraConfig,
  type LoraConfigInput,
  type TargetSpec,
} from "./config.js";
export { applyLora, type ApplyLoraOptions, type LoraTargetModel } from "./inject.js";
export {
  activeAdapter,
  deleteAdapter,
  disableAdapters,
  enableAdapters,
  getAdapter,
  listAdapters,
  setActiveAdapter,
  trainableParameters,
  withAdaptersDisabled,
} from "./adapters.js";
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadAdapter,
  readAdapterConfig,
  saveAdapter,
  type LoadAdapterOptions,
  type SaveAdapterOptions,
} from "./adapter-io.js";
export { mergeAdapter, mergeAndUnload, unmergeAdapter } from "./merge.js";
export {
  mergeCheckpoint,
  type MergeCheckpointOptions,
  type MergeSummary,
} from "./merge-checkpoint.js";
export { countParameters, trainableParametersReport, type ParameterCount } from "./report.js";
export { LoraLinear, type LoraWeights } from "./layer.js";
export type { AdapterRecord } from "./state.js";

// Adding a named adapter to a model: target selection, fan_in_fan_out, per-module rank and
// alpha, the LoRA hooks on the Linear modules, trainable biases and modules_to_save copies.
import { Tensor } from "../engine/index.js";
import { Rng } from "../engine/random.js";
import { Linear } from "../nn/linear.js";
import type { Module } from "../nn/module.js";
import {
  checkConfigKeys,
  loraConfig,
  loraScaling,
  withConfigChanges,
  type LoraConfig,
  type LoraConfigInput,
} from "./config.js";
import { initLoraMatrices } from "./init.js";
import { LoraLinear } from "./layer.js";
import { activateAdapter, setRequiresGrad } from "./adapters.js";
import { ensureLoraState, type AdapterRecord } from "./state.js";
import {
  isModuleToSave,
  rankAndAlphaFor,
  selectTargets,
  type ModuleEntry,
  type TargetSelection,
} from "./targets.js";

/** Seed of the generator applyLora creates when the caller passes none. */
export const DEFAULT_LORA_SEED = 0;

/** The model surface LoRA needs (every CausalLM has it). */
export interface LoraTargetModel extends Module {
  readonly modelType: string;
  lmHeadWeight(): Tensor;
}

export interface ApplyLoraOptions {
  /** Adapter name (default "default", as in PEFT). */
  adapterName?: string;
  /**
   * Generator for the initial weights and for dropout. Default: the model's LoRA generator, or a
   * new Rng(DEFAULT_LORA_SEED) for its first adapter, so runs repeat unless a seed is given.
   */
  rng?: Rng;
  /** Make the new adapter active (default: only when it is the model's first adapter). */
  activate?: boolean;
  /** Mark the LoRA tensors (and trained biases, modules_to_save copies) trainable. Default true. */
  trainable?: boolean;
}

/** Module paths of the model and what each one is. */
export function moduleInventory(model: Module): ModuleEntry[] {
  return model.namedModules().map(([path, m]) => ({
    path,
    typeName: m.constructor.name,
    isLinear: m instanceof Linear,
  }));
}

/** Paths of the output layer, which "all-linear" leaves out (PEFT: get_output_embeddings). */
export function outputLayerPaths(model: LoraTargetModel): string[] {
  const head = model.lmHeadWeight();
  return model
    .namedModules()
    .filter(
      ([path, m]) => m instanceof Linear && (m.weight === head || /(^|\.)lm_head$/.test(path)),
    )
    .map(([path]) => path);
}

/** Selects the targets of `config` in `model`, throwing one error that lists every problem. */
export function selectModelTargets(model: LoraTargetModel, config: LoraConfig): TargetSelection {
  return selectTargets(config, moduleInventory(model), {
    modelType: model.modelType,
    outputLayerPaths: outputLayerPaths(model),
  });
}

function linearAt(model: Module, path: string): Linear {
  const m = model.getModule(path);
  if (!(m instanceof Linear)) throw new Error(`applyLora: "${path}" is not a Linear`);
  return m;
}

/**
 * Returns the config with fan_in_fan_out set as the targets need it. PEFT warns and forces
 * true for GPT-2's Conv1D ([in, out] weights) and false for nn.Linear; we do the same.
 */
function fixFanInFanOut(model: Module, config: LoraConfig, paths: readonly string[]): LoraConfig {
  const layouts = new Set(paths.map((p) => linearAt(model, p).layout));
  if (layouts.size > 1) {
    throw new Error(
      `applyLora: the targets mix Conv1D ([in, out]) and Linear ([out, in]) weights; ` +
        `one adapter_config.json cannot describe both (fan_in_fan_out); target one kind`,
    );
  }
  const isConv1D = layouts.has("inOut");
  if (config.fan_in_fan_out === isConv1D) return config;
  process.emitWarning(
    `fan_in_fan_out is ${config.fan_in_fan_out} but the targets are ` +
      `${isConv1D ? "Conv1D" : "Linear"} layers; setting fan_in_fan_out to ${isConv1D}`,
    "LoraWarning",
  );
  return withConfigChanges(config, { fan_in_fan_out: isConv1D });
}

/** Initial values or loaded values for one adapted Linear, row-major f32. */
export interface LoraValues {
  A: Float32Array;
  B: Float32Array;
}

/** Everything needed to add an adapter whose targets are already known. */
export interface AdapterSpec {
  name: string;
  config: LoraConfig;
  targets: readonly string[];
  /** LoRA values per target path; a missing entry is initialised from config.init_lora_weights. */
  values?: ReadonlyMap<string, LoraValues>;
  /** Values for biases and modules_to_save tensors by parameter path (loaded adapters). */
  params?: ReadonlyMap<string, Float32Array>;
}

/**
 * Adds a LoRA adapter to `model` and returns its record. `config` is validated first;
 * target_modules left unset means PEFT's default for the model family.
 */
export function applyLora(
  model: LoraTargetModel,
  config: LoraConfig | LoraConfigInput = {},
  options: ApplyLoraOptions = {},
): AdapterRecord {
  model.throwIfDisposed("applyLora");
  checkOptionKeys(options);
  let validated: LoraConfig;
  if (isValidated(config)) {
    validated = config;
  } else {
    checkConfigKeys(config, "applyLora");
    validated = loraConfig(config);
  }
  const selection = selectModelTargets(model, validated);
  const resolved = withConfigChanges(validated, { target_modules: selection.resolved });
  return addAdapter(
    model,
    { name: options.adapterName ?? "default", config: resolved, targets: selection.paths },
    options,
  );
}

const APPLY_OPTION_KEYS: Readonly<Record<keyof ApplyLoraOptions, true>> = {
  adapterName: true,
  rng: true,
  activate: true,
  trainable: true,
};

function checkOptionKeys(options: ApplyLoraOptions): void {
  const unknown = Object.keys(options).filter((key) => !Object.hasOwn(APPLY_OPTION_KEYS, key));
  if (unknown.length === 0) return;
  throw new Error(
    `applyLora: unknown option(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")} in the ` +
      `third argument; the known options are ${Object.keys(APPLY_OPTION_KEYS).join(", ")} ` +
      `(LoRA config fields such as r go in the second argument)`,
  );
}

function isValidated(config: LoraConfig | LoraConfigInput): config is LoraConfig {
  const t = (config as LoraConfig).target_modules;
  return typeof t === "object" && t !== null && !Array.isArray(t) && "kind" in t;
}

/** Adds an adapter with known targets (applyLora and loadAdapter share it). */
export function addAdapter(
  model: LoraTargetModel,
  spec: AdapterSpec,
  options: ApplyLoraOptions = {},
): AdapterRecord {
  const state = ensureLoraState(model, "applyLora");
  if (state.adapters.has(spec.name)) {
    throw new Error(
      `applyLora: the model already has an adapter named "${spec.name}"; ` +
        `pick another adapterName or deleteAdapter it first`,
    );
  }
  if (options.rng !== undefined) state.dropout.rng = options.rng;
  state.dropout.rng ??= new Rng(DEFAULT_LORA_SEED);
  const rng = state.dropout.rng;
  const config = fixFanInFanOut(model, spec.config, spec.targets);
  // Freeze the base model once, before the first adapter adds its own parameters.
  if (state.adapters.size === 0) freezeBaseModel(model);

  for (const path of spec.targets) {
    const linear = linearAt(model, path);
    let layer = state.layers.get(path);
    if (layer === undefined) {
      if (linear.hook !== null) {
        throw new Error(`applyLora: "${path}" already has a hook that is not LoRA`);
      }
      layer = new LoraLinear(linear, path, state.dropout);
      linear.hook = layer;
      state.layers.set(path, layer);
    }
    const { r, alpha } = rankAndAlphaFor(config, path);
    const loaded = spec.values?.get(path);
    const values =
      loaded ??
      initLoraMatrices(r, linear.inFeatures, linear.outFeatures, config.init_lora_weights, rng);
    const A = Tensor.from(values.A, [r, linear.inFeatures], "f32", { persistent: true });
    const B = Tensor.from(values.B, [linear.outFeatures, r], "f32", { persistent: true });
    layer.adapters.set(spec.name, {
      A,
      B,
      r,
      alpha,
      scaling: loraScaling(alpha, r, config.use_rslora),
      dropout: config.lora_dropout,
    });
  }

  const record: AdapterRecord = {
    name: spec.name,
    config,
    targets: [...spec.targets],
    savedModules: copyModulesToSave(model, config, spec.params),
    biases: trainedBiases(model, config, spec.targets, spec.params),
    trainable: options.trainable ?? true,
  };
  state.adapters.set(spec.name, record);
  // Only the active adapter trains; activateAdapter sets requiresGrad accordingly.
  setRequiresGrad(record, state.layers, false);
  if (options.activate ?? state.active === null) activateAdapter(model, spec.name);
  return record;
}

function freezeBaseModel(model: Module): void {
  for (const [, t] of model.namedParameters()) t.requiresGrad = false;
}

/** Parameter paths of every module that modules_to_save names. */
export function modulesToSaveParams(model: Module, config: LoraConfig): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  if (config.modules_to_save === null) return out;
  for (const [path, module] of model.namedModules()) {
    if (path === "" || !isModuleToSave(config, path)) continue;
    for (const [name, t] of module.namedParameters(path)) {
      // A nested match (a module inside a saved module) adds nothing new.
      if (!out.has(name)) out.set(name, t);
    }
  }
  return out;
}

function copyModulesToSave(
  model: Module,
  config: LoraConfig,
  loaded: ReadonlyMap<string, Float32Array> | undefined,
): Map<string, Tensor> {
  const copies = new Map<string, Tensor>();
  for (const [path, t] of modulesToSaveParams(model, config)) {
    const values = loaded?.get(path) ?? t.toFloat32Array();
    copies.set(path, Tensor.from(values, t.shape, "f32", { persistent: true }));
  }
  if (config.modules_to_save !== null && copies.size === 0) {
    throw new Error(
      `applyLora: modules_to_save ${JSON.stringify(config.modules_to_save)} matches no module ` +
        `with parameters; use module paths or path suffixes such as "lm_head"`,
    );
  }
  return copies;
}

/**
 * Bias parameters an adapter trains, by path: every bias of the model for bias "all" (PEFT marks
 * each parameter whose name contains "bias"), the adapted layers' biases for "lora_only".
 * These are the model's own tensors, cast to f32 when stored in another dtype.
 */
export function biasParamPaths(
  model: Module,
  config: LoraConfig,
  targets: readonly string[],
): string[] {
  if (config.bias === "none") return [];
  // A bias inside a modules_to_save module is saved with that module's copy instead.
  const saved = modulesToSaveParams(model, config);
  const candidates =
    config.bias === "all"
      ? model.namedParameters().map(([path]) => path)
      : targets.filter((path) => linearAt(model, path).bias !== null).map((p) => `${p}.bias`);
  return candidates.filter((path) => path.includes("bias") && !saved.has(path));
}

function trainedBiases(
  model: Module,
  config: LoraConfig,
  targets: readonly string[],
  loaded: ReadonlyMap<string, Float32Array> | undefined,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const params = new Map(model.namedParameters());
  for (const path of biasParamPaths(model, config, targets)) {
    const current = params.get(path);
    if (current === undefined) continue;
    const values = loaded?.get(path);
    let tensor = current;
    if (current.dtype !== "f32" || values !== undefined) {
      tensor = Tensor.from(values ?? current.toFloat32Array(), current.shape, "f32", {
        persistent: true,
      });
      model.setParameter(path, tensor);
    }
    out.set(path, tensor);
  }
  return out;
}

// Adapter folders as PEFT writes them: adapter_config.json and adapter_model.safetensors (F32,
// keys base_model.model.<path>.lora_A.weight [r, in] and .lora_B.weight [out, r], metadata
// {"format": "pt"}, tensors in the safetensors library's order). Loading is strict: every
// problem of a file against the model is reported in one error, where PEFT only warns and runs
// the base model.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import { makeFolder } from "../io/folders.js";
import { decodeToFloat32 } from "../io/dtypes.js";
import { readSafetensors, writeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import type { Rng } from "../engine/random.js";
import type { Linear } from "../nn/linear.js";
import type { Module } from "../nn/module.js";
import { adapterTensors } from "./adapters.js";
import { adapterConfigJson, parseAdapterConfig } from "./adapter-config.js";
import { withConfigChanges, type LoraConfig } from "./config.js";
import {
  addAdapter,
  biasParamPaths,
  modulesToSaveParams,
  moduleInventory,
  outputLayerPaths,
  type LoraTargetModel,
  type LoraValues,
} from "./inject.js";
import {
  matchAdapterTensors,
  safetensorsOrder,
  type ExpectedAdapter,
  type ExpectedLora,
} from "./keys.js";
import { adapterRecord, loraState, type AdapterRecord } from "./state.js";
import { collectTargets, linearModuleList, rankAndAlphaFor } from "./targets.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

export interface SaveAdapterOptions {
  /** Name of the adapter to save (default: the active one). */
  adapterName?: string;
  /** base_model_name_or_path to record (default: the value in the adapter's config). */
  baseModelNameOrPath?: string | null;
}

/**
 * Writes an adapter folder that PEFT loads unchanged: adapter_config.json (inference_mode true,
 * as PEFT's save_pretrained writes it) and adapter_model.safetensors. Each file is written
 * atomically.
 */
export function saveAdapter(model: Module, dir: string, options: SaveAdapterOptions = {}): void {
  const state = loraState(model, "saveAdapter");
  const name = options.adapterName ?? state.active;
  if (name === null) throw new Error("saveAdapter: the model has no active adapter; name one");
  const record = adapterRecord(state, name, "saveAdapter");
  const config = withConfigChanges(record.config, {
    inference_mode: true,
    base_model_name_or_path:
      options.baseModelNameOrPath === undefined
        ? record.config.base_model_name_or_path
        : options.baseModelNameOrPath,
  });
  const tensors: TensorToWrite[] = adapterTensors(state, record).map(([key, t]) => ({
    name: key,
    dtype: "F32",
    shape: [...t.shape],
    // A copy: the tensor's bytes are a view into the wasm memory, which may grow meanwhile.
    data: t.bytes().slice(),
  }));
  makeFolder(dir);
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), safetensorsOrder(tensors), { format: "pt" });
  writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), adapterConfigJson(config));
}

export interface LoadAdapterOptions {
  /** Name for the loaded adapter (default "default"). */
  adapterName?: string;
  /** Make it active (default: only when it is the model's first adapter). */
  activate?: boolean;
  /** Train it further (default false, as PEFT's is_trainable). */
  trainable?: boolean;
  /** Generator for lora_dropout in training mode. */
  rng?: Rng;
}

// How many of an adapter's mismatches the load error lists before it counts the rest.
const MAX_LISTED_PROBLEMS = 12;

/** Reads and validates an adapter folder's adapter_config.json. */
export function readAdapterConfig(dir: string): LoraConfig {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new Error(
      `loadAdapter: ${dir} is a file, but an adapter is a folder with ${ADAPTER_CONFIG_FILE} ` +
        `and ${ADAPTER_WEIGHTS_FILE}; pass its folder ${dirname(dir)} as the adapter path ` +
        `(--adapter on the command line)`,
    );
  }
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) {
    // A training run stopped before its end has checkpoints with complete adapters.
    const latest = join(dir, "checkpoints", "latest");
    const checkpoint = existsSync(latest) ? readFileSync(latest, "utf8").trim() : "";
    const hint =
      checkpoint === ""
        ? ""
        : `. The run in ${dir} stopped before its end; its latest checkpoint ` +
          `${join(dir, "checkpoints", checkpoint)} is an adapter folder, or finish the run ` +
          `with \`tslora train ... --resume\``;
    throw new Error(
      `loadAdapter: ${path} not found; an adapter folder needs ${ADAPTER_CONFIG_FILE}${hint}`,
    );
  }
  return parseAdapterConfig(readFileSync(path, "utf8"), path);
}

/** Builds the expected adapter content for `config` and collects the target problems. */
function expectedAdapter(
  model: LoraTargetModel,
  config: LoraConfig,
): {
  expected: ExpectedAdapter;
  targets: string[];
  resolved: LoraConfig;
  problems: string[];
  moduleList: string;
} {
  const modules = moduleInventory(model);
  const report = collectTargets(config, modules, {
    modelType: model.modelType,
    outputLayerPaths: outputLayerPaths(model),
  });
  const problems = [...report.problems];

  const lora = new Map<string, ExpectedLora>();
  for (const path of report.paths) {
    const linear = model.getModule(path) as Linear;
    const { r } = rankAndAlphaFor(config, path);
    lora.set(path, { r, inFeatures: linear.inFeatures, outFeatures: linear.outFeatures });
  }
  const shapes = new Map(model.namedParameters().map(([p, t]) => [p, [...t.shape]]));
  const params = new Map<string, number[]>();
  const optionalParams = new Set<string>();
  for (const path of biasParamPaths(model, config, report.paths)) {
    params.set(path, shapes.get(path) ?? []);
    // PEFT 0.21's save looks for "<path>.bias" beside the lora_ keys, but a wrapped layer's bias
    // is "<path>.base_layer.bias", so PEFT files with bias "lora_only" carry no biases.
    if (config.bias === "lora_only") optionalParams.add(path);
  }
  for (const [path, t] of modulesToSaveParams(model, config)) params.set(path, [...t.shape]);

  const rankSource =
    Object.keys(config.rank_pattern).length > 0
      ? "adapter_config.json (r and rank_pattern)"
      : "adapter_config.json";
  const resolved = withConfigChanges(config, { target_modules: report.resolved });
  return {
    expected: { lora, params, optionalParams, rankSource },
    targets: report.paths,
    resolved,
    problems,
    moduleList: linearModuleList(modules),
  };
}

/**
 * Returns a line for the error of loadAdapter when every lora_A tensor has the same rank and
 * adapter_config.json sets another r (with no rank_pattern), or "" otherwise.
 */
function rankHint(
  config: LoraConfig,
  tensors: readonly { name: string; shape: number[] }[],
): string {
  if (Object.keys(config.rank_pattern).length > 0) return "";
  const ranks = new Set(
    tensors.filter((t) => /\.lora_A(\.[^.]+)?\.weight$/.test(t.name)).map((t) => t.shape[0]),
  );
  if (ranks.size !== 1) return "";
  const [stored] = ranks;
  if (stored === config.r) return "";
  return (
    `\nEvery lora_A tensor has rank ${stored}, but adapter_config.json sets "r": ${config.r}; ` +
    `set "r": ${stored} there if the tensors are the intended adapter.`
  );
}

/**
 * Loads a PEFT adapter folder onto `model` as a named adapter. Accepts PEFT's key variants
 * (".default." in keys, short or full-path target names). Throws one error that lists every
 * problem: missing or unexpected keys, keys without the base_model.model. prefix, targets that
 * do not exist, shapes that disagree with r or the model.
 */
export function loadAdapter(
  model: LoraTargetModel,
  dir: string,
  options: LoadAdapterOptions = {},
): AdapterRecord {
  model.throwIfDisposed("loadAdapter");
  const config = readAdapterConfig(dir);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    throw new Error(
      `loadAdapter: ${weightsPath} not found; PEFT adapters saved as adapter_model.bin ` +
        `(pickle) are not supported, re-save the adapter with safetensors`,
    );
  }
  const { tensors } = readSafetensors(weightsPath);
  const { expected, targets, resolved, problems, moduleList } = expectedAdapter(model, config);
  const match = matchAdapterTensors(
    [...tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    expected,
  );
  if (problems.length + match.problems.length > 0) {
    const all = [...problems, ...match.problems];
    let hint = problems.length > 0 ? `\n${moduleList}` : "";
    hint += rankHint(config, [...tensors.values()]);
    // The base model comes first: an adapter of another model is the usual cause, and the
    // per-tensor lines after it can be many.
    const baseModel =
      config.base_model_name_or_path === null
        ? ""
        : ` adapter_config.json names the base model "${config.base_model_name_or_path}"; ` +
          `check that the adapter was trained on the model being loaded.`;
    const count = all.length === 1 ? "1 problem" : `${all.length} problems`;
    // An adapter of another model has a problem per tensor, hundreds for a real model.
    const listed = all.slice(0, MAX_LISTED_PROBLEMS);
    if (all.length > listed.length) listed.push(`... and ${all.length - listed.length} more`);
    throw new Error(
      `loadAdapter: ${dir} does not fit the model (${count}).${baseModel}\n` +
        `  - ${listed.join("\n  - ")}${hint}`,
    );
  }

  // A NaN or infinite weight would turn every output into NaN without an error.
  const decodeFinite = (key: string): Float32Array | null => {
    const t = tensors.get(key);
    if (t === undefined) return null;
    const decoded = decodeToFloat32(t.data, t.dtype, key);
    const bad = decoded.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new Error(
        `loadAdapter: ${weightsPath}: tensor "${key}" contains a non-finite value ` +
          `(${decoded[bad]} at element ${bad}); the adapter is damaged or its training ` +
          `diverged, so use an earlier checkpoint of the run`,
      );
    }
    return decoded;
  };
  const values = new Map<string, LoraValues>();
  for (const [path, { A, B }] of match.lora) {
    const a = decodeFinite(A);
    const b = decodeFinite(B);
    if (a === null || b === null) continue;
    values.set(path, { A: a, B: b });
  }
  const params = new Map<string, Float32Array>();
  for (const [path, key] of match.params) {
    const t = decodeFinite(key);
    if (t !== null) params.set(path, t);
  }
  return addAdapter(
    model,
    { name: options.adapterName ?? "default", config: resolved, targets, values, params },
    { activate: options.activate, trainable: options.trainable ?? false, rng: options.rng },
  );
}

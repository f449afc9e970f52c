// Target selection: which modules of a model receive a LoRA adapter. Matching follows PEFT
// (check_target_module_exists): a list entry t matches a module path p when p == t or p ends with
// "." + t; a string is a regex that must match the whole path; "all-linear" takes every Linear
// except the output layer. Works on a plain list of module paths so it can be tested without a
// model.
import { familyDefaultTargets, type LoraConfig, type TargetSpec } from "./config.js";

/** A module of the model: its path, class name and whether it is a Linear. */
export interface ModuleEntry {
  path: string;
  /** Class name, for messages ("Linear", "LayerNorm", ...). */
  typeName: string;
  isLinear: boolean;
}

/** The selected module paths and the target list to save in adapter_config.json. */
export interface TargetSelection {
  paths: string[];
  /** target_modules after expanding family defaults and "all-linear" (PEFT saves the expansion). */
  resolved: TargetSpec;
}

/** Returns true when the name list entry `target` selects the module at `path`. */
export function matchesSuffix(path: string, target: string): boolean {
  return path === target || path.endsWith(`.${target}`);
}

/** Returns true when `pattern` matches the whole of `path`, as Python's re.fullmatch. */
export function fullMatch(pattern: string, path: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(path);
}

/**
 * Returns the layer index in a module path (the number after the layers container), or null.
 * Without layers_pattern PEFT takes the last "<name>.<digits>." part; with it, the digits
 * after one of the given container names.
 */
export function layerIndexOf(path: string, layersPattern: readonly string[] | null): number | null {
  const patterns = layersPattern ?? [null];
  for (const pattern of patterns) {
    const container = pattern === null ? "[^.]*" : `(?:${pattern})`;
    const m = new RegExp(`^.*\\.${container}\\.(\\d+)\\.`).exec(path);
    if (m !== null) return Number(m[1]);
  }
  return null;
}

/**
 * Returns whether `path` is a LoRA target under `config`, ignoring the module type and
 * exclude_modules. `names` is the resolved target list for list-based configs.
 */
function isTargetPath(config: LoraConfig, spec: TargetSpec, path: string): boolean {
  if (spec.kind === "regex") return fullMatch(spec.pattern, path);
  if (spec.kind !== "names") return false;
  // PEFT applies layers_to_transform only to suffix matches; an exact path is always taken.
  if (spec.names.includes(path)) return true;
  if (!spec.names.some((t) => matchesSuffix(path, t))) return false;
  if (config.layers_to_transform === null) return true;
  const index = layerIndexOf(path, config.layers_pattern);
  return index !== null && config.layers_to_transform.includes(index);
}

/** Returns whether exclude_modules removes `path`. */
export function isExcluded(config: LoraConfig, path: string): boolean {
  const ex = config.exclude_modules;
  if (ex.kind === "regex") return fullMatch(ex.pattern, path);
  if (ex.kind === "names") return ex.names.some((t) => matchesSuffix(path, t));
  return false;
}

/** The selection and every problem found, for callers that report problems together. */
export interface TargetReport extends TargetSelection {
  problems: string[];
}

/**
 * Selects the LoRA targets among `modules` (every module of the model, with its path) and
 * collects the problems: a target entry that matches no module, a matched module that is not a
 * Linear, or an empty selection. `outputLayerPaths` are left out of "all-linear" (the LM head).
 */
export function collectTargets(
  config: LoraConfig,
  modules: readonly ModuleEntry[],
  options: { modelType: string; outputLayerPaths?: readonly string[] },
): TargetReport {
  const output = new Set(options.outputLayerPaths ?? []);
  let spec = config.target_modules;
  if (spec.kind === "family-default") {
    spec = { kind: "names", names: [...familyDefaultTargets(options.modelType)].sort() };
  }
  const candidates = modules.filter((m) => m.path !== "");
  const problems: string[] = [];

  if (spec.kind === "all-linear") {
    const paths = candidates
      .filter((m) => m.isLinear && !output.has(m.path) && !isExcluded(config, m.path))
      .map((m) => m.path);
    if (paths.length === 0)
      problems.push(`"all-linear" found no Linear module besides the output layer`);
    return { paths, resolved: { kind: "names", names: [...paths].sort() }, problems };
  }

  if (spec.kind === "names") {
    for (const t of spec.names) {
      if (!candidates.some((m) => matchesSuffix(m.path, t))) {
        problems.push(`target module "${t}" matches no module of the model`);
      }
    }
  }
  const matched = candidates.filter((m) => isTargetPath(config, spec, m.path));
  const selected = matched.filter((m) => !isExcluded(config, m.path));
  for (const m of selected) {
    if (!m.isLinear) {
      problems.push(
        `target "${m.path}" is a ${m.typeName}; LoRA supports Linear (and GPT-2 Conv1D) only`,
      );
    }
  }
  if (problems.length === 0 && selected.length === 0) {
    const reason =
      matched.length > 0 ? "every match is removed by exclude_modules" : "no module matches";
    problems.push(`target_modules ${describeSpec(spec)} selects nothing: ${reason}`);
  }
  const paths = selected.filter((m) => m.isLinear).map((m) => m.path);
  return { paths, resolved: spec, problems };
}

/** Selects the LoRA targets like collectTargets, throwing one error that lists every problem. */
export function selectTargets(
  config: LoraConfig,
  modules: readonly ModuleEntry[],
  options: { modelType: string; outputLayerPaths?: readonly string[] },
): TargetSelection {
  const report = collectTargets(config, modules, options);
  if (report.problems.length > 0) {
    throw new Error(
      `applyLora: invalid target_modules:\n  - ${report.problems.join("\n  - ")}\n` +
        `${linearModuleList(modules)}\n` +
        `Fix target_modules (names match a path or a path suffix after a dot; a string is a regex ` +
        `over the whole path).`,
    );
  }
  return { paths: report.paths, resolved: report.resolved };
}

/** Returns a message paragraph listing the model's Linear module paths. */
export function linearModuleList(modules: readonly ModuleEntry[]): string {
  const linear = modules.filter((m) => m.isLinear).map((m) => m.path);
  return `The model's Linear modules are:\n  ${linear.join("\n  ")}`;
}

function describeSpec(spec: TargetSpec): string {
  if (spec.kind === "names") return JSON.stringify(spec.names);
  if (spec.kind === "regex") return `regex ${JSON.stringify(spec.pattern)}`;
  return spec.kind;
}

/**
 * Returns the rank_pattern or alpha_pattern key that applies to `path`, as PEFT's
 * get_pattern_key: an exact path first, then the first key k such that the path matches
 * (.*\.)?(k) as a whole. Returns null when no key applies.
 */
export function patternKeyFor(
  pattern: Readonly<Record<string, number>>,
  path: string,
): string | null {
  const keys = Object.keys(pattern);
  if (keys.includes(path)) return path;
  for (const key of keys) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(path)) return key;
  }
  return null;
}

/** Returns the rank and alpha for the module at `path` after rank_pattern and alpha_pattern. */
export function rankAndAlphaFor(config: LoraConfig, path: string): { r: number; alpha: number } {
  const rKey = patternKeyFor(config.rank_pattern, path);
  const aKey = patternKeyFor(config.alpha_pattern, path);
  return {
    r: rKey === null ? config.r : config.rank_pattern[rKey],
    alpha: aKey === null ? config.lora_alpha : config.alpha_pattern[aKey],
  };
}

/**
 * Returns whether modules_to_save names the module at `path`. PEFT matches an entry as the
 * whole path or a path suffix after a dot.
 */
export function isModuleToSave(config: LoraConfig, path: string): boolean {
  return (config.modules_to_save ?? []).some((t) => matchesSuffix(path, t));
}

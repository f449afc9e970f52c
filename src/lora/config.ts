// The LoRA configuration with PEFT's field names, defaults and checks (PEFT's LoraConfig). The
// fields are snake_case because they are the keys of adapter_config.json. loraConfig() validates
// everything when the config is built, so later stages can trust it.
import { formatValue } from "../engine/format-value.js";

/** Module selection by target_modules. PEFT encodes the cases as a list, a string and "all-linear". */
export type TargetSpec =
  | { kind: "family-default" }
  | { kind: "names"; names: readonly string[] }
  | { kind: "regex"; pattern: string }
  | { kind: "all-linear" };

/** Module selection for exclude_modules: a list of names (path suffixes) or one regex. */
export type ExcludeSpec =
  | { kind: "none" }
  | { kind: "names"; names: readonly string[] }
  | { kind: "regex"; pattern: string };

export type LoraBias = "none" | "all" | "lora_only";

/** true: A Kaiming-uniform, B zero. "gaussian": A ~ N(0, (1/r)^2), B zero. false: both random. */
export type InitLoraWeights = boolean | "gaussian";

/** The user-facing input: adapter_config.json keys, every one optional. */
export interface LoraConfigInput {
  r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  target_modules?: readonly string[] | string | null;
  exclude_modules?: readonly string[] | string | null;
  layers_to_transform?: readonly number[] | number | null;
  layers_pattern?: readonly string[] | string | null;
  bias?: LoraBias;
  use_rslora?: boolean;
  rank_pattern?: Record<string, number> | null;
  alpha_pattern?: Record<string, number> | null;
  modules_to_save?: readonly string[] | null;
  fan_in_fan_out?: boolean;
  init_lora_weights?: InitLoraWeights;
  base_model_name_or_path?: string | null;
  revision?: string | null;
  inference_mode?: boolean;
  task_type?: string | null;
}

/** Every key of LoraConfigInput; the Record type makes the compiler check the list is whole. */
const INPUT_KEYS: Readonly<Record<keyof LoraConfigInput, true>> = {
  r: true,
  lora_alpha: true,
  lora_dropout: true,
  target_modules: true,
  exclude_modules: true,
  layers_to_transform: true,
  layers_pattern: true,
  bias: true,
  use_rslora: true,
  rank_pattern: true,
  alpha_pattern: true,
  modules_to_save: true,
  fan_in_fan_out: true,
  init_lora_weights: true,
  base_model_name_or_path: true,
  revision: true,
  inference_mode: true,
  task_type: true,
};

/**
 * Throws if `input` has a key that LoraConfigInput does not define (a typo such as "rank"),
 * listing the unknown and the known keys. For objects that callers write in code: an
 * adapter_config.json from PEFT has many more keys and goes through parseAdapterConfig instead.
 */
export function checkConfigKeys(input: object, where: string): void {
  const unknown = Object.keys(input).filter((key) => !Object.hasOwn(INPUT_KEYS, key));
  if (unknown.length === 0) return;
  throw new Error(
    `${where}: unknown LoRA config key(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")}; ` +
      `the known keys are ${Object.keys(INPUT_KEYS).join(", ")} (PEFT's adapter_config.json names)`,
  );
}

/** A validated config. Field names and meanings are PEFT's. */
export interface LoraConfig {
  readonly r: number;
  readonly lora_alpha: number;
  readonly lora_dropout: number;
  readonly target_modules: TargetSpec;
  readonly exclude_modules: ExcludeSpec;
  /** Layer indices to adapt, or null for every layer. */
  readonly layers_to_transform: readonly number[] | null;
  readonly layers_pattern: readonly string[] | null;
  readonly bias: LoraBias;
  readonly use_rslora: boolean;
  readonly rank_pattern: Readonly<Record<string, number>>;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  readonly modules_to_save: readonly string[] | null;
  readonly fan_in_fan_out: boolean;
  readonly init_lora_weights: InitLoraWeights;
  readonly base_model_name_or_path: string | null;
  readonly revision: string | null;
  readonly inference_mode: boolean;
  readonly task_type: string;
}

/** PEFT's defaults (LoraConfig field defaults, PEFT 0.14 to 0.21). */
export const LORA_DEFAULTS = {
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  bias: "none",
  use_rslora: false,
  fan_in_fan_out: false,
  init_lora_weights: true,
  task_type: "CAUSAL_LM",
} as const;

/**
 * Default target_modules per model_type, as in PEFT's
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.
 */
const FAMILY_TARGETS: Readonly<Record<string, readonly string[]>> = {
  gpt2: ["c_attn"],
  llama: ["q_proj", "v_proj"],
  mistral: ["q_proj", "v_proj"],
  qwen2: ["q_proj", "v_proj"],
  bloom: ["query_key_value"],
};

/** Returns PEFT's default target module names for a model_type, or throws listing known types. */
export function familyDefaultTargets(modelType: string): readonly string[] {
  const names = FAMILY_TARGETS[modelType];
  if (names === undefined) {
    throw new Error(
      `loraConfig: no default target_modules for model_type "${modelType}" ` +
        `(known: ${Object.keys(FAMILY_TARGETS).join(", ")}); set target_modules explicitly`,
    );
  }
  return names;
}

/** The string PEFT expands to every Linear except the output layer. */
export const ALL_LINEAR = "all-linear";

/**
 * Builds a validated LoRA config from adapter_config.json-style fields, filling PEFT's defaults.
 * Every invalid field is reported in one error.
 */
export function loraConfig(input: LoraConfigInput = {}): LoraConfig {
  const problems: string[] = [];
  const r = input.r ?? LORA_DEFAULTS.r;
  if (!Number.isInteger(r) || r <= 0)
    problems.push(`r must be an integer > 0, got ${formatValue(r)}`);

  const loraAlpha = input.lora_alpha ?? LORA_DEFAULTS.lora_alpha;
  if (!Number.isFinite(loraAlpha))
    problems.push(`lora_alpha must be a finite number, got ${formatValue(loraAlpha)}`);

  const dropout = input.lora_dropout ?? LORA_DEFAULTS.lora_dropout;
  if (!(typeof dropout === "number" && dropout >= 0 && dropout < 1)) {
    problems.push(`lora_dropout must be in [0, 1), got ${formatValue(dropout)}`);
  }

  const targets = parseTargets(input.target_modules, problems);
  const exclude = parseExclude(input.exclude_modules, problems);
  const layers = parseLayers(input.layers_to_transform, problems);
  const layersPattern = parseLayersPattern(input.layers_pattern, problems);
  if (targets.kind === "regex" && layers !== null) {
    problems.push("layers_to_transform cannot be used when target_modules is a regex string");
  }
  if (targets.kind === "regex" && layersPattern !== null) {
    problems.push("layers_pattern cannot be used when target_modules is a regex string");
  }
  if (layersPattern !== null && layers === null) {
    problems.push("layers_pattern needs layers_to_transform; set both or neither");
  }

  const bias = input.bias ?? LORA_DEFAULTS.bias;
  if (bias !== "none" && bias !== "all" && bias !== "lora_only") {
    problems.push(`bias must be "none", "all" or "lora_only", got ${JSON.stringify(bias)}`);
  }

  const init = input.init_lora_weights ?? LORA_DEFAULTS.init_lora_weights;
  if (init !== true && init !== false && init !== "gaussian") {
    problems.push(
      `init_lora_weights ${JSON.stringify(init)} is not supported yet; ` +
        `use true (Kaiming-uniform A, zero B), "gaussian" or false`,
    );
  }

  const rankPattern = parsePattern("rank_pattern", input.rank_pattern, true, problems);
  const alphaPattern = parsePattern("alpha_pattern", input.alpha_pattern, false, problems);
  const modulesToSave = parseNameList("modules_to_save", input.modules_to_save, problems);

  if (problems.length > 0) {
    throw new Error(`loraConfig: invalid LoRA config:\n  - ${problems.join("\n  - ")}`);
  }
  return {
    r,
    lora_alpha: loraAlpha,
    lora_dropout: dropout,
    target_modules: targets,
    exclude_modules: exclude,
    layers_to_transform: layers,
    layers_pattern: layersPattern,
    bias,
    use_rslora: input.use_rslora ?? LORA_DEFAULTS.use_rslora,
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    modules_to_save: modulesToSave,
    fan_in_fan_out: input.fan_in_fan_out ?? LORA_DEFAULTS.fan_in_fan_out,
    init_lora_weights: init,
    base_model_name_or_path: input.base_model_name_or_path ?? null,
    revision: input.revision ?? null,
    inference_mode: input.inference_mode ?? false,
    task_type: input.task_type ?? LORA_DEFAULTS.task_type,
  };
}

/** Returns a copy of `config` with some fields replaced, validated again. */
export function withConfigChanges(config: LoraConfig, changes: Partial<LoraConfig>): LoraConfig {
  return loraConfig(toInput({ ...config, ...changes }));
}

/** Converts a validated config back to its input form (for re-validation or JSON). */
export function toInput(config: LoraConfig): LoraConfigInput {
  return {
    r: config.r,
    lora_alpha: config.lora_alpha,
    lora_dropout: config.lora_dropout,
    target_modules: targetsToJson(config.target_modules),
    exclude_modules: excludeToJson(config.exclude_modules),
    layers_to_transform: config.layers_to_transform,
    layers_pattern: config.layers_pattern,
    bias: config.bias,
    use_rslora: config.use_rslora,
    rank_pattern: { ...config.rank_pattern },
    alpha_pattern: { ...config.alpha_pattern },
    modules_to_save: config.modules_to_save,
    fan_in_fan_out: config.fan_in_fan_out,
    init_lora_weights: config.init_lora_weights,
    base_model_name_or_path: config.base_model_name_or_path,
    revision: config.revision,
    inference_mode: config.inference_mode,
    task_type: config.task_type,
  };
}

/** Returns target_modules as adapter_config.json stores it: a list, a string or null. */
export function targetsToJson(spec: TargetSpec): string[] | string | null {
  switch (spec.kind) {
    case "family-default":
      return null;
    case "names":
      return [...spec.names];
    case "regex":
      return spec.pattern;
    case "all-linear":
      return ALL_LINEAR;
  }
}

function excludeToJson(spec: ExcludeSpec): string[] | string | null {
  switch (spec.kind) {
    case "none":
      return null;
    case "names":
      return [...spec.names];
    case "regex":
      return spec.pattern;
  }
}

/** Returns the LoRA scaling: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora (rsLoRA). */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

function parseTargets(value: LoraConfigInput["target_modules"], problems: string[]): TargetSpec {
  if (value === undefined || value === null) return { kind: "family-default" };
  if (typeof value === "string") {
    if (value === ALL_LINEAR) return { kind: "all-linear" };
    if (checkRegex("target_modules", value, problems)) return { kind: "regex", pattern: value };
    return { kind: "family-default" };
  }
  const names = parseNameList("target_modules", value, problems) ?? [];
  // PEFT stores the list as a set; sorting gives a stable order for saved configs.
  return { kind: "names", names: [...new Set(names)].sort() };
}

function parseExclude(value: LoraConfigInput["exclude_modules"], problems: string[]): ExcludeSpec {
  if (value === undefined || value === null) return { kind: "none" };
  if (typeof value === "string") {
    if (checkRegex("exclude_modules", value, problems)) return { kind: "regex", pattern: value };
    return { kind: "none" };
  }
  const names = parseNameList("exclude_modules", value, problems) ?? [];
  return names.length === 0
    ? { kind: "none" }
    : { kind: "names", names: [...new Set(names)].sort() };
}

function checkRegex(field: string, pattern: string, problems: string[]): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch (err) {
    problems.push(
      `${field} regex ${JSON.stringify(pattern)} is invalid: ${(err as Error).message}`,
    );
    return false;
  }
}

function parseNameList(
  field: string,
  value: readonly string[] | null | undefined,
  problems: string[],
): string[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && v.length > 0)) {
    problems.push(`${field} must be a list of non-empty strings, got ${JSON.stringify(value)}`);
    return null;
  }
  return [...value];
}

function parseLayers(
  value: LoraConfigInput["layers_to_transform"],
  problems: string[],
): number[] | null {
  if (value === undefined || value === null) return null;
  const list = typeof value === "number" ? [value] : [...value];
  if (!list.every((i) => Number.isInteger(i) && i >= 0)) {
    problems.push(`layers_to_transform must be integers >= 0, got ${JSON.stringify(value)}`);
    return null;
  }
  // PEFT treats an empty list like null: every layer.
  return list.length === 0 ? null : list;
}

function parseLayersPattern(
  value: LoraConfigInput["layers_pattern"],
  problems: string[],
): string[] | null {
  if (value === undefined || value === null) return null;
  const list = typeof value === "string" ? [value] : [...value];
  if (!list.every((p) => typeof p === "string" && p.length > 0)) {
    problems.push(
      `layers_pattern must be a string or a list of strings, got ${JSON.stringify(value)}`,
    );
    return null;
  }
  return list.length === 0 ? null : list;
}

function parsePattern(
  field: string,
  value: Record<string, number> | null | undefined,
  integer: boolean,
  problems: string[],
): Record<string, number> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    problems.push(`${field} must be an object of pattern → number, got ${JSON.stringify(value)}`);
    return {};
  }
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(value)) {
    const ok = integer ? Number.isInteger(v) && v > 0 : Number.isFinite(v);
    if (!ok) {
      const expected = integer ? "an integer > 0" : "a finite number";
      problems.push(`${field}["${key}"] must be ${expected}, got ${formatValue(v)}`);
      continue;
    }
    checkRegex(`${field} key`, key, problems);
    out[key] = v;
  }
  return out;
}

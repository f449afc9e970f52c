// adapter_config.json: writing it exactly as PEFT does (keys sorted, two-space indent, no
// trailing newline) and reading the files of any PEFT version.
import { loraConfig, targetsToJson, type LoraConfig, type LoraConfigInput } from "./config.js";

/**
 * The keys written to adapter_config.json: the fields that PEFT 0.14 and every later version
 * know, so that every PEFT release since 0.14 loads our files. PEFT 0.13 and older raise a
 * TypeError on eva_config, exclude_modules and lora_bias, and newer releases only add keys.
 */
export const ADAPTER_CONFIG_KEYS = [
  "alpha_pattern",
  "auto_mapping",
  "base_model_name_or_path",
  "bias",
  "eva_config",
  "exclude_modules",
  "fan_in_fan_out",
  "inference_mode",
  "init_lora_weights",
  "layer_replication",
  "layers_pattern",
  "layers_to_transform",
  "loftq_config",
  "lora_alpha",
  "lora_bias",
  "lora_dropout",
  "megatron_config",
  "megatron_core",
  "modules_to_save",
  "peft_type",
  "r",
  "rank_pattern",
  "revision",
  "target_modules",
  "task_type",
  "use_dora",
  "use_rslora",
] as const;

/** A JSON value of adapter_config.json. */
type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Builds the adapter_config.json object (every PEFT 0.14 key, in sorted order). */
export function adapterConfigObject(config: LoraConfig): Record<string, JsonValue> {
  const values: Record<(typeof ADAPTER_CONFIG_KEYS)[number], JsonValue> = {
    alpha_pattern: { ...config.alpha_pattern },
    auto_mapping: null,
    base_model_name_or_path: config.base_model_name_or_path,
    bias: config.bias,
    eva_config: null,
    exclude_modules:
      config.exclude_modules.kind === "none"
        ? null
        : config.exclude_modules.kind === "regex"
          ? config.exclude_modules.pattern
          : [...config.exclude_modules.names],
    fan_in_fan_out: config.fan_in_fan_out,
    inference_mode: config.inference_mode,
    init_lora_weights: config.init_lora_weights,
    layer_replication: null,
    layers_pattern:
      config.layers_pattern === null
        ? null
        : config.layers_pattern.length === 1
          ? config.layers_pattern[0]
          : [...config.layers_pattern],
    layers_to_transform:
      config.layers_to_transform === null ? null : [...config.layers_to_transform],
    loftq_config: {},
    lora_alpha: config.lora_alpha,
    lora_bias: false,
    lora_dropout: config.lora_dropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: config.modules_to_save === null ? null : [...config.modules_to_save],
    peft_type: "LORA",
    r: config.r,
    rank_pattern: { ...config.rank_pattern },
    revision: config.revision,
    target_modules: targetsToJson(config.target_modules),
    task_type: config.task_type,
    use_dora: false,
    use_rslora: config.use_rslora,
  };
  return values;
}

/**
 * Serialises adapter_config.json as PEFT writes it (Python's json.dumps with indent=2 and
 * sort_keys=True): lora_dropout always as a float ("0.0"), no trailing newline.
 */
export function adapterConfigJson(config: LoraConfig): string {
  return formatPythonJson(adapterConfigObject(config), "", new Set(["lora_dropout"]));
}

function formatPythonJson(
  value: JsonValue,
  indent: string,
  floatKeys: Set<string>,
  key = "",
): string {
  const inner = `${indent}  `;
  if (value === null) return "null";
  if (typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") return formatNumber(value, floatKeys.has(key));
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const items = value.map((v) => inner + formatPythonJson(v, inner, floatKeys));
    return `[\n${items.join(",\n")}\n${indent}]`;
  }
  const keys = Object.keys(value).sort();
  if (keys.length === 0) return "{}";
  const items = keys.map(
    (k) => `${inner}${JSON.stringify(k)}: ${formatPythonJson(value[k], inner, floatKeys, k)}`,
  );
  return `{\n${items.join(",\n")}\n${indent}}`;
}

function formatNumber(n: number, asFloat: boolean): string {
  if (!Number.isFinite(n)) throw new Error(`adapterConfigJson: cannot write ${n} to JSON`);
  const text = String(n);
  return asFloat && Number.isInteger(n) ? `${text}.0` : text;
}

/**
 * Keys of newer PEFT releases that change what an adapter computes unless they hold their
 * default. A file that sets one is rejected rather than silently loaded as plain LoRA.
 */
const UNSUPPORTED_WHEN_SET: Readonly<Record<string, (v: unknown) => boolean>> = {
  use_dora: (v) => v === true,
  lora_bias: (v) => v === true,
  layer_replication: (v) => v !== null && v !== undefined,
  target_parameters: (v) => Array.isArray(v) && v.length > 0,
  trainable_token_indices: (v) => v !== null && v !== undefined,
  alora_invocation_tokens: (v) => v !== null && v !== undefined,
  use_qalora: (v) => v === true,
  use_bdlora: (v) => v !== null && v !== undefined && v !== false,
  arrow_config: (v) => v !== null && v !== undefined,
};

/** init_lora_weights values that only affect how PEFT initialised the weights now in the file. */
const INIT_ONLY = /^(pissa|pissa_niter_\d+|olora|loftq|eva|corda|orthogonal)$/;

/**
 * Parses adapter_config.json text (any PEFT version). Keys this library does not use are
 * ignored, unless they ask for a variant it does not implement (DoRA, LoRA bias, ...), which
 * is an error. `where` names the file in messages.
 */
export function parseAdapterConfig(text: string, where: string): LoraConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`loadAdapter: ${where} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`loadAdapter: ${where} must contain a JSON object`);
  }
  const obj = raw as Record<string, unknown>;

  const problems: string[] = [];
  if (obj.peft_type !== "LORA") {
    problems.push(`peft_type is ${JSON.stringify(obj.peft_type)}, expected "LORA"`);
  }
  for (const [key, isSet] of Object.entries(UNSUPPORTED_WHEN_SET)) {
    if (isSet(obj[key])) {
      problems.push(`${key} = ${JSON.stringify(obj[key])} is not supported yet (only plain LoRA)`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`loadAdapter: ${where}: unsupported adapter:\n  - ${problems.join("\n  - ")}`);
  }

  let init = obj.init_lora_weights;
  // The weights are read from the file, so how PEFT initialised them does not matter here.
  if (typeof init === "string" && INIT_ONLY.test(init)) init = true;
  const input: LoraConfigInput = {
    r: obj.r as number | undefined,
    lora_alpha: obj.lora_alpha as number | undefined,
    lora_dropout: obj.lora_dropout as number | undefined,
    target_modules: obj.target_modules as LoraConfigInput["target_modules"],
    exclude_modules: obj.exclude_modules as LoraConfigInput["exclude_modules"],
    layers_to_transform: obj.layers_to_transform as LoraConfigInput["layers_to_transform"],
    layers_pattern: obj.layers_pattern as LoraConfigInput["layers_pattern"],
    bias: obj.bias as LoraConfigInput["bias"],
    use_rslora: obj.use_rslora as boolean | undefined,
    rank_pattern: obj.rank_pattern as LoraConfigInput["rank_pattern"],
    alpha_pattern: obj.alpha_pattern as LoraConfigInput["alpha_pattern"],
    modules_to_save: obj.modules_to_save as LoraConfigInput["modules_to_save"],
    fan_in_fan_out: obj.fan_in_fan_out as boolean | undefined,
    init_lora_weights: init as LoraConfigInput["init_lora_weights"],
    base_model_name_or_path: obj.base_model_name_or_path as string | null | undefined,
    revision: obj.revision as string | null | undefined,
    inference_mode: obj.inference_mode as boolean | undefined,
    task_type: obj.task_type as string | null | undefined,
  };

  try {
    return loraConfig(input);
  } catch (err) {
    throw new Error(`loadAdapter: ${where}: ${(err as Error).message}`);
  }
}

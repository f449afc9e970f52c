// train_config.json, the settings file that `tslora train` writes into its --out folder. eval,
// generate and merge read it from the --adapter folder to reuse the run's data split and to warn
// when the base model is loaded with a different quantization than the run's.
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { QuantizeOption } from "../engine/quant.js";
import { TRAIN_CONFIG_FILE } from "../train/run-folder.js";
import type { OptionValues } from "./train-options.js";

export { TRAIN_CONFIG_FILE };

/** The settings of a training run, read from its train_config.json. */
export interface RunConfig {
  /** Path of the train_config.json file that was read. */
  path: string;
  settings: Record<string, unknown>;
}

export type Warn = (message: string) => void;

/**
 * Reads the train_config.json of the run that produced `adapterDir`. A run's --out folder
 * contains the file itself, and a checkpoint folder (<out>/checkpoints/step-N) uses the one in
 * <out>.
 * Returns null when there is no such file (a PEFT adapter from elsewhere), or, after a warning,
 * when the file is not a JSON object.
 */
export function readRunConfig(adapterDir: string, warn: Warn): RunConfig | null {
  const path = findRunConfigFile(adapterDir);
  if (path === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    warn(`${path} is not valid JSON (${(err as Error).message}); ignoring the run's settings`);
    return null;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    warn(`${path} does not contain a JSON object of settings; ignoring the run's settings`);
    return null;
  }
  return { path, settings: parsed as Record<string, unknown> };
}

function findRunConfigFile(adapterDir: string): string | null {
  const own = join(adapterDir, TRAIN_CONFIG_FILE);
  if (existsSync(own)) return own;
  const parent = dirname(adapterDir);
  if (/^step-\d+$/.test(basename(adapterDir)) && basename(parent) === "checkpoints") {
    const run = join(dirname(parent), TRAIN_CONFIG_FILE);
    if (existsSync(run)) return run;
  }
  return null;
}

/** Returns the run's "quantize" setting, "none" for a run on the unquantized base. */
function runQuantize(config: RunConfig, warn: Warn): QuantizeOption | null {
  const value = config.settings.quantize;
  if (value === undefined) return "none";
  if (value === "int8" || value === "nf4") return value;
  warn(
    `${config.path}: "quantize" is ${JSON.stringify(value)}, expected "int8" or "nf4"; ` +
      `ignoring it`,
  );
  return null;
}

/**
 * Takes the run's value of `option` when the command line leaves it out, and returns the line
 * that reports it. Warns with `mismatch(given value)` when a given value differs.
 */
function takeRunValue(
  option: string,
  trained: string,
  config: RunConfig,
  values: OptionValues,
  given: ReadonlySet<string>,
  text: { taken: string; mismatch: (value: string) => string },
  warn: Warn,
): string | null {
  if (!given.has(option)) {
    values[option] = trained;
    return `--${option} ${trained} from ${config.path}: ${text.taken}`;
  }
  const value = String(values[option]);
  if (value !== trained) warn(text.mismatch(value));
  return null;
}

/**
 * Takes the run's --quantize for eval and generate when the command line leaves the option
 * out, so that they load the base that training validated. Warns when a given --quantize
 * differs from the run's setting, quantized or not, because the adapter's outputs then differ
 * from what training measured. Returns the line that reports a taken format, or null.
 */
export function applyRunQuantize(
  config: RunConfig | null,
  values: OptionValues,
  given: ReadonlySet<string>,
  warn: Warn,
): string | null {
  if (config === null) return null;
  const trained = runQuantize(config, warn);
  if (trained === null) return null;
  if (trained === "none") {
    const quantize = String(values.quantize);
    if (given.has("quantize") && quantize !== "none") {
      warn(
        `the adapter was trained against the full-precision base (${config.path} has no ` +
          `"quantize" setting), but --quantize is ${quantize}, so the outputs differ from the ` +
          `ones training saw; leave out --quantize to load the same base`,
      );
    }
    return null;
  }
  const text = {
    taken: "the base the run trained against",
    mismatch: (quantize: string) =>
      `the adapter was trained against an ${trained} base ("quantize": "${trained}" in ` +
      `${config.path}), but --quantize is ${quantize}, so the outputs differ from the ones ` +
      `training saw; pass --quantize ${trained} to load the same base`,
  };
  return takeRunValue("quantize", trained, config, values, given, text, warn);
}

/**
 * Takes the run's --dtype for eval and generate when the command line leaves the option out.
 * A run records the option only when it was given (not "auto"), for example bf16 weights from
 * an f32 checkpoint, whose rounding the adapter then learned around. Warns when a given --dtype
 * differs. Returns the line that reports a taken dtype, or null.
 */
export function applyRunDtype(
  config: RunConfig | null,
  values: OptionValues,
  given: ReadonlySet<string>,
  warn: Warn,
): string | null {
  if (config === null) return null;
  const trained = config.settings.dtype;
  if (trained === undefined) return null;
  if (trained !== "f32" && trained !== "bf16") {
    warn(
      `${config.path}: "dtype" is ${JSON.stringify(trained)}, expected "f32" or "bf16"; ` +
        `ignoring it`,
    );
    return null;
  }
  const text = {
    taken: "the base weights the run trained on",
    mismatch: (dtype: string) =>
      `the adapter was trained on ${trained} base weights ("dtype": "${trained}" in ` +
      `${config.path}), but --dtype is ${dtype}, so the outputs differ slightly from the ones ` +
      `training saw; pass --dtype ${trained} to load the same weights`,
  };
  return takeRunValue("dtype", trained, config, values, given, text, warn);
}

/**
 * Warns when merge decodes the base with another --quantize than the run trained against, in
 * either direction, because the merged weights then differ from the model the adapter learned on.
 */
export function warnMergeQuantizeMismatch(
  config: RunConfig | null,
  quantize: QuantizeOption,
  warn: Warn,
): void {
  if (config === null) return;
  const trained = runQuantize(config, warn);
  if (trained === null || trained === quantize) return;
  if (trained === "none") {
    warn(
      `the adapter was trained against the full-precision base (${config.path} has no ` +
        `"quantize" setting), so merging into the ${quantize}-decoded base gives slightly ` +
        `different weights; leave out --quantize to merge into the base the adapter saw`,
    );
    return;
  }
  const target = quantize === "none" ? "the full-precision base" : `the ${quantize}-decoded base`;
  warn(
    `the adapter was trained against an ${trained} base ("quantize": "${trained}" in ` +
      `${config.path}), so merging into ${target} gives slightly different weights; pass ` +
      `--quantize ${trained} to merge into the ${trained}-decoded base the adapter saw`,
  );
}

/** An eval option whose default comes from the training run's settings. */
interface SplitSetting {
  option: string;
  /** The key in train_config.json. */
  key: string;
  /** Whether `value` is a valid setting; null means "not set" where the option allows it. */
  isValid(value: unknown): boolean;
}

const isNullableString = (value: unknown) => value === null || typeof value === "string";

/**
 * The settings that decide which examples eval scores and how they are tokenized: the data and
 * its split, the prompt format and the length limit.
 */
export const SPLIT_SETTINGS: readonly SplitSetting[] = [
  // --data is required, so it is only compared with the run's.
  { option: "data", key: "data", isValid: (v) => typeof v === "string" },
  { option: "seed", key: "seed", isValid: (v) => Number.isInteger(v) && (v as number) >= 0 },
  {
    option: "val-fraction",
    key: "valFraction",
    isValid: (v) => typeof v === "number" && v >= 0 && v < 1,
  },
  { option: "val-data", key: "valData", isValid: isNullableString },
  { option: "template", key: "template", isValid: isNullableString },
  { option: "mask-prompt", key: "maskPrompt", isValid: (v) => typeof v === "boolean" },
  {
    option: "max-length",
    key: "maxLength",
    isValid: (v) => Number.isInteger(v) && (v as number) >= 2,
  },
];

/** Formats an option and its value as typed on the command line; null is "no --name". */
function formatOption(option: string, value: unknown): string {
  if (value === null || value === undefined) return `no --${option}`;
  if (typeof value === "boolean") return value ? `--${option}` : `--no-${option}`;
  // Strings appear as typed, quoted: a template's \n stays one backslash, not JSON's two.
  const text = typeof value === "string" ? `"${value.replace(/"/g, '\\"')}"` : String(value);
  return `--${option} ${text}`;
}

function isPathOption(option: string): boolean {
  return option === "data" || option === "val-data";
}

/**
 * Returns a --data or --val-data value of the run as a path that works from the current
 * folder: a relative path is resolved against the folder train ran in, when the file records
 * it and the path exists there (a Hub dataset id does not).
 */
function runPath(config: RunConfig, saved: string): string {
  return resolveRunPath(saved, config.settings.workingDirectory);
}

/**
 * Returns `saved` resolved against `workingDirectory` (train_config.json's record of the folder
 * train ran in) when it is relative and exists there, else `saved` unchanged.
 */
export function resolveRunPath(saved: string, workingDirectory: unknown): string {
  const folder = workingDirectory;
  if (isAbsolute(saved) || typeof folder !== "string") return saved;
  const resolved = resolve(folder, saved);
  return existsSync(resolved) ? resolved : saved;
}

function sameSetting(option: string, given: unknown, saved: unknown): boolean {
  if (isPathOption(option) && typeof given === "string" && typeof saved === "string") {
    return resolve(given) === resolve(saved);
  }
  return (given ?? null) === saved;
}

/**
 * Fills the split settings that the command line left out with the run's values, in place.
 * Returns the options taken from the run, a line that names them with their values (null when
 * none were taken), and whether --data is the run's. Warns once about the options given with a
 * value other than the run's.
 */
export function applyRunSplitSettings(
  config: RunConfig,
  values: OptionValues,
  given: ReadonlySet<string>,
  warn: Warn,
): { takenOptions: Set<string>; line: string | null; runData: boolean } {
  const takenOptions = new Set<string>();
  // Whether the scored --data is the run's own, taken from the file or given equal to it.
  let runData = false;
  const takenText: string[] = [];
  const differing: string[] = [];
  for (const setting of SPLIT_SETTINGS) {
    const stored = config.settings[setting.key];
    if (stored === undefined) continue;
    const saved =
      isPathOption(setting.option) && typeof stored === "string" ? runPath(config, stored) : stored;
    if (!setting.isValid(saved)) {
      warn(
        `${config.path}: "${setting.key}" has the invalid value ${JSON.stringify(saved)}; ` +
          `ignoring it, so --${setting.option} is the command line's value or the default`,
      );
      continue;
    }
    if (given.has(setting.option)) {
      const value = values[setting.option];
      if (setting.option === "data") runData = sameSetting("data", value, saved);
      if (!sameSetting(setting.option, value, saved)) {
        differing.push(
          `${formatOption(setting.option, value)} (run: ${formatOption(setting.option, saved)})`,
        );
      }
      continue;
    }
    values[setting.option] = saved === null ? undefined : (saved as string | number | boolean);
    takenOptions.add(setting.option);
    if (setting.option === "data") runData = true;
    if (saved !== null) takenText.push(formatOption(setting.option, saved));
  }
  if (differing.length > 0) {
    warn(
      `options differ from the training run's settings in ${config.path}: ` +
        `${differing.join(", ")}; the command line's values are used, so the scored examples ` +
        `or their tokens may differ from the run's validation split`,
    );
  }
  const line =
    takenText.length === 0 ? null : `settings from ${config.path}: ${takenText.join(", ")}`;
  return { takenOptions, line, runData };
}

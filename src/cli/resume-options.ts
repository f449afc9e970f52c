// `tslora train --out <dir> --resume` takes every option that its command line leaves out from
// the run's train_config.json, so a resume needs no more than those two options. A given option
// still wins. The trainer rejects one that changes the run's results, except --steps and
// --warmup; --eval-every, --save-every, --keep-checkpoints and --grad-checkpointing may change.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { TRAIN_CONFIG_FILE } from "../train/run-folder.js";
import { resolveRunPath } from "./run-config.js";
import { parseCommandLine, TRAIN_OPTIONS, UsageError } from "./train-options.js";

/** The command line with the run's settings added, and where they came from. */
export interface ResumeArguments {
  argv: string[];
  /** The options taken from the run, in command-line order. */
  taken: string[];
  /** The train_config.json read, or null when none was. */
  path: string | null;
}

/**
 * Adds `--option value` for each setting of the run in --out that `argv` does not give. Returns
 * `argv` unchanged without --resume. Throws a UsageError when --model or --data is missing and
 * --out has no readable train_config.json to supply it. With both given, an unreadable file
 * leaves `argv` unchanged, and the trainer reports what it finds.
 */
export function withRunSettings(argv: readonly string[]): ResumeArguments {
  const unchanged = { argv: [...argv], taken: [], path: null };
  // The options the run can supply are not required yet; the real parse checks them after.
  const optional = TRAIN_OPTIONS.map((spec) => ({ ...spec, required: false }));
  const parsed = parseCommandLine("train", argv, optional);
  if (parsed === null) return unchanged;
  const { values, given } = parsed;
  if (values.resume !== true || values.out === undefined) return unchanged;
  const out = String(values.out);
  const path = join(out, TRAIN_CONFIG_FILE);
  // Without --model or --data the run's settings are the only source, so report why they are
  // missing instead of leaving the parse to report missing options.
  const needed = !given.has("model") || !given.has("data");
  if (!existsSync(path)) {
    if (!needed) return unchanged;
    if (!existsSync(out)) {
      throw new UsageError(
        `--resume: ${out} does not exist, so there is no run to resume; check the --out ` +
          `path, or leave out --resume and give --model and --data to start a new run`,
      );
    }
    throw new UsageError(
      `--resume: ${out} has no ${TRAIN_CONFIG_FILE}, so the run's options are unknown; check ` +
        `the --out path, or give --model, --data and the run's other options`,
    );
  }
  const read = parseRunSettings(path);
  if ("problem" in read) {
    if (!needed) return unchanged;
    throw new UsageError(
      `--resume: ${path} is invalid (${read.problem}), so the run's options are unknown; ` +
        `repair the file, or give --model, --data and the run's other options`,
    );
  }
  const { settings } = read;

  const added: string[] = [];
  const taken: string[] = [];
  for (const [option, value] of runOptions(settings, given)) {
    if (given.has(option) || value === undefined || value === null) continue;
    if (typeof value === "boolean") added.push(value ? `--${option}` : `--no-${option}`);
    else if (PATH_OPTIONS.has(option)) {
      // A relative path is relative to the folder the run was started in.
      added.push(`--${option}`, resolveRunPath(String(value), settings.workingDirectory));
    } else added.push(`--${option}`, String(value));
    taken.push(option);
  }
  return { argv: [...argv, ...added], taken, path };
}

// Options whose value may be a path relative to the folder the run was started in.
const PATH_OPTIONS = new Set(["model", "data", "val-data"]);

// The command-line option behind each setting that train_config.json records.
function runOptions(settings: Record<string, unknown>, given: ReadonlySet<string>) {
  const lora = (settings.lora ?? {}) as Record<string, unknown>;
  const run = (settings.runOptions ?? {}) as Record<string, unknown>;
  const targets = lora.target_modules;
  const options: [string, unknown][] = [
    ["model", settings.model],
    ["data", settings.data],
    ["val-data", settings.valData],
    // With --val-data, --val-fraction has no effect, and giving it would print a note.
    ["val-fraction", settings.valData == null ? settings.valFraction : undefined],
    ["template", settings.template],
    ["mask-prompt", settings.maskPrompt],
    ["max-length", settings.maxLength],
    ["batch-size", settings.batchSize],
    ["grad-accum", settings.gradAccum],
    ["steps", settings.steps],
    // The default warmup is a share of the steps, so new --steps bring their own default.
    ["warmup", given.has("steps") ? undefined : settings.warmup],
    ["lr", settings.lr],
    ["schedule", settings.schedule],
    ["min-lr-ratio", settings.minLrRatio],
    ["weight-decay", settings.weightDecay],
    ["max-grad-norm", settings.maxGradNorm],
    ["r", lora.r],
    ["alpha", lora.lora_alpha],
    ["dropout", lora.lora_dropout],
    ["target-modules", Array.isArray(targets) ? targets.join(",") : targets],
    ["seed", settings.seed],
    ["quantize", settings.quantize],
    ["dtype", settings.dtype],
    ["eval-every", run.evalEvery],
    ["save-every", run.saveEvery],
    ["keep-checkpoints", run.keepCheckpoints],
    ["grad-checkpointing", run.gradCheckpointing],
  ];
  return options;
}

/**
 * Returns the settings of the run in `out` (its train_config.json), or null when the file is
 * missing or not a JSON object.
 */
export function readRunSettings(out: string): Record<string, unknown> | null {
  const read = parseRunSettings(join(out, TRAIN_CONFIG_FILE));
  return "settings" in read ? read.settings : null;
}

/** Reads a train_config.json file: its settings, or why they cannot be used. */
function parseRunSettings(
  path: string,
): { settings: Record<string, unknown> } | { problem: string } {
  try {
    const stored: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (typeof stored !== "object" || stored === null || Array.isArray(stored)) {
      return { problem: "expected a JSON object" };
    }
    return { settings: stored as Record<string, unknown> };
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Returns the path setting `key` as the run recorded it when `value` names the same location:
 * the recorded string itself, or the recorded relative path resolved against the folder the
 * run was started in. Otherwise returns `value`. A resume then compares equal settings, whether
 * its paths are the run's relative ones, absolute ones, or relative to another folder.
 */
export function asRecordedPath(
  previous: Record<string, unknown> | null,
  key: "model" | "data" | "valData",
  value: string,
): string {
  const saved = previous?.[key];
  if (typeof saved !== "string" || saved === value) return value;
  return resolveRunPath(saved, previous?.workingDirectory) === resolve(value) ? saved : value;
}

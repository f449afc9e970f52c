// Command-line options of `tslora train` and `tslora eval`: one table per verb with each
// option's type, default and help text, a parser over node:util's parseArgs that converts and
// checks values, and the help formatter. Defaults are defined here once.
import { parseArgs } from "node:util";
import { QUANTIZE_OPTION } from "./quantize-option.js";
import { SPLIT_SETTINGS } from "./run-config.js";
import { similarOption } from "./option-suggestions.js";

export type OptionType = "string" | "number" | "integer" | "boolean";

export interface OptionSpec {
  name: string;
  type: OptionType;
  /** Text shown after the option name, for example "<tokens>". */
  value?: string;
  help: string;
  default?: string | number | boolean;
  /** Text for the default when it is computed from other options. */
  defaultText?: string;
  choices?: readonly string[];
  required?: boolean;
  /** Smallest accepted value for numbers. */
  min?: number;
  /** Largest accepted value for numbers. */
  max?: number;
  /** Value that numbers must be above (an exclusive lower bound). */
  above?: number;
  /** Value that numbers must be below (an exclusive upper bound). */
  below?: number;
}

export type OptionValues = Record<string, string | number | boolean | undefined>;

/** The names of the options that parseOptions filled with their defaults, per result. */
const defaulted = new WeakMap<OptionValues, Set<string>>();

/** Returns true when the option `name` was not on the command line and has its default value. */
export function isDefaultValue(values: OptionValues, name: string): boolean {
  return defaulted.get(values)?.has(name) ?? false;
}

/** Describes the --data formats. `use` is what the command does with the samples. */
function dataHelp(use: "trained" | "scored"): string {
  return (
    "a SQuAD JSON file (v1.1 or v2.0), a JSONL file ({text}, {prompt, completion} or " +
    '{messages} per line, so plain text goes in as one {"text": ...} object per line), a ' +
    ".parquet file with the same fields as columns, a folder with train.jsonl (and " +
    "valid.jsonl), or a Hub dataset id. SQuAD 2.0 questions without an answer are skipped, " +
    `so they are not ${use}`
  );
}

/** Options shared by train and eval that select and prepare the data. */
const DATA_OPTIONS: OptionSpec[] = [
  {
    name: "model",
    type: "string",
    value: "<dir|id>",
    required: true,
    help: "Model folder or Hub id (owner/name[@revision]).",
  },
  {
    name: "data",
    type: "string",
    value: "<path|id>",
    required: true,
    help: `Data: ${dataHelp("trained")}.`,
  },
  {
    name: "val-data",
    type: "string",
    value: "<path|id>",
    defaultText: "none, so --val-fraction of --data is held out (or valid.jsonl of a data folder)",
    help: "Validation data in the same formats.",
  },
  {
    name: "val-fraction",
    type: "number",
    value: "<fraction>",
    default: 0.1,
    min: 0,
    below: 1,
    help: "Share of --data held out for validation when --val-data is absent. Whole SQuAD articles (or JSONL groups) stay on one side, so at least one article is held out. With 0 nothing is held out, so train uses all of --data and reports no validation loss.",
  },
  {
    name: "template",
    type: "string",
    value: "<name|text>",
    defaultText: "squad for SQuAD data, prompt-completion for JSONL prompt/completion lines",
    help: 'Prompt template for SQuAD and field data: "squad" (Context/Question/Answer sections), "prompt-completion" (the two texts joined), or a template text with {field} slots and one {answer} slot, where the learned text starts ({completion} for prompt/completion lines, as in "Q: {prompt}\\nA:{completion}"); JSONL lines then hold those fields. In the text, \\n stands for a newline and \\t for a tab.',
  },
  {
    name: "mask-prompt",
    type: "boolean",
    default: true,
    help: "Learn only the answer (completion) tokens; --no-mask-prompt learns the prompt too.",
  },
  {
    name: "max-length",
    type: "integer",
    value: "<tokens>",
    default: 512,
    defaultText: "512, or the model's context length when that is smaller",
    min: 2,
    help: "Maximum tokens per example, EOS included; longer SQuAD contexts are shortened around the answer. At most the model's context length (max_position_embeddings).",
  },
  {
    name: "seed",
    type: "integer",
    value: "<n>",
    default: 42,
    min: 0,
    help: "Seed for the validation split, shuffling, LoRA initialisation and dropout.",
  },
  {
    name: "threads",
    type: "integer",
    value: "<n>",
    min: 1,
    max: 256,
    defaultText: "the number of CPU cores, or TSLORA_THREADS",
    help: "Worker threads for the kernels.",
  },
  {
    name: "dtype",
    type: "string",
    value: "<type>",
    default: "auto",
    choices: ["auto", "f32", "bf16"],
    help: "Storage type of the frozen weights (auto keeps the checkpoint's). Compute is f32.",
  },
  QUANTIZE_OPTION,
];

export const TRAIN_OPTIONS: OptionSpec[] = [
  ...DATA_OPTIONS,
  {
    name: "out",
    type: "string",
    value: "<dir>",
    required: true,
    help: "Output folder: the adapter in PEFT format, checkpoints/, metrics.jsonl and train_config.json.",
  },
  {
    name: "resume",
    type: "boolean",
    default: false,
    help: "Continue from the latest checkpoint in --out with the same settings. Options left out, --model and --data too, are taken from the run's train_config.json.",
  },
  {
    name: "batch-size",
    type: "integer",
    value: "<examples>",
    default: 4,
    min: 1,
    help: "Examples per micro-batch.",
  },
  {
    name: "grad-accum",
    type: "integer",
    value: "<micro-batches>",
    default: 1,
    min: 1,
    help: "Micro-batches per optimizer step; the effective batch is batch-size x grad-accum.",
  },
  {
    name: "steps",
    type: "integer",
    value: "<steps>",
    min: 1,
    defaultText: "--epochs worth of steps",
    help: "Optimizer steps to train.",
  },
  {
    name: "epochs",
    type: "number",
    value: "<epochs>",
    default: 1,
    above: 0,
    help: "Passes over the training data, used when --steps is absent.",
  },
  {
    name: "lr",
    type: "number",
    value: "<rate>",
    default: 2e-4,
    above: 0,
    help: "Peak learning rate. 2e-4 is the usual LoRA rate for models of 100M parameters and up; tiny models (under 10M, such as TinyStories-656K) learn faster at 1e-3.",
  },
  {
    name: "schedule",
    type: "string",
    value: "<kind>",
    default: "cosine",
    choices: ["cosine", "linear", "constant"],
    help: "Learning-rate decay after the warmup.",
  },
  {
    name: "warmup",
    type: "integer",
    value: "<steps>",
    min: 0,
    defaultText: "5% of the steps, rounded down",
    help: "Optimizer steps of linear warmup from 0 to --lr.",
  },
  {
    name: "min-lr-ratio",
    type: "number",
    value: "<fraction>",
    default: 0,
    min: 0,
    max: 1,
    help: "Final learning rate of the cosine or linear decay, as a fraction of --lr.",
  },
  {
    name: "weight-decay",
    type: "number",
    value: "<rate>",
    default: 0,
    min: 0,
    help: "AdamW decoupled weight decay on the LoRA weights (PEFT's Trainer default is 0).",
  },
  {
    name: "max-grad-norm",
    type: "number",
    value: "<norm>",
    default: 1,
    min: 0,
    help: "Clip the gradient's L2 norm to this value; 0 disables clipping.",
  },
  { name: "r", type: "integer", value: "<rank>", default: 8, min: 1, help: "LoRA rank." },
  {
    name: "alpha",
    type: "number",
    value: "<alpha>",
    default: 16,
    above: 0,
    help: "LoRA alpha; the update is scaled by alpha / r (2 with the defaults).",
  },
  {
    name: "dropout",
    type: "number",
    value: "<p>",
    default: 0.05,
    min: 0,
    below: 1,
    help: "Dropout probability on the LoRA path during training.",
  },
  {
    name: "target-modules",
    type: "string",
    value: "<names>",
    defaultText: "the model family's PEFT default (q_proj,v_proj for Llama)",
    help: 'Comma-separated module names to adapt, or "all-linear".',
  },
  {
    name: "eval-every",
    type: "integer",
    value: "<steps>",
    default: 50,
    min: 0,
    help: "Validation loss before training, every this many optimizer steps, and at the end; 0: before and at the end only.",
  },
  {
    name: "save-every",
    type: "integer",
    value: "<steps>",
    default: 100,
    min: 0,
    help: "Checkpoint every this many optimizer steps and at the end; 0 only at the end.",
  },
  {
    name: "keep-checkpoints",
    type: "integer",
    value: "<n>",
    default: 2,
    min: 1,
    help: "Newest checkpoints kept in --out/checkpoints.",
  },
  {
    name: "grad-checkpointing",
    type: "boolean",
    default: false,
    help: "Recompute each transformer block during backward: activation memory of one block instead of all, for one extra forward pass per step.",
  },
];

const RUN_DEFAULT_OPTIONS = new Set([
  ...SPLIT_SETTINGS.map((setting) => setting.option),
  "quantize",
  "dtype",
]);

/** Help texts of data options that mean something else in eval, which scores instead of trains. */
const EVAL_HELP: Record<string, string> = {
  data: `Data: ${dataHelp("scored")}.`,
  "mask-prompt":
    "Score the loss on the answer (completion) tokens only; --no-mask-prompt scores the " +
    "prompt tokens too.",
  "val-fraction":
    "Share of --data that the training run held out for validation when --val-data is absent. " +
    "With 0 nothing was held out, and the validation split is empty.",
  seed: "Seed of the training run's validation split.",
};

/**
 * Returns eval's form of a data option: eval's own help text, and a default that may come from
 * the training run.
 */
function evalDataOption(spec: OptionSpec): OptionSpec {
  const help = EVAL_HELP[spec.name] ?? spec.help;
  if (spec.required || !RUN_DEFAULT_OPTIONS.has(spec.name)) return { ...spec, help };
  const fallback = spec.defaultText ?? String(spec.default);
  return {
    ...spec,
    help,
    defaultText: `the training run's value when --adapter has a train_config.json, else ${fallback}`,
  };
}

export const EVAL_OPTIONS: OptionSpec[] = [
  ...DATA_OPTIONS.map(evalDataOption),
  {
    name: "adapter",
    type: "string",
    value: "<dir>",
    defaultText: "none: the base model is evaluated",
    help: "PEFT adapter folder to evaluate. A `tslora train` --out folder, or one of its checkpoints/step-N folders, also supplies the run's train_config.json: its --seed, --val-fraction, --val-data, --template, --mask-prompt, --max-length, --quantize and --dtype become the defaults, and options given with other values get a warning.",
  },
  {
    name: "split",
    type: "string",
    value: "<split>",
    default: "validation",
    choices: ["validation", "train", "all"],
    help: "Which part of --data to evaluate. --val-data, when given, is the validation split. Without a train_config.json in --adapter, pass the --val-fraction and --seed of the training run to score its held-out data.",
  },
  {
    name: "batch-size",
    type: "integer",
    value: "<examples>",
    default: 8,
    min: 1,
    help: "Examples per batch for the loss.",
  },
  {
    name: "max-new-tokens",
    type: "integer",
    value: "<tokens>",
    default: 32,
    min: 1,
    help: "Maximum tokens generated per SQuAD answer; generation also stops at a newline or EOS. SQuAD data only.",
  },
  {
    name: "max-questions",
    type: "integer",
    value: "<n>",
    min: 1,
    defaultText: "all",
    help: "Evaluate SQuAD EM/F1 on the first n questions only. SQuAD data only.",
  },
  {
    name: "compare-base",
    type: "integer",
    value: "<n>",
    default: 0,
    min: 0,
    help: "Print the base model's and the adapted model's answers side by side for n questions, with EM/F1 for both. SQuAD data only.",
  },
  {
    name: "samples",
    type: "integer",
    value: "<n>",
    default: 5,
    min: 0,
    help: "Number of predicted SQuAD answers printed beside the gold ones after the scores. SQuAD data only.",
  },
];

/** Formats the option list for --help, one option per paragraph. */
export function formatHelp(usage: string, summary: string, specs: readonly OptionSpec[]): string {
  const lines = [`Usage: ${usage}`, "", summary, "", "Options:"];
  for (const spec of specs) {
    const flag =
      spec.type === "boolean" ? `--${spec.name}` : `--${spec.name} ${spec.value ?? "<value>"}`;
    let text = spec.help;
    if (spec.choices) text += ` One of: ${spec.choices.join(", ")}.`;
    if (spec.required) text += " Required.";
    else if (spec.defaultText !== undefined) text += ` Default: ${spec.defaultText}.`;
    else if (spec.default !== undefined) text += ` Default: ${String(spec.default)}.`;
    lines.push(`  ${flag}`, ...wrap(text, 92).map((line) => `      ${line}`));
  }
  lines.push("  --help", "      Print this help.");
  return lines.join("\n");
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") out.push(line);
  return out;
}

/** Thrown for a bad command line; the CLI prints the message and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Parses `argv` against `specs`: converts numbers, checks choices, minimums and required
 * options, and fills in the defaults. Returns null when --help was given.
 */
export function parseOptions(
  verb: string,
  argv: readonly string[],
  specs: readonly OptionSpec[],
): OptionValues | null {
  return parseCommandLine(verb, argv, specs)?.values ?? null;
}

/**
 * Parses `argv` like parseOptions and also returns the names of the options given on the
 * command line (a --no- form counts as its option), so a caller can tell them from defaults.
 */
export function parseCommandLine(
  verb: string,
  argv: readonly string[],
  specs: readonly OptionSpec[],
): { values: OptionValues; given: Set<string> } | null {
  const config: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const spec of specs) {
    config[spec.name] = { type: spec.type === "boolean" ? "boolean" : "string" };
    if (spec.type === "boolean") config[`no-${spec.name}`] = { type: "boolean" };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv, specs),
      options: config,
      strict: true,
      allowPositionals: false,
      tokens: true,
    });
  } catch (err) {
    const message = (err as Error).message;
    const unknown = /^Unknown option '--([^']+)'/.exec(message)?.[1];
    const suggestion = unknown === undefined ? null : similarOption(unknown, specs);
    const hint = suggestion === null ? "" : ` Did you mean --${suggestion}?`;
    throw new UsageError(`tslora ${verb}: ${message}.${hint} Run tslora ${verb} --help.`);
  }
  rejectRepeated(verb, parsed.tokens ?? []);
  const raw = parsed.values as Record<string, string | boolean | undefined>;
  if (raw.help === true) return null;

  const values: OptionValues = {};
  const given = new Set<string>();
  const missing: string[] = [];
  for (const spec of specs) {
    if (raw[spec.name] !== undefined || raw[`no-${spec.name}`] !== undefined) given.add(spec.name);
    let value: string | number | boolean | undefined;
    if (spec.type === "boolean") {
      if (raw[`no-${spec.name}`] === true) value = false;
      else value = raw[spec.name] === true ? true : spec.default;
    } else {
      const text = raw[spec.name] as string | undefined;
      value = text === undefined ? spec.default : convert(verb, spec, text);
    }
    if (value === undefined && spec.required) missing.push(`--${spec.name}`);
    values[spec.name] = value;
  }
  if (missing.length > 0) {
    throw new UsageError(
      `tslora ${verb}: missing required option${missing.length > 1 ? "s" : ""} ${missing.join(", ")}. ` +
        `Run tslora ${verb} --help.`,
    );
  }
  defaulted.set(values, new Set(specs.map((s) => s.name).filter((name) => !given.has(name))));
  return { values, given };
}

/**
 * Throws when an option is given more than once (its --no- form counts as the option), because
 * silently keeping the last value hides a typo or a copy-paste slip.
 */
function rejectRepeated(verb: string, tokens: ReturnType<typeof parseArgs>["tokens"] & object) {
  const seen = new Map<string, string[]>();
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const name = token.name.startsWith("no-") ? token.name.slice(3) : token.name;
    const written = token.value === undefined ? token.rawName : `${token.rawName} ${token.value}`;
    seen.set(name, [...(seen.get(name) ?? []), written]);
  }
  const repeated = [...seen.entries()].filter(([, uses]) => uses.length > 1);
  if (repeated.length === 0) return;
  const listed = repeated.map(([name, uses]) => `--${name} (${uses.join(", ")})`).join("; ");
  throw new UsageError(
    `tslora ${verb}: option given more than once: ${listed}. Give each option once.`,
  );
}

/**
 * Rewrites "--steps -1" as "--steps=-1": parseArgs reads a value that starts with "-" as an
 * option, so a negative number would be reported as an ambiguous argument, not as out of range.
 */
function joinNegativeValues(argv: readonly string[], specs: readonly OptionSpec[]): string[] {
  const numeric = new Set(
    specs.filter((s) => s.type !== "string" && s.type !== "boolean").map((s) => `--${s.name}`),
  );
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const next = argv[i + 1];
    if (numeric.has(argv[i]) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${argv[i]}=${next}`);
      i++;
    } else out.push(argv[i]);
  }
  return out;
}

// Decimal numbers only: Number() would also accept "0x10", "0b1" and "Infinity".
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function convert(verb: string, spec: OptionSpec, text: string): string | number {
  const where = `tslora ${verb}: --${spec.name}`;
  if (spec.type === "string") {
    if (spec.choices && !spec.choices.includes(text)) {
      throw new UsageError(`${where} must be one of ${spec.choices.join(", ")}, got "${text}"`);
    }
    return text;
  }
  const value = Number(text);
  if (!Number.isFinite(value)) {
    throw new UsageError(`${where} must be a number, got "${text}"`);
  }
  if (!DECIMAL.test(text.trim())) {
    const kind = spec.type === "integer" ? "a whole number" : "a decimal number";
    throw new UsageError(`${where} must be ${kind}, got "${text}"`);
  }
  if (spec.type === "integer" && !Number.isInteger(value)) {
    throw new UsageError(`${where} must be a whole number, got "${text}"`);
  }
  const tooLow =
    (spec.min !== undefined && value < spec.min) ||
    (spec.above !== undefined && value <= spec.above);
  const tooHigh =
    (spec.max !== undefined && value > spec.max) ||
    (spec.below !== undefined && value >= spec.below);
  if (tooLow || tooHigh) {
    throw new UsageError(`${where} must be ${describeRange(spec)}, got ${text}`);
  }
  return value;
}

/** Describes the accepted range of a number option, for example ">= 0 and below 1". */
function describeRange(spec: OptionSpec): string {
  const parts: string[] = [];
  if (spec.above !== undefined) parts.push(`above ${spec.above}`);
  else if (spec.min !== undefined) parts.push(`>= ${spec.min}`);
  if (spec.below !== undefined) parts.push(`below ${spec.below}`);
  else if (spec.max !== undefined) parts.push(`at most ${spec.max}`);
  return parts.join(" and ");
}

// `tslora generate`: streams a continuation of a prompt from a model (optionally with a LoRA
// adapter) to stdout, with greedy decoding or sampling.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { generateText } from "../generate/text.js";
import { setThreads } from "../kernels/pool.js";
import { parseQuantizeOption } from "../engine/quant.js";
import type { ModelConfig } from "../io/config.js";
import type { TextTokenizer } from "../io/tokenizer.js";
import { contextLength } from "./context-length.js";
import { QUANTIZE_OPTION } from "./quantize-option.js";
import { applyRunDtype, applyRunQuantize, readRunConfig } from "./run-config.js";
import { unescapeTemplate } from "./train-data.js";
import { loadModel, type LoadDType } from "../models/index.js";
import {
  formatHelp,
  isDefaultValue,
  parseCommandLine,
  UsageError,
  type OptionSpec,
  type OptionValues,
} from "./train-options.js";

const USAGE = "tslora generate --model <dir|id> (--prompt <text> | --prompt-file <path>) [options]";
const SUMMARY =
  "Generates text after a prompt and prints it as it is decoded. Greedy unless --temperature " +
  "is above 0. Statistics go to stderr.";

export const GENERATE_OPTIONS: OptionSpec[] = [
  {
    name: "model",
    type: "string",
    value: "<dir|id>",
    required: true,
    help: "Model folder or Hub id (owner/name[@revision]).",
  },
  { name: "prompt", type: "string", value: "<text>", help: "Prompt text." },
  {
    name: "prompt-file",
    type: "string",
    value: "<path>",
    help: "Read the prompt from a UTF-8 file instead, or from standard input for -. One final newline is dropped, as editors add it.",
  },
  {
    name: "adapter",
    type: "string",
    value: "<dir>",
    help: "PEFT LoRA adapter folder to apply (adapter_config.json, adapter_model.safetensors). When it contains a `tslora train` run's train_config.json (in the folder, or two levels up for a checkpoints/step-N folder), its --quantize format and --dtype are the defaults, and other given values get a warning.",
  },
  {
    name: "max-new-tokens",
    type: "integer",
    value: "<tokens>",
    default: 64,
    min: 1,
    help: "Maximum number of tokens to generate.",
  },
  {
    name: "temperature",
    type: "number",
    value: "<t>",
    default: 0,
    min: 0,
    help: "Softmax temperature for sampling; 0 decodes greedily.",
  },
  {
    name: "top-k",
    type: "integer",
    value: "<k>",
    default: 0,
    min: 0,
    help: "Sample only from the k most likely tokens; 0 turns it off.",
  },
  {
    name: "top-p",
    type: "number",
    value: "<p>",
    default: 1,
    min: 0,
    help: "Sample only from the most likely tokens whose probabilities add up to p; 1 turns it off.",
  },
  {
    name: "repetition-penalty",
    type: "number",
    value: "<factor>",
    default: 1,
    min: 0,
    help: "Divides positive and multiplies negative logits of tokens already in the text; 1 turns it off.",
  },
  {
    name: "stop",
    type: "string",
    value: "<text>",
    help:
      "Stop once the generated text contains this string. The token that completes it is kept " +
      "whole, so the text may run past the string to the end of that token. \\n stands for a " +
      "newline and \\t for a tab, as in --template.",
  },
  {
    name: "seed",
    type: "integer",
    value: "<n>",
    default: 0,
    min: 0,
    help: "Seed of the sampling random numbers.",
  },
  {
    name: "dtype",
    type: "string",
    value: "<type>",
    default: "auto",
    choices: ["auto", "f32", "bf16"],
    help: "Storage type of the weights (auto keeps the checkpoint's). Compute is f32.",
  },
  {
    ...QUANTIZE_OPTION,
    defaultText: "the training run's format when --adapter has a train_config.json, else none",
  },
  {
    name: "threads",
    type: "integer",
    value: "<n>",
    min: 1,
    defaultText: "the number of CPU cores, or TSLORA_THREADS",
    help: "Worker threads for the kernels.",
  },
];

/** The largest --threads value, the same limit that TSLORA_THREADS has. */
const MAX_THREADS = 256;

/**
 * Rejects option values that the parser's minimums let through, before the model is loaded, so
 * that a typo costs no loading time and prints nothing to stdout.
 */
function checkGenerateValues(values: OptionValues): void {
  const topP = Number(values["top-p"]);
  if (!(topP > 0 && topP <= 1)) {
    throw new UsageError(
      `tslora generate: --top-p must be above 0 and at most 1 (1 turns it off), got ${topP}`,
    );
  }
  const penalty = Number(values["repetition-penalty"]);
  if (!(penalty > 0)) {
    throw new UsageError(
      `tslora generate: --repetition-penalty must be above 0 (1 turns it off), got ${penalty}`,
    );
  }
  if (values.stop === "") {
    throw new UsageError(
      "tslora generate: --stop must not be empty, because every text contains the empty " +
        "string; leave out --stop to stop only at EOS or --max-new-tokens",
    );
  }
  if (values.threads !== undefined && Number(values.threads) > MAX_THREADS) {
    throw new UsageError(
      `tslora generate: --threads must be at most ${MAX_THREADS}, got ${values.threads}; ` +
        "more threads than CPU cores slow the kernels down",
    );
  }
}

/**
 * Prints a warning on stderr when the prompt and the new tokens together exceed the context length
 * that the model reports, because the model was not trained on positions past it.
 */
function warnAboveContext(
  config: ModelConfig,
  tokenizer: TextTokenizer,
  prompt: string,
  maxNewTokens: number,
): void {
  const context = contextLength(config);
  if (context === null) return;
  // generateText encodes the prompt the same way.
  const promptTokens = tokenizer.encode(prompt, { addSpecialTokens: true }).length;
  if (promptTokens + maxNewTokens > context) {
    process.stderr.write(
      `tslora generate: warning: the prompt (${promptTokens} tokens) plus --max-new-tokens ` +
        `${maxNewTokens} exceed the model's context length of ${context} tokens; text past ` +
        `that length is unreliable, so shorten the prompt or lower --max-new-tokens\n`,
    );
  }
}

/** Returns the prompt of --prompt, or the text of --prompt-file; exactly one must be given. */
function readPrompt(values: OptionValues): string {
  const file = values["prompt-file"];
  if (values.prompt !== undefined && file !== undefined) {
    throw new UsageError("tslora generate: give --prompt or --prompt-file, not both");
  }
  if (file === undefined) {
    if (values.prompt === undefined) {
      throw new UsageError(
        "tslora generate: missing the prompt; give --prompt <text> or --prompt-file <path>",
      );
    }
    return String(values.prompt);
  }
  const path = String(file);
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new UsageError(`tslora generate: cannot read --prompt-file ${path} (${code})`);
  }
  return text.replace(/\r?\n$/, "");
}

/** Runs `tslora generate` with the arguments after the verb; resolves to the exit status. */
export async function runGenerate(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine("generate", argv, GENERATE_OPTIONS);
  if (parsed === null) {
    console.log(formatHelp(USAGE, SUMMARY, GENERATE_OPTIONS));
    return 0;
  }
  const { values, given } = parsed;
  checkGenerateValues(values);
  const prompt = readPrompt(values);
  if (values.threads !== undefined) setThreads(Number(values.threads));
  const adapter = values.adapter === undefined ? null : resolve(String(values.adapter));
  if (adapter !== null) {
    const warn = (message: string) =>
      process.stderr.write(`tslora generate: warning: ${message}\n`);
    // Like eval, generate loads the base in the format the adapter was trained against.
    const runConfig = readRunConfig(adapter, warn);
    const quantizeLine = applyRunQuantize(runConfig, values, given, warn);
    if (quantizeLine !== null) process.stderr.write(`tslora generate: ${quantizeLine}\n`);
    const dtypeLine = applyRunDtype(runConfig, values, given, warn);
    if (dtypeLine !== null) process.stderr.write(`tslora generate: ${dtypeLine}\n`);
  }
  const quantize = parseQuantizeOption(String(values.quantize));
  const { model, tokenizer } = await loadModel(String(values.model), {
    dtype: String(values.dtype) as LoadDType,
    quantize,
  });
  if (adapter !== null) {
    // Imported here so that plain generation does not load the LoRA code.
    const { loadAdapter } = await import("../lora/adapter-io.js");
    loadAdapter(model, adapter);
  }

  const temperature = Number(values.temperature);
  const sampling = ["top-k", "top-p"].filter((name) => !isDefaultValue(values, name));
  if (temperature === 0 && sampling.length > 0) {
    process.stderr.write(
      `tslora generate: warning: ${sampling.map((n) => `--${n}`).join(" and ")} ` +
        `${sampling.length === 1 ? "applies" : "apply"} only when sampling; with --temperature 0 decoding is greedy. Pass --temperature 0.7 (or ` +
        `another value above 0) to sample.\n`,
    );
  }
  warnAboveContext(model.config, tokenizer, prompt, Number(values["max-new-tokens"]));
  process.stdout.write(prompt);
  const start = performance.now();
  const result = generateText(model, tokenizer, prompt, {
    maxNewTokens: Number(values["max-new-tokens"]),
    temperature,
    topK: Number(values["top-k"]),
    topP: Number(values["top-p"]),
    repetitionPenalty: Number(values["repetition-penalty"]),
    seed: Number(values.seed),
    stopStrings: values.stop === undefined ? [] : [unescapeTemplate(String(values.stop))],
    onText: (delta) => process.stdout.write(delta),
  });
  process.stdout.write("\n");

  const seconds = (performance.now() - start) / 1000;
  const count = result.tokens[0].length;
  process.stderr.write(
    `generated ${count} ${count === 1 ? "token" : "tokens"} in ${seconds.toFixed(2)} s (${(count / seconds).toFixed(1)} tokens/s), ` +
      `stopped by ${result.finishReasons[0]}\n`,
  );
  return 0;
}

// `tslora eval`: loss and perplexity of a model (with or without an adapter) on a dataset, and
// for SQuAD data the exact match and F1 of greedily generated answers, optionally side by side
// with the base model's answers.
import { resolve } from "node:path";
import type { FieldsSample, Sample } from "../data/types.js";
import { compareWithBase, formatComparison } from "../eval/compare.js";
import { evaluateLoss } from "../eval/loss.js";
import { evaluateSquad, squadPrompts } from "../eval/squad.js";
import { setThreads } from "../kernels/pool.js";
import { loadAdapter } from "../lora/adapter-io.js";
import { parseQuantizeOption } from "../engine/quant.js";
import { loadModel, type LoadDType } from "../models/index.js";
import { resolveMaxLength } from "./context-length.js";
import {
  plural,
  readSplits,
  resolveTemplate,
  tokenizeSplit,
  type DataSplits,
} from "./train-data.js";
import {
  applyRunDtype,
  applyRunQuantize,
  applyRunSplitSettings,
  readRunConfig,
} from "./run-config.js";
import {
  EVAL_OPTIONS,
  formatHelp,
  parseCommandLine,
  UsageError,
  type OptionValues,
} from "./train-options.js";

const USAGE = "tslora eval --model <dir|id> --data <path|id> [--adapter <dir>] [options]";
const SUMMARY =
  "Evaluates loss and perplexity, and SQuAD exact match and F1 for SQuAD data, of a model " +
  "with or without a LoRA adapter.";

/**
 * Returns a callback that prints generation progress on stderr: one updating line on a terminal,
 * otherwise a line at each tenth of the questions, so logs stay short.
 */
function progressPrinter(what: string): (answered: number, total: number) => void {
  let printedTenths = 0;
  return (answered, total) => {
    const line = `${what}: ${answered}/${total} questions`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${line}${answered === total ? "\n" : ""}`);
      return;
    }
    const tenths = Math.floor((answered * 10) / total);
    if (tenths > printedTenths) {
      printedTenths = tenths;
      process.stderr.write(line + "\n");
    }
  };
}

/** The options that only SQuAD data uses, because they control the generated answers. */
const SQUAD_ONLY_OPTIONS = ["max-new-tokens", "max-questions", "compare-base", "samples"];

/**
 * Rejects the SQuAD-only options given for other data, and for SQuAD data a --max-new-tokens
 * that leaves no room for the prompt.
 */
function checkGenerationOptions(
  questions: number,
  split: string,
  files: readonly string[],
  values: OptionValues,
  given: ReadonlySet<string>,
  maxLengthFromRun = false,
): void {
  if (questions === 0) {
    const squadOnly = SQUAD_ONLY_OPTIONS.filter((name) => given.has(name));
    if (squadOnly.length === 0) return;
    throw new UsageError(
      `${squadOnly.map((name) => `--${name}`).join(", ")} ` +
        `${squadOnly.length === 1 ? "needs" : "need"} SQuAD-style data (questions with gold ` +
        `answers), but the ${split} split (${files.join(" and ")}) has none, so eval scores ` +
        `loss and perplexity only; leave out these options`,
    );
  }
  const maxNewTokens = Number(values["max-new-tokens"]);
  const maxLength = Number(values["max-length"]);
  if (maxNewTokens >= maxLength) {
    throw new UsageError(
      `--max-new-tokens ${maxNewTokens} leaves no room for the prompt within ` +
        `--max-length ${maxLength}${maxLengthFromRun ? ", the training run's" : ""}; lower ` +
        `--max-new-tokens or raise --max-length`,
    );
  }
}

/** Returns the samples of `split` ("train", "validation" or "all") and the files they come from. */
function selectSplit(splits: DataSplits, split: string): { samples: Sample[]; files: string[] } {
  const { source, train, validation, validationSource } = splits;
  // With --val-data or a data folder's validation file, the validation split has its own file.
  if (split === "train") return { samples: train, files: [source.description] };
  if (split === "validation") return { samples: validation, files: [validationSource] };
  return {
    samples: [...train, ...validation],
    files: [...new Set([source.description, validationSource])],
  };
}

/** Runs `tslora eval` with the arguments after the verb; resolves to the exit status. */
export async function runEval(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine("eval", argv, EVAL_OPTIONS);
  if (parsed === null) {
    console.log(formatHelp(USAGE, SUMMARY, EVAL_OPTIONS));
    return 0;
  }
  const { values, given } = parsed;
  if (Number(values["compare-base"]) > 0 && values.adapter === undefined) {
    throw new UsageError("--compare-base needs --adapter: it compares the base model with it");
  }
  const warn = (message: string) => process.stderr.write(`tslora eval: warning: ${message}\n`);
  const adapter = values.adapter === undefined ? null : resolve(String(values.adapter));
  const runConfig = adapter === null ? null : readRunConfig(adapter, warn);
  const runSettings =
    runConfig === null ? null : applyRunSplitSettings(runConfig, values, given, warn);
  const quantizeLine = applyRunQuantize(runConfig, values, given, warn);
  const dtypeLine = applyRunDtype(runConfig, values, given, warn);
  const quantize = parseQuantizeOption(String(values.quantize));

  if (values.threads !== undefined) setThreads(Number(values.threads));
  const templateArg = values.template === undefined ? undefined : String(values.template);
  const template = resolveTemplate(templateArg);
  const seed = Number(values.seed);
  const split = String(values.split);
  const splits = await readSplits({
    data: String(values.data),
    valData: values["val-data"] === undefined ? undefined : String(values["val-data"]),
    valFraction: Number(values["val-fraction"]),
    seed,
    template,
    whole: split === "all",
  });
  const { samples, files } = selectSplit(splits, split);
  if (samples.length === 0) {
    if (split === "validation" && values["val-data"] === undefined) {
      throw new UsageError(
        `the validation split is empty because --val-fraction 0 holds nothing out of ` +
          `--data; use --split train or --split all, or give --val-data`,
      );
    }
    throw new UsageError(
      `the ${split} split (${files.join(" and ")}) has no samples; choose another --split`,
    );
  }
  // Exact match and F1 score the SQuAD questions of the split, whichever file they come from.
  const questions = samples.filter(
    (s): s is FieldsSample =>
      s.kind === "fields" &&
      s.fields.id !== undefined &&
      splits.source.answersById.has(s.fields.id),
  );
  checkGenerationOptions(
    questions.length,
    split,
    files,
    values,
    given,
    runSettings?.takenOptions.has("max-length"),
  );

  const { model, tokenizer, dir } = await loadModel(String(values.model), {
    dtype: String(values.dtype) as LoadDType,
    quantize,
  });
  if (adapter !== null) loadAdapter(model, adapter);
  const print = (line: string) => process.stdout.write(line + "\n");
  print(`model: ${dir}${adapter === null ? " (no adapter)" : `, adapter ${adapter}`}`);
  if (runSettings?.line) print(runSettings.line);
  if (quantizeLine !== null) print(quantizeLine);
  if (dtypeLine !== null) print(dtypeLine);
  // A held-out share of a file that is not the run's training data is seldom what is wanted,
  // so the data line shows how to score all of it.
  const heldOut =
    split === "validation" &&
    !given.has("split") &&
    splits.validationSource === splits.source.description &&
    runSettings?.runData !== true;
  const hint = heldOut
    ? ` (the ${values["val-fraction"]} share held out of --data; --split all scores all of it)`
    : "";
  print(`data: ${files.join(" and ")}, split ${split}: ${plural(samples.length, "sample")}${hint}`);

  const maxLength = resolveMaxLength("eval", dir, values);
  const tokenized = tokenizeSplit(split, samples, tokenizer, {
    maxLength,
    maskPrompt: values["mask-prompt"] === true,
    template,
    targetWord: "scored",
  });
  print(tokenized.line);
  const loss = evaluateLoss(model, tokenized.examples, {
    batchSize: Number(values["batch-size"]),
    padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
  });
  print(
    `loss ${loss.loss.toFixed(4)} | perplexity ${loss.perplexity.toFixed(3)} | ` +
      `${plural(loss.tokens, "token")} in ${plural(loss.examples, "example")}`,
  );
  if (questions.length === 0) return 0;

  const maxNewTokens = Number(values["max-new-tokens"]);
  const limit =
    values["max-questions"] === undefined ? questions.length : Number(values["max-questions"]);
  const prompts = squadPrompts(questions.slice(0, limit), splits.source.answersById, tokenizer, {
    maxLength,
    maxNewTokens,
    template,
  });
  const compareCount = Number(values["compare-base"]);
  if (compareCount > 0) {
    const baseProgress = progressPrinter("answering with the base model");
    const adapterProgress = progressPrinter("answering with the adapter");
    const comparison = compareWithBase(model, tokenizer, prompts, {
      maxNewTokens,
      shown: compareCount,
      onProgress: (stage, answered, total) =>
        (stage === "base" ? baseProgress : adapterProgress)(answered, total),
    });
    print(formatComparison(comparison));
    return 0;
  }
  const { report, predictions } = evaluateSquad(model, tokenizer, prompts, {
    maxNewTokens,
    onProgress: progressPrinter("answering"),
  });
  print(
    `SQuAD: exact match ${report.exactMatch.toFixed(2)}% | F1 ${report.f1.toFixed(2)}% | ` +
      `${report.total} questions`,
  );
  const shown = Math.min(Number(values.samples), predictions.length);
  for (let i = 0; i < shown; i++) {
    const p = predictions[i];
    print(`  Q: ${prompts[i].question}`);
    print(
      `     predicted: ${JSON.stringify(p.prediction)} | gold: ${JSON.stringify(p.answers[0] ?? "")}`,
    );
  }
  return 0;
}

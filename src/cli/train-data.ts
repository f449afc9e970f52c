// Data preparation shared by `tslora train` and `tslora eval`: reads --data (and --val-data),
// splits off validation by article or group, and tokenizes both sides with one template.
import { existsSync, readdirSync, statSync } from "node:fs";
import type { LoadedDataset } from "../data/hub-dataset.js";
import { loadDataset } from "../data/load.js";
import { splitByGroup } from "../data/split.js";
import { parseTemplate, SQUAD_TEMPLATE, type PromptTemplate } from "../data/template.js";
import {
  IGNORE_INDEX,
  tokenizeSamples,
  type TokenizedExample,
  type TokenizeReport,
} from "../data/tokenize.js";
import type { Sample } from "../data/types.js";
import type { TextTokenizer } from "../io/tokenizer.js";
import { UsageError } from "./train-options.js";

/** Samples read from one --data argument. */
export interface DataSource {
  /** "squad" for SQuAD questions (JSON or Hub rows), "jsonl" otherwise. */
  kind: "squad" | "jsonl";
  samples: Sample[];
  /** A validation file found beside the training file (valid.jsonl in a data folder). */
  validation: Sample[] | null;
  /** The validation file's name, format and sample count, when `validation` is set. */
  validationDescription: string | null;
  /** Every gold answer by question id (SQuAD only), for exact match and F1. */
  answersById: Map<string, string[]>;
  /** One line for the resolved-config printout. */
  description: string;
}

/** Resolves --template: a preset name or a template text with an {answer} slot. */
export function resolveTemplate(value: string | undefined): PromptTemplate | undefined {
  if (value === undefined || value === "prompt-completion") return undefined;
  if (value === "squad") return parseTemplate(SQUAD_TEMPLATE);
  // A shell passes '\n' as a backslash and an n; the template means a newline.
  const source = unescapeTemplate(value);
  // The learned text goes in {answer}, or in {completion} for prompt/completion records.
  const hasAnswer = source.includes("{answer}");
  const answerField = !hasAnswer && source.includes("{completion}") ? "completion" : "answer";
  if (!hasAnswer && answerField === "answer") {
    throw new UsageError(
      `--template ${JSON.stringify(value)} has no {answer} or {completion} slot; the slot ` +
        `marks where the learned text starts, so end the template with the field that holds it`,
    );
  }
  let template: PromptTemplate;
  try {
    template = parseTemplate(source, { answerField });
  } catch (err) {
    throw new UsageError(`--template: ${(err as Error).message.replace(/^parseTemplate: /, "")}`);
  }
  // Everything after the learned slot is learned too, so a field there is a likely mistake.
  const after = source.slice(source.indexOf(`{${answerField}}`) + answerField.length + 2);
  const laterField = /\{([A-Za-z_][A-Za-z0-9_]*)\}/.exec(after.replace(/\{\{|\}\}/g, ""));
  if (laterField !== null) {
    throw new UsageError(
      `--template ${JSON.stringify(value)} has the slot {${laterField[1]}} after ` +
        `{${answerField}}, so the model would learn that field too; put {${answerField}} last`,
    );
  }
  return template;
}

// The characters that the escapes \n, \t and \\ of a command-line template stand for.
const TEMPLATE_ESCAPES: Record<string, string> = { n: "\n", t: "\t", "\\": "\\" };

/** Replaces the escapes of a command-line template by the characters they stand for. */
export function unescapeTemplate(value: string): string {
  return value.replace(/\\([nt\\])/g, (_, c: string) => TEMPLATE_ESCAPES[c]);
}

// Validation file names that a data folder may contain beside train.* (mlx-lm uses valid.jsonl).
const VALIDATION_FILES = ["valid", "validation", "dev"].flatMap((name) =>
  [".jsonl", ".json", ".parquet"].map((extension) => name + extension),
);

/**
 * Reads --data or --val-data with the data module's loader: a SQuAD .json file, a .jsonl or
 * .parquet file, a folder with train.jsonl (and valid.jsonl), or a Hub dataset id.
 */
export async function readDataSource(
  arg: string,
  template: PromptTemplate | undefined,
  role: "train" | "validation" = "train",
): Promise<DataSource> {
  const fields = template !== undefined && template.source !== SQUAD_TEMPLATE;
  const isFolder = existsSync(arg) && statSync(arg).isDirectory();
  const hasValidation = isFolder && readdirSync(arg).some((f) => VALIDATION_FILES.includes(f));
  // --val-data naming a folder means its validation file, when it has one.
  const split = role === "validation" && hasValidation ? "validation" : undefined;
  const loaded = await loadDataset(arg, { fields, split });
  if (loaded.samples.length === 0 && loaded.skippedImpossible > 0) {
    throw new Error(
      `${loaded.files.join(", ")}: all ${loaded.skippedImpossible} questions are unanswerable ` +
        `(SQuAD 2.0 is_impossible, or no answers), and training and evaluation skip those; ` +
        `give a file with answerable questions`,
    );
  }
  const validationSet =
    hasValidation && role === "train"
      ? await loadDataset(arg, { fields, split: "validation" })
      : null;
  const answersById = new Map(
    (loaded.questions ?? []).map((q) => [q.id, q.answers.map((a) => a.text)]),
  );
  return {
    kind: loaded.questions !== null ? "squad" : "jsonl",
    samples: loaded.samples,
    validation: validationSet?.samples ?? null,
    validationDescription: validationSet === null ? null : describeDataset(validationSet),
    answersById,
    description: describeDataset(loaded),
  };
}

function describeDataset(loaded: LoadedDataset): string {
  const skipped =
    loaded.skippedImpossible > 0
      ? `, ${loaded.skippedImpossible} impossible questions skipped`
      : "";
  const moved = (loaded.questions ?? []).reduce(
    (n, q) => n + q.answers.filter((a) => a.givenStart !== undefined).length,
    0,
  );
  const corrected =
    moved > 0 ? `, ${moved} answer_start offsets moved to where the answer text occurs` : "";
  const repeated = (loaded.questions ?? []).filter((q) => q.fileId !== undefined).length;
  const renamed =
    repeated > 0 ? `, ${plural(repeated, "repeated question id")} given a #N suffix` : "";
  const blank = loaded.skippedBlank ?? 0;
  const blanks = blank > 0 ? `, ${plural(blank, "blank text")} skipped` : "";
  const ignoredFields = loaded.ignoredFields ?? [];
  const ignored =
    ignoredFields.length > 0
      ? `, ${ignoredFields.map((name) => `"${name}"`).join(" and ")} ignored`
      : "";
  return (
    `${loaded.files.join(", ")} (${loaded.format}, ${plural(loaded.samples.length, "sample")}` +
    `${skipped}${corrected}${renamed}${blanks}${ignored})`
  );
}

export interface DataSplits {
  source: DataSource;
  train: Sample[];
  validation: Sample[];
  /** Description of the validation samples, for the printout. */
  validationDescription: string;
  /** The file (name, format, sample count) that the validation samples come from. */
  validationSource: string;
}

/**
 * Reads --data and --val-data and separates the validation samples. With `whole` (eval
 * --split all) --data is not split: its samples are all in `train`.
 */
export async function readSplits(options: {
  data: string;
  valData?: string;
  valFraction: number;
  seed: number;
  template: PromptTemplate | undefined;
  whole?: boolean;
}): Promise<DataSplits> {
  const source = await readDataSource(options.data, options.template);
  if (options.valData !== undefined) {
    const val = await readDataSource(options.valData, options.template, "validation");
    for (const [id, answers] of val.answersById) {
      const known = source.answersById.get(id);
      if (known !== undefined && JSON.stringify(known) !== JSON.stringify(answers)) {
        throw new Error(
          `question id ${JSON.stringify(id)} is in ${options.data} and in ${options.valData} ` +
            `with different answers; question ids must be unique across --data and ` +
            `--val-data, because exact match and F1 find the gold answers by id`,
        );
      }
      source.answersById.set(id, answers);
    }
    return {
      source,
      train: source.samples,
      validation: val.samples,
      validationDescription: val.description,
      validationSource: val.description,
    };
  }
  if (options.whole === true && source.validation === null) {
    return {
      source,
      train: source.samples,
      validation: [],
      validationDescription: "none (the data is read whole)",
      validationSource: source.description,
    };
  }
  if (source.validation !== null) {
    return {
      source,
      train: source.samples,
      validation: source.validation,
      validationDescription: "valid.jsonl of the data folder",
      validationSource: source.validationDescription ?? source.description,
    };
  }
  if (options.valFraction === 0) {
    return {
      source,
      train: source.samples,
      validation: [],
      validationDescription: "none (--val-fraction 0), so no validation loss is computed",
      validationSource: source.description,
    };
  }
  const { train, validation } = splitByGroup(source.samples, {
    validationFraction: options.valFraction,
    seed: options.seed,
  });
  const groups = [...new Set(validation.map((s) => s.group))];
  const shown = groups.length > 3 ? `${groups.slice(0, 3).join("; ")}; ...` : groups.join("; ");
  return {
    source,
    train,
    validation,
    validationDescription:
      `${plural(validation.length, "sample")} in ${plural(groups.length, "group")} held out ` +
      `(${shown})`,
    validationSource: source.description,
  };
}

/**
 * Tokenizes samples and formats the truncation report line. `targetWord` names what happens to
 * the label tokens: "learned" in train (the default), "scored" in eval.
 */
export function tokenizeSplit(
  name: string,
  samples: readonly Sample[],
  tokenizer: TextTokenizer,
  options: {
    maxLength: number;
    maskPrompt: boolean;
    template: PromptTemplate | undefined;
    targetWord?: "learned" | "scored";
  },
): { examples: TokenizedExample[]; report: TokenizeReport; line: string } {
  const { examples, report } = tokenizeSamples(samples, tokenizer, options);
  const dropped =
    report.dropped > 0
      ? `, ${report.dropped} dropped as too long (first: ${report.droppedOrigins[0]})`
      : "";
  const line =
    `${name} set: ${plural(report.examples, "example")}, ${plural(report.tokens, "token")} ` +
    `(${report.learnedTokens} ${options.targetWord ?? "learned"}), ${report.truncated} ` +
    `truncated to ${report.maxLength} tokens${dropped}${blankAnswers(report.blankAnswers)}` +
    unknownTokens(examples, tokenizer);
  return { examples, report, line };
}

/** Returns a note with the count of examples whose learned text is blank, or "" for none. */
function blankAnswers(count: number): string {
  if (count === 0) return "";
  const verb = count === 1 ? "has" : "have";
  return (
    `; ${plural(count, "example")} ${verb} an empty completion or assistant reply and learn ` +
    `only where it ends`
  );
}

/**
 * Returns a note with the count of input tokens that are the tokenizer's unknown token, or ""
 * when none are. Text the vocabulary cannot spell (other scripts, emoji) trains on that token.
 * No count is given when the unknown token is also BOS or EOS, as in GPT-2, where
 * `<|endoftext|>` is both: the count would be the markers the examples carry, and a byte-level
 * vocabulary spells any text. Padding is added per batch, so an unknown token that is also the
 * padding token (as in many Llama tokenizers) is still counted.
 */
function unknownTokens(examples: readonly TokenizedExample[], tokenizer: TextTokenizer): string {
  const unk = tokenizer.unkTokenId;
  if (unk === undefined || unk === null) return "";
  const markers = [tokenizer.bosTokenId, ...tokenizer.eosTokenIds];
  if (markers.includes(unk)) return "";
  let count = 0;
  let total = 0;
  for (const example of examples) {
    for (const id of example.inputIds) if (id === unk) count++;
    total += example.inputIds.length;
  }
  if (count === 0) return "";
  const share = ((100 * count) / Math.max(total, 1)).toFixed(1);
  const token = tokenizer.idToToken(unk) ?? String(unk);
  return (
    `; ${plural(count, "token")} (${share}%) ${count === 1 ? "is" : "are"} ${token}, text ` +
    `the tokenizer's vocabulary cannot spell`
  );
}

/** Returns "1 sample" or "3 samples". */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// Characters of an example shown before and after the start of its learned tokens.
const SHOWN_PROMPT_CHARS = 160;
const SHOWN_LEARNED_CHARS = 80;

/**
 * Returns a line that shows `example` decoded as the model reads it, special tokens included,
 * with "|" where the learned tokens start and long parts cut, or null without an example. It
 * lets the user check the template, the special tokens and the prompt mask before training.
 */
export function exampleLine(
  example: TokenizedExample | undefined,
  tokenizer: TextTokenizer,
): string | null {
  if (example === undefined) return null;
  const ids = Array.from(example.inputIds);
  // The first token is never predicted (the loss scores position t against label t + 1), so
  // a text sample's learned tokens start after its BOS.
  let learned = Array.from(example.labels).findIndex((label, i) => i > 0 && label !== IGNORE_INDEX);
  if (learned < 0) learned = ids.length;
  // Decoding the learned tokens alone would drop the space that starts them (SentencePiece
  // decoders strip it), so the whole example is decoded and split where the prompt ends.
  let prompt = tokenizer.decode(ids.slice(0, learned));
  const whole = tokenizer.decode(ids);
  let rest = whole.startsWith(prompt)
    ? whole.slice(prompt.length)
    : tokenizer.decode(ids.slice(learned));
  if (prompt.length > SHOWN_PROMPT_CHARS) prompt = "..." + prompt.slice(-SHOWN_PROMPT_CHARS);
  if (rest.length > SHOWN_LEARNED_CHARS) rest = rest.slice(0, SHOWN_LEARNED_CHARS) + "...";
  return (
    `first example (${example.origin}), decoded, "|" where the learned tokens start: ` +
    JSON.stringify(`${prompt}|${rest}`)
  );
}

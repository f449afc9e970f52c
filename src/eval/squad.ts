// SQuAD evaluation by generation: each question's prompt (the template up to the answer slot,
// tokenized exactly as in training) is continued greedily until a newline or EOS, and the text
// is scored with the official exact match and F1.
import { parseTemplate, renderTemplate, SQUAD_TEMPLATE } from "../data/template.js";
import { ExampleTokenizer, type TokenizeOptions } from "../data/tokenize.js";
import type { SquadQuestion } from "../data/squad.js";
import type { FieldsSample, Sample } from "../data/types.js";
import { generate } from "../generate/generate.js";
import type { TextTokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/types.js";
import { scoreSquad, type SquadPrediction, type SquadReport } from "./squad-metric.js";

/** One question ready for generation. */
export interface SquadPrompt {
  id: string;
  question: string;
  /** Every gold answer text (empty for an unanswerable SQuAD 2.0 question). */
  answers: string[];
  /** Prompt token ids: the template up to the answer slot, BOS included. */
  promptIds: number[];
  /**
   * Prompt text that the prompt ids leave out because the tokenizer merged it with the answer's
   * first token (":" of "Answer:" when ": " is one token). Generation repeats it, and
   * extractAnswer removes it.
   */
  uncoveredPrompt: string;
  origin: string;
}

/**
 * Tokenizes SQuAD samples into generation prompts. The prompt is the masked prefix of the
 * training example, so the model is given at evaluation the exact tokens it was trained to
 * continue, with the context shortened the same way when the example is too long (with room
 * left for `maxNewTokens`). `answers` gives every gold answer of each question: the `questions`
 * of loadDataset, or a map from question id to answer texts. Samples that are not questions
 * with answers there (for example text samples) are skipped. Throws when none is left.
 */
export function squadPrompts(
  samples: readonly Sample[],
  answers: ReadonlyMap<string, readonly string[]> | readonly SquadQuestion[],
  tokenizer: TextTokenizer,
  options: Omit<TokenizeOptions, "maskPrompt"> & { maxNewTokens: number },
): SquadPrompt[] {
  const answersById: ReadonlyMap<string, readonly string[]> =
    answers instanceof Map
      ? answers
      : new Map(
          (answers as readonly SquadQuestion[]).map((q) => [q.id, q.answers.map((a) => a.text)]),
        );
  const questions = samples.filter(
    (s): s is FieldsSample =>
      s.kind === "fields" && s.fields.id !== undefined && answersById.has(s.fields.id),
  );
  if (questions.length === 0) {
    throw new Error(
      `squadPrompts: none of the ${samples.length} samples is a question with gold answers ` +
        `in the ${answersById.size} given; pass the samples and the questions of one SQuAD ` +
        `dataset (loadDataset(...).samples and .questions)`,
    );
  }
  const worker = new ExampleTokenizer(tokenizer, {
    ...options,
    maxLength: options.maxLength - options.maxNewTokens,
    maskPrompt: true,
  });
  const template = options.template ?? parseTemplate(SQUAD_TEMPLATE);
  const prompts: SquadPrompt[] = [];
  for (const sample of questions) {
    const example = worker.tokenize(sample);
    if ("dropped" in example) {
      throw new Error(
        `squadPrompts: ${sample.origin}: the prompt needs ${example.minLength} tokens, more than ` +
          `max length ${options.maxLength} minus ${options.maxNewTokens} new tokens; ` +
          `raise --max-length`,
      );
    }
    const id = sample.fields.id ?? sample.origin;
    const promptIds = Array.from(example.inputIds.subarray(0, example.promptLength));
    prompts.push({
      id,
      question: sample.fields.question ?? "",
      answers: [...(answersById.get(id) ?? [sample.fields.answer ?? ""])],
      promptIds,
      uncoveredPrompt: uncoveredText(
        tokenizer,
        promptIds,
        renderTemplate(template, sample.fields, sample.origin).prompt,
      ),
      origin: sample.origin,
    });
  }
  return prompts;
}

/**
 * Returns the end of the rendered prompt text that the prompt ids do not cover. The last few
 * prompt tokens are decoded and located in the text, because decoding the whole prompt need not
 * reproduce the text (characters missing from the vocabulary decode as unknown). Returns ""
 * when they are not found.
 */
function uncoveredText(
  tokenizer: TextTokenizer,
  promptIds: readonly number[],
  promptText: string,
): string {
  const tail = tokenizer.decode(promptIds.slice(-8), { skipSpecialTokens: true }).trimStart();
  const at = promptText.lastIndexOf(tail);
  return tail === "" || at < 0 ? "" : promptText.slice(at + tail.length).trim();
}

/**
 * Cuts a generated continuation at its first newline, removes the prompt text that the
 * generation repeated (`uncoveredPrompt`), and trims it.
 */
export function extractAnswer(text: string, uncoveredPrompt = ""): string {
  const newline = text.indexOf("\n");
  let answer = (newline < 0 ? text : text.slice(0, newline)).trimStart();
  if (uncoveredPrompt !== "" && answer.startsWith(uncoveredPrompt)) {
    answer = answer.slice(uncoveredPrompt.length);
  }
  return answer.trim();
}

export interface AnswerOptions {
  maxNewTokens: number;
  /** Prompts generated together (left-padded); default 8. */
  batchSize?: number;
  /** Called after each batch with the number of questions answered so far and the total. */
  onProgress?: (answered: number, total: number) => void;
}

/**
 * Answers the prompts greedily, stopping each at a newline or EOS. Calls endStep() after every
 * generated token, as generate() does.
 */
export function answerQuestions(
  model: CausalLM,
  tokenizer: TextTokenizer,
  prompts: readonly SquadPrompt[],
  options: AnswerOptions,
): string[] {
  const batchSize = options.batchSize ?? 8;
  const answers: string[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < prompts.length; start += batchSize) {
      const batch = prompts.slice(start, start + batchSize);
      const result = generate(
        model,
        batch.map((p) => p.promptIds),
        {
          maxNewTokens: options.maxNewTokens,
          tokenizer,
          eosTokenId: tokenizer.eosTokenIds,
          stopStrings: ["\n"],
          padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
        },
      );
      answers.push(...result.texts.map((text, i) => extractAnswer(text, batch[i].uncoveredPrompt)));
      options.onProgress?.(answers.length, prompts.length);
    }
  } finally {
    model.train(wasTraining);
  }
  return answers;
}

export interface SquadEvaluation {
  report: SquadReport;
  predictions: SquadPrediction[];
}

/** Generates an answer to every prompt and scores them with SQuAD exact match and F1. */
export function evaluateSquad(
  model: CausalLM,
  tokenizer: TextTokenizer,
  prompts: readonly SquadPrompt[],
  options: AnswerOptions,
): SquadEvaluation {
  if (prompts.length === 0) throw new Error("evaluateSquad: no questions to evaluate");
  const answers = answerQuestions(model, tokenizer, prompts, options);
  const predictions = prompts.map((p, i) => ({
    id: p.id,
    prediction: answers[i],
    answers: p.answers,
  }));
  return { report: scoreSquad(predictions), predictions };
}

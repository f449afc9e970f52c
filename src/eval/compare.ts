// The before/after view of fine-tuning: the base model's and the adapted model's answers to the
// same SQuAD questions, side by side, with exact match and F1 for both.
import { withAdaptersDisabled } from "../lora/adapters.js";
import type { TextTokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/types.js";
import { evaluateSquad, type SquadEvaluation, type SquadPrompt } from "./squad.js";
import { exactMatch, f1Score } from "./squad-metric.js";

export interface Comparison {
  base: SquadEvaluation;
  adapted: SquadEvaluation;
  prompts: readonly SquadPrompt[];
  /** Questions printed side by side. */
  shown: number;
}

/**
 * Answers every prompt with the adapters disabled (the base model) and enabled, and scores both.
 * The model must have an active adapter.
 */
export function compareWithBase(
  model: CausalLM,
  tokenizer: TextTokenizer,
  prompts: readonly SquadPrompt[],
  options: {
    maxNewTokens: number;
    shown: number;
    batchSize?: number;
    onProgress?: (stage: "base" | "adapter", answered: number, total: number) => void;
  },
): Comparison {
  const answerOptions = (stage: "base" | "adapter") => ({
    maxNewTokens: options.maxNewTokens,
    batchSize: options.batchSize,
    onProgress: (answered: number, total: number) => options.onProgress?.(stage, answered, total),
  });
  const base = withAdaptersDisabled(model, () =>
    evaluateSquad(model, tokenizer, prompts, answerOptions("base")),
  );
  const adapted = evaluateSquad(model, tokenizer, prompts, answerOptions("adapter"));
  return { base, adapted, prompts, shown: Math.min(options.shown, prompts.length) };
}

function percent(value: number): string {
  return value.toFixed(2).padStart(6);
}

/** Formats a comparison as text: the totals, then one block per shown question. */
export function formatComparison(c: Comparison): string {
  const lines = [
    `                  exact match %    F1 %   (${c.base.report.total} questions)`,
    `  base model         ${percent(c.base.report.exactMatch)}  ${percent(c.base.report.f1)}`,
    `  with adapter       ${percent(c.adapted.report.exactMatch)}  ${percent(c.adapted.report.f1)}`,
    "",
  ];
  for (let i = 0; i < c.shown; i++) {
    const prompt = c.prompts[i];
    const base = c.base.predictions[i].prediction;
    const adapted = c.adapted.predictions[i].prediction;
    // Per question in percent too, so the lines read on the same scale as the totals.
    const score = (text: string) =>
      `EM ${percent(exactMatch(text, prompt.answers) * 100).trim()}% ` +
      `F1 ${percent(f1Score(text, prompt.answers) * 100).trim()}%`;
    lines.push(
      `Q${i + 1}: ${prompt.question}`,
      `  gold:    ${JSON.stringify(prompt.answers[0] ?? "")}`,
      `  base:    ${JSON.stringify(base)}  (${score(base)})`,
      `  adapter: ${JSON.stringify(adapted)}  (${score(adapted)})`,
    );
  }
  return lines.join("\n");
}

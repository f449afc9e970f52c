// Text in, text out: tokenizes prompts, generates, and decodes, with the tokenizer's special
// tokens as defaults.
import type { TextTokenizer } from "../io/tokenizer.js";
import type { CausalLM } from "../models/types.js";
import { generate, type GenerateOptions, type GenerateResult } from "./generate.js";

export type GenerateTextOptions = Omit<GenerateOptions, "tokenizer">;

/**
 * Generates a continuation of each prompt. Prompts are encoded with the tokenizer's special
 * tokens (a BOS where the tokenizer adds one). EOS defaults to every EOS id the tokenizer
 * has, and padding to its PAD id, else its EOS id.
 */
export function generateText(
  model: CausalLM,
  tokenizer: TextTokenizer,
  prompts: string | readonly string[],
  options: GenerateTextOptions = {},
): GenerateResult {
  const list = typeof prompts === "string" ? [prompts] : prompts;
  const ids = list.map((p) => tokenizer.encode(p, { addSpecialTokens: true }));
  return generate(model, ids, {
    ...options,
    tokenizer,
    eosTokenId: options.eosTokenId === undefined ? tokenizer.eosTokenIds : options.eosTokenId,
    padTokenId: options.padTokenId ?? tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
  });
}

// Tokenization of samples into training examples: input ids and labels of equal length, where a
// label is -100 (ignored by the loss) on prompt tokens when prompt masking is on, and the token id
// elsewhere. Labels are not shifted: the model's loss compares position t's logits with label t+1,
// as Hugging Face causal LMs do. Text and template examples end with an EOS whose label is always
// the EOS id, so the model learns where an answer stops. A template example keeps it after
// truncation, which shortens a prompt field, but a text cut at the maximum length ends without
// one. Chat examples get no EOS appended, because the chat template writes each turn's end token
// itself.
//
// Token boundaries between prompt and completion come from encoding the whole text once and the
// prompt alone: the masked tokens are the common prefix of the two encodings, as in TRL and
// mlx-lm, which also encode the whole text. A token that spans the boundary is learned, so no
// character of the completion is hidden in a masked token.
// NOTE: when a tokenizer merges across the boundary (TinyStories-656K has the token ":▁", so
// "Answer: France" is "…er", ":▁", "F", …), the prompt encoded alone ends differently ("…er",
// ":"). Generation that should match training can start from inputIds[0, promptLength).
import type { TextTokenizer } from "../io/tokenizer.js";
import { ChatRenderer } from "./chat.js";
import {
  parseTemplate,
  PROMPT_COMPLETION_TEMPLATE,
  renderTemplate,
  SQUAD_TEMPLATE,
  type PromptTemplate,
} from "./template.js";
import type { ChatSample, FieldsSample, Sample, TextSample } from "./types.js";

/** The label of a token the loss ignores (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

/** One training example. Both arrays have the same length, at most the maximum length. */
export interface TokenizedExample {
  inputIds: Int32Array;
  labels: Int32Array;
  /**
   * Number of leading prompt tokens: the masked prefix (0 for text, the first assistant token for
   * chat). tokenizeSamples always sets it; it is optional for examples built by hand.
   */
  promptLength?: number;
  group: string;
  origin: string;
  truncated: boolean;
}

export interface TokenizeOptions {
  /** Maximum number of tokens per example, EOS included. */
  maxLength: number;
  /** Set the labels of prompt tokens (and non-assistant chat tokens) to -100. Default true. */
  maskPrompt?: boolean;
  /**
   * The template for field samples. By default prompt/completion samples use "{prompt}{completion}"
   * (the prompt is shortened from the left) and other field samples use the SQuAD template.
   */
  template?: PromptTemplate;
  /** A Jinja chat template that replaces the tokenizer's own for chat samples. */
  chatTemplate?: string;
  /**
   * Keep the known answer position inside a shortened context (default true). Evaluation
   * prompts should turn it off, because choosing the window by the gold answer leaks it.
   */
  keepAnswerInContext?: boolean;
}

/** Counts of what tokenization did, for the log line before training. */
export interface TokenizeReport {
  samples: number;
  examples: number;
  /** Examples shortened to fit the maximum length (context, prompt or text cut). */
  truncated: number;
  /** Samples dropped because even the parts that are never cut did not fit. */
  dropped: number;
  /** Origins of the first dropped samples (at most 10). */
  droppedOrigins: string[];
  maxLength: number;
  /** Tokens over all examples, and the tokens the loss scores (see scoredLabels). */
  tokens: number;
  learnedTokens: number;
  /** Examples whose answer, completion or an assistant message is blank (see hasBlankAnswer). */
  blankAnswers: number;
}

interface Encoded {
  ids: number[];
  /** Number of leading tokens that belong to the prompt. */
  promptLength: number;
}

type FitResult = { encoded: Encoded; truncated: boolean } | { dropped: true; minLength: number };

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Turns samples into examples; see the file header for the conventions. */
export class ExampleTokenizer {
  private readonly eos: number;
  private readonly maskPrompt: boolean;
  private readonly maxLength: number;
  private readonly squadTemplate = parseTemplate(SQUAD_TEMPLATE);
  private readonly promptCompletionTemplate = parseTemplate(PROMPT_COMPLETION_TEMPLATE, {
    answerField: "completion",
    truncateField: "prompt",
    truncateSide: "left",
  });
  private chatRenderer: ChatRenderer | null = null;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly options: TokenizeOptions,
  ) {
    if (tokenizer.eosTokenId === null) {
      throw new Error(
        "tokenizeSamples: the tokenizer has no EOS token, and every example must end with one; " +
          "set eos_token in tokenizer_config.json",
      );
    }
    if (!Number.isInteger(options.maxLength) || options.maxLength < 2) {
      throw new Error(
        `tokenizeSamples: maxLength must be an integer >= 2 (one token and the EOS), got ${options.maxLength}`,
      );
    }
    this.eos = tokenizer.eosTokenId;
    this.maskPrompt = options.maskPrompt ?? true;
    this.maxLength = options.maxLength;
  }

  /**
   * Returns true when the sample's learned text is blank: an empty answer or completion field,
   * or an empty assistant message. Such an example teaches only where the answer ends.
   */
  hasBlankAnswer(sample: Sample): boolean {
    if (sample.kind === "text") return false;
    if (sample.kind === "chat") {
      return sample.messages.some((m) => m.role === "assistant" && m.content.trim() === "");
    }
    return (sample.fields[this.templateFor(sample).answerField] ?? "").trim() === "";
  }

  /** Tokenizes one sample; returns the minimum length it needs when it cannot fit. */
  tokenize(sample: Sample): TokenizedExample | { dropped: true; minLength: number } {
    let fit: FitResult;
    let learned: (ids: number[], encoded: Encoded) => Int32Array;
    if (sample.kind === "text") {
      fit = this.fitText(sample);
      learned = (ids) => Int32Array.from(ids);
    } else if (sample.kind === "fields") {
      fit = this.fitFields(sample);
      learned = (ids, encoded) => this.promptLabels(ids, encoded.promptLength);
    } else {
      return this.tokenizeChat(sample);
    }
    if ("dropped" in fit) return fit;
    const ids = fit.encoded.ids;
    return {
      inputIds: Int32Array.from(ids),
      labels: learned(ids, fit.encoded),
      promptLength: fit.encoded.promptLength,
      group: sample.group,
      origin: sample.origin,
      truncated: fit.truncated,
    };
  }

  private promptLabels(ids: readonly number[], promptLength: number): Int32Array {
    const labels = Int32Array.from(ids);
    if (this.maskPrompt) labels.fill(IGNORE_INDEX, 0, Math.min(promptLength, ids.length - 1));
    return labels;
  }

  private withEos(ids: number[]): number[] {
    if (ids[ids.length - 1] !== this.eos) ids.push(this.eos);
    return ids;
  }

  private fitText(sample: TextSample): FitResult {
    const ids = this.withEos(this.tokenizer.encode(sample.text));
    if (ids.length <= this.maxLength)
      return { encoded: { ids, promptLength: 0 }, truncated: false };
    // The text goes on past the cut, so no EOS follows it: an EOS there would teach the model
    // to stop in the middle of a text.
    const cut = ids.slice(0, this.maxLength);
    return { encoded: { ids: cut, promptLength: 0 }, truncated: true };
  }

  private templateFor(sample: FieldsSample): PromptTemplate {
    if (this.options.template !== undefined) return this.options.template;
    const { fields } = sample;
    if ("prompt" in fields && "completion" in fields) return this.promptCompletionTemplate;
    return this.squadTemplate;
  }

  private encodeFields(
    template: PromptTemplate,
    fields: Record<string, string>,
    origin: string,
  ): Encoded {
    const { prompt, completion } = renderTemplate(template, fields, origin);
    const ids = this.withEos(this.tokenizer.encode(prompt + completion));
    const promptIds = this.tokenizer.encode(prompt);
    return { ids, promptLength: commonPrefixLength(promptIds, ids) };
  }

  /**
   * Fits a template sample into the maximum length by shortening the truncated field (the
   * context, or the prompt of a prompt/completion pair), never the question or the answer.
   * When the answer's position in the context is known, the kept window of the context
   * contains it, and a sample whose window cannot is dropped. Each retry re-encodes the whole
   * text because token counts are not additive.
   */
  private fitFields(sample: FieldsSample): FitResult {
    const template = this.templateFor(sample);
    const full = this.encodeFields(template, sample.fields, sample.origin);
    if (full.ids.length <= this.maxLength) return { encoded: full, truncated: false };

    const field = template.truncateField;
    const value = field === null ? undefined : sample.fields[field];
    if (field === null || value === undefined || value === "") {
      return { dropped: true, minLength: full.ids.length };
    }

    const valueIds = this.tokenizer.encode(value, { addSpecialTokens: false });
    const answer = this.answerTokenRange(sample, template, field, value);
    let keep = valueIds.length - (full.ids.length - this.maxLength);
    // A context that cannot hold the whole answer would teach an answer it does not contain.
    const minKeep = answer === null ? 1 : answer[1] - answer[0];
    while (keep >= minKeep) {
      const start = this.windowStart(valueIds.length, keep, answer, template.truncateSide);
      const text = this.tokenizer.decode(valueIds.slice(start, start + keep));
      const encoded = this.encodeFields(
        template,
        { ...sample.fields, [field]: text },
        sample.origin,
      );
      if (encoded.ids.length <= this.maxLength) return { encoded, truncated: true };
      keep -= Math.max(1, encoded.ids.length - this.maxLength);
    }
    if (answer !== null) {
      return { dropped: true, minLength: full.ids.length - (valueIds.length - minKeep) };
    }

    const empty = this.encodeFields(template, { ...sample.fields, [field]: "" }, sample.origin);
    if (empty.ids.length <= this.maxLength) return { encoded: empty, truncated: true };
    return { dropped: true, minLength: empty.ids.length };
  }

  /** Returns the answer's [start, end) token range in the context, when its offset is known. */
  private answerTokenRange(
    sample: FieldsSample,
    template: PromptTemplate,
    field: string,
    value: string,
  ): [number, number] | null {
    const answer = sample.fields[template.answerField];
    if (this.options.keepAnswerInContext === false) return null;
    if (field !== "context" || sample.answerStart === undefined || answer === undefined)
      return null;
    const encode = (text: string) => this.tokenizer.encode(text, { addSpecialTokens: false });
    // A prefix encoded alone can end in other tokens than the same text inside the whole
    // context, so the range gets one token of margin on each side.
    const start = encode(value.slice(0, sample.answerStart)).length;
    const end = encode(value.slice(0, sample.answerStart + answer.length)).length;
    return [Math.max(0, start - 1), Math.max(end, start) + 1];
  }

  // Cuts the end of the field (or its start for side "left"), unless that would cut the answer,
  // in which case the kept window is centred on the answer.
  private windowStart(
    length: number,
    keep: number,
    answer: [number, number] | null,
    side: "left" | "right",
  ): number {
    if (answer === null) return side === "left" ? length - keep : 0;
    const [start, end] = answer;
    if (end <= keep) return 0;
    const centred = Math.floor((start + end - keep) / 2);
    return Math.max(0, Math.min(length - keep, centred));
  }

  private tokenizeChat(
    sample: ChatSample,
  ): TokenizedExample | { dropped: true; minLength: number } {
    this.chatRenderer ??= new ChatRenderer(this.tokenizer, this.options.chatTemplate);
    const encode = (text: string) => this.tokenizer.encode(text, { addSpecialTokens: false });

    // The template writes BOS and other special tokens itself, so none are added on encoding
    // (transformers' apply_chat_template does the same).
    const { text, assistantSpans } = this.chatRenderer.renderWithSpans(
      sample.messages,
      sample.origin,
    );
    if (this.maskPrompt && assistantSpans.length === 0) {
      const roles = [...new Set(sample.messages.map((message) => message.role))].join(", ");
      throw new Error(
        `${sample.origin}: the conversation has no message with role "assistant" (roles: ` +
          `${roles}), so prompt masking leaves nothing to learn; add an assistant turn, or ` +
          `turn off prompt masking (--no-mask-prompt, or maskPrompt: false)`,
      );
    }
    const ids = encode(text);
    const labels = Int32Array.from(ids);
    if (this.maskPrompt) {
      labels.fill(IGNORE_INDEX);
      for (const [start, end] of assistantSpans) {
        const from = commonPrefixLength(encode(text.slice(0, start)), ids);
        const to = commonPrefixLength(encode(text.slice(0, end)), ids);
        labels.set(ids.slice(from, to), from);
      }
    }

    if (ids.length <= this.maxLength) {
      return {
        inputIds: Int32Array.from(ids),
        labels,
        ...this.identity(sample, labels),
        truncated: false,
      };
    }
    // A conversation is cut at the end, without an EOS, because the cut turn has not ended. It
    // is dropped when no learned token is left.
    const cutLabels = labels.slice(0, this.maxLength);
    if (!cutLabels.some((label) => label !== IGNORE_INDEX)) {
      const firstLearned = labels.findIndex((label) => label !== IGNORE_INDEX);
      return { dropped: true, minLength: firstLearned + 1 };
    }
    const inputIds = Int32Array.from(ids.slice(0, this.maxLength));
    return { inputIds, labels: cutLabels, ...this.identity(sample, cutLabels), truncated: true };
  }

  private identity(sample: Sample, labels: Int32Array) {
    const firstLearned = labels.findIndex((label) => label !== IGNORE_INDEX);
    return { promptLength: firstLearned, group: sample.group, origin: sample.origin };
  }
}

/**
 * Tokenizes samples into examples and reports how many were truncated or dropped. Throws when
 * there are no samples, or when every sample is too long even after truncation (the error gives
 * the smallest maximum length that would keep one).
 */
export function tokenizeSamples(
  samples: readonly Sample[],
  tokenizer: TextTokenizer,
  options: TokenizeOptions,
): { examples: TokenizedExample[]; report: TokenizeReport } {
  if (samples.length === 0) {
    throw new Error("tokenizeSamples: the dataset is empty (no samples to tokenize)");
  }
  const worker = new ExampleTokenizer(tokenizer, options);
  const examples: TokenizedExample[] = [];
  const droppedOrigins: string[] = [];
  let dropped = 0;
  let minNeeded = Infinity;
  let blankAnswers = 0;
  for (const sample of samples) {
    const result = worker.tokenize(sample);
    if ("dropped" in result) {
      dropped++;
      minNeeded = Math.min(minNeeded, result.minLength);
      if (droppedOrigins.length < 10) droppedOrigins.push(sample.origin);
      continue;
    }
    examples.push(result);
    if (worker.hasBlankAnswer(sample)) blankAnswers++;
  }

  if (examples.length === 0) {
    throw new Error(
      `tokenizeSamples: all ${samples.length} samples are longer than maxLength ` +
        `${options.maxLength} even after shortening (first: ` +
        `${droppedOrigins[0]}); the shortest needs ${minNeeded} tokens, so raise maxLength ` +
        `to at least ${minNeeded} (--max-length on the command line)`,
    );
  }

  let tokens = 0;
  let learnedTokens = 0;
  let truncated = 0;
  for (const example of examples) {
    tokens += example.inputIds.length;
    learnedTokens += scoredLabels(example.labels);
    if (example.truncated) truncated++;
  }
  const report: TokenizeReport = {
    samples: samples.length,
    examples: examples.length,
    truncated,
    dropped,
    droppedOrigins,
    maxLength: options.maxLength,
    tokens,
    learnedTokens,
    blankAnswers,
  };
  return { examples, report };
}

/**
 * Counts the labels the loss scores: those other than -100 after the first position, because
 * position t predicts token t + 1 and nothing predicts the first token.
 */
export function scoredLabels(labels: ArrayLike<number>): number {
  let count = 0;
  for (let i = 1; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) count++;
  return count;
}

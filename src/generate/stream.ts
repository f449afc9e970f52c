// Incremental detokenization: turns a growing list of token ids into text deltas.
import type { TextTokenizer } from "../io/tokenizer.js";

// Prompt tokens decoded in front of the generated ones. One is enough for the space that
// SentencePiece-style decoders drop at the start of a text; a few more cover merged bytes.
const CONTEXT_TOKENS = 4;

/**
 * Decodes the whole sequence on every push and returns the text after what was already
 * returned. Text that ends in U+FFFD is held back, because a multi-byte character whose bytes
 * span several tokens decodes to U+FFFD until its last byte arrives.
 */
export class TextStream {
  private readonly tokenizer: TextTokenizer;
  private readonly context: readonly number[];
  private readonly contextText: string;
  private readonly ids: number[] = [];
  private emitted = 0;
  /** The decoded text of every id pushed so far. */
  text = "";

  /**
   * `prompt` ids give the decoder its left context, so that the first generated word keeps
   * its leading space ("Once upon a time," + " there").
   */
  constructor(tokenizer: TextTokenizer, prompt: readonly number[] = []) {
    this.tokenizer = tokenizer;
    this.context = prompt.slice(-CONTEXT_TOKENS);
    this.contextText = this.decode(this.context);
  }

  /** Adds one token id and returns the new text that can be shown ("" when none). */
  push(id: number): string {
    this.ids.push(id);
    const full = this.decode([...this.context, ...this.ids]);
    // Falls back to the generated ids alone if the context decodes differently once followed.
    this.text = full.startsWith(this.contextText)
      ? full.slice(this.contextText.length)
      : this.decode(this.ids);
    if (this.text.endsWith("\uFFFD")) return "";
    return this.take();
  }

  private decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: true });
  }

  /** Returns whatever text is still held back. */
  flush(): string {
    return this.take();
  }

  private take(): string {
    const delta = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return delta;
  }
}

// Incremental detokenization: turns a growing list of token ids into text deltas.
import type { TextTokenizer } from "../io/tokenizer.js";

/**
 * Decodes the whole sequence on every push and returns the text after what was already
 * returned. Text that ends in U+FFFD is held back, because a multi-byte character whose bytes
 * span several tokens decodes to U+FFFD until its last byte arrives.
 */
export class TextStream {
  private readonly tokenizer: TextTokenizer;
  private readonly ids: number[] = [];
  private emitted = 0;
  /** The decoded text of every id pushed so far. */
  text = "";

  constructor(tokenizer: TextTokenizer) {
    this.tokenizer = tokenizer;
  }

  /** Adds one token id and returns the new text that can be shown ("" when none). */
  push(id: number): string {
    this.ids.push(id);
    this.text = this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
    if (this.text.endsWith("\uFFFD")) return "";
    return this.take();
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

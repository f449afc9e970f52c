// Chat rendering through the tokenizer's Jinja chat template (@huggingface/jinja), with the
// character spans of the assistant turns, which are the learned part of a conversation.
import { Template } from "@huggingface/jinja";
import type { TextTokenizer } from "../io/tokenizer.js";
import type { ChatMessage } from "./types.js";

/** A rendered conversation and the [start, end) character spans of its assistant turns. */
export interface RenderedChat {
  text: string;
  assistantSpans: [number, number][];
}

/** A chat template compiled once and reused for every conversation. */
export class ChatRenderer {
  private readonly template: Template;
  private readonly specialTokens: Record<string, string>;

  constructor(tokenizer: TextTokenizer, chatTemplate?: string) {
    const source = chatTemplate ?? tokenizer.chatTemplate;
    if (source === null || source === undefined) {
      throw new Error(
        "chat data: the tokenizer has no chat template (no chat_template in " +
          "tokenizer_config.json and no chat_template.jinja), so messages cannot be rendered. " +
          "Add a chat_template field to tokenizer_config.json or a chat_template.jinja file to " +
          'the model folder, convert the data to {"prompt", "completion"} or {"text"} lines, ' +
          "or, from the library, pass the chatTemplate option of tokenizeSamples",
      );
    }
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new Error(
        `chat data: the chat template is invalid Jinja (${(error as Error).message})`,
      );
    }
    const tokenText = (id: number | null) => (id === null ? "" : (tokenizer.idToToken(id) ?? ""));
    this.specialTokens = {
      bos_token: tokenText(tokenizer.bosTokenId),
      eos_token: tokenText(tokenizer.eosTokenId),
      pad_token: tokenText(tokenizer.padTokenId),
    };
  }

  /** Renders messages; `addGenerationPrompt` appends the header of an assistant turn. */
  render(messages: readonly ChatMessage[], addGenerationPrompt = false): string {
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      ...this.specialTokens,
    });
  }

  /**
   * Renders a conversation and finds each assistant turn as the text that rendering the turn
   * adds after the generation prompt of the messages before it. This needs a template whose
   * rendering of the first k messages is a prefix of the whole rendering, as ChatML and
   * Llama-2-style templates are. A template that rewrites earlier turns is rejected.
   */
  renderWithSpans(messages: readonly ChatMessage[], origin: string): RenderedChat {
    let text: string;
    try {
      text = this.render(messages);
    } catch (error) {
      // Templates reject conversations they cannot format (e.g. roles out of order) by
      // calling raise_exception.
      throw new Error(`${origin}: the chat template failed (${(error as Error).message})`);
    }
    const assistantSpans: [number, number][] = [];
    for (let i = 0; i < messages.length; i++) {
      if (messages[i].role !== "assistant") continue;
      const before = this.render(messages.slice(0, i), true);
      const through = this.render(messages.slice(0, i + 1));
      if (!text.startsWith(before) || !text.startsWith(through) || through.length < before.length) {
        throw new Error(
          `${origin}: the chat template does not render messages[0..${i}] as a prefix of the ` +
            `whole conversation, so the assistant turns cannot be located for the loss mask; ` +
            `turn off prompt masking for this data (--no-mask-prompt, or maskPrompt: false) ` +
            `or use a prefix-stable template`,
        );
      }
      assistantSpans.push([before.length, through.length]);
    }
    return { text, assistantSpans };
  }
}

// Samples: one training example as read from a dataset, before tokenization. Readers produce
// them and tokenize.ts turns them into token ids and labels.

/** One chat turn, as the `messages` field of a JSONL line or a Hub row stores it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * Fields shared by every sample. `group` keeps related samples on the same side of the
 * train/validation split (a SQuAD article, or a JSONL line or group field), and `origin` names
 * the file and line or JSON path in error messages.
 */
interface SampleBase {
  group: string;
  origin: string;
}

/** A plain text sample whose tokens are all learned. */
export interface TextSample extends SampleBase {
  kind: "text";
  text: string;
}

/**
 * A sample made of named string fields, rendered through a prompt template (SQuAD questions,
 * prompt/completion pairs). `answerStart` is the character offset of the answer in the
 * `context` field, when known, so that truncation can keep the answer inside the context.
 */
export interface FieldsSample extends SampleBase {
  kind: "fields";
  fields: Record<string, string>;
  answerStart?: number;
}

/** A conversation rendered with the tokenizer's chat template. */
export interface ChatSample extends SampleBase {
  kind: "chat";
  messages: ChatMessage[];
}

export type Sample = TextSample | FieldsSample | ChatSample;

/** Describes a value's type for error messages: "null", "array", "string", "number", ... */
export function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

// Prompt templates: a text with `{field}` slots, one of which (the answer slot) marks where the
// learned completion starts. Literal braces are written `{{` and `}}`.

/** A parsed template, split at the answer slot into the prompt and the completion. */
export interface PromptTemplate {
  /** The template text as given. */
  source: string;
  /** Everything before the answer slot, with the spaces just before the slot moved out. */
  prompt: TemplatePart[];
  /** The answer slot and everything after it. */
  completion: TemplatePart[];
  answerField: string;
  /** Every slot name, in order of appearance. */
  fields: string[];
  /** The field shortened when an example is longer than the maximum length, if any. */
  truncateField: string | null;
  /** The end of the truncated field that is cut when no answer position is known. */
  truncateSide: "left" | "right";
}

/** A literal text or a slot in a template. */
export type TemplatePart = { text: string } | { field: string };

export interface TemplateOptions {
  /** The slot where the completion starts (default "answer"). */
  answerField?: string;
  /** The field to shorten when too long (default "context" when the template has that slot). */
  truncateField?: string | null;
  truncateSide?: "left" | "right";
}

/** The default SQuAD template: context, question and answer sections. */
export const SQUAD_TEMPLATE = "Context: {context}\nQuestion: {question}\nAnswer: {answer}";

/** The template for JSONL prompt/completion lines: the two texts joined as they are. */
export const PROMPT_COMPLETION_TEMPLATE = "{prompt}{completion}";

const SLOT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function tokenizeTemplate(source: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let text = "";
  let i = 0;
  while (i < source.length) {
    const ch = source[i];
    if ((ch === "{" || ch === "}") && source[i + 1] === ch) {
      text += ch;
      i += 2;
      continue;
    }
    if (ch === "}") {
      throw new Error(
        `parseTemplate: unmatched "}" at offset ${i} in template ${JSON.stringify(source)}; ` +
          `write "}}" for a literal brace`,
      );
    }
    if (ch !== "{") {
      text += ch;
      i++;
      continue;
    }

    const end = source.indexOf("}", i);
    const name = end < 0 ? "" : source.slice(i + 1, end);
    if (!SLOT_NAME.test(name)) {
      throw new Error(
        `parseTemplate: invalid slot at offset ${i} in template ${JSON.stringify(source)}; ` +
          `a slot is {name} with a name of letters, digits and "_", and "{{" is a literal brace`,
      );
    }
    if (text !== "") parts.push({ text });
    text = "";
    parts.push({ field: name });
    i = end + 1;
  }
  if (text !== "") parts.push({ text });
  return parts;
}

/**
 * Parses a template and splits it at the answer slot. Spaces and tabs just before the answer
 * slot move to the completion, so "Answer: {answer}" learns " Paris" as the tokenizer would split
 * the whole text, not "Answer: " followed by "Paris". Throws when the answer slot is missing or
 * appears more than once.
 */
export function parseTemplate(source: string, options: TemplateOptions = {}): PromptTemplate {
  const answerField = options.answerField ?? "answer";
  const parts = tokenizeTemplate(source);
  const fields = parts.flatMap((part) => ("field" in part ? [part.field] : []));

  const answerSlots = parts.filter((part) => "field" in part && part.field === answerField);
  if (answerSlots.length === 0) {
    throw new Error(
      `parseTemplate: template ${JSON.stringify(source)} has no {${answerField}} slot; ` +
        `the answer slot marks where the learned completion starts, so add {${answerField}} ` +
        `(library callers may instead set answerField to the slot that holds the answer)`,
    );
  }
  if (answerSlots.length > 1) {
    throw new Error(
      `parseTemplate: template ${JSON.stringify(source)} has ${answerSlots.length} ` +
        `{${answerField}} slots; it must have exactly one`,
    );
  }

  const answerIndex = parts.indexOf(answerSlots[0]);
  const prompt = parts.slice(0, answerIndex);
  const completion = parts.slice(answerIndex);
  const last = prompt[prompt.length - 1];
  if (last !== undefined && "text" in last) {
    const trimmed = last.text.replace(/[ \t]+$/, "");
    const moved = last.text.slice(trimmed.length);
    if (moved !== "") {
      if (trimmed === "") prompt.pop();
      else prompt[prompt.length - 1] = { text: trimmed };
      completion.unshift({ text: moved });
    }
  }

  const truncateField =
    options.truncateField !== undefined
      ? options.truncateField
      : fields.includes("context")
        ? "context"
        : null;
  if (truncateField !== null) {
    if (truncateField === answerField) {
      throw new Error(
        `parseTemplate: truncateField must not be the answer slot {${answerField}}; ` +
          `the answer is never shortened`,
      );
    }
    if (!prompt.some((part) => "field" in part && part.field === truncateField)) {
      throw new Error(
        `parseTemplate: truncateField "${truncateField}" is not a slot before the answer in ` +
          `template ${JSON.stringify(source)}; slots: ${fields.join(", ")}`,
      );
    }
  }

  return {
    source,
    prompt,
    completion,
    answerField,
    fields,
    truncateField,
    truncateSide: options.truncateSide ?? "right",
  };
}

function renderParts(
  parts: readonly TemplatePart[],
  fields: Readonly<Record<string, string>>,
  origin: string,
): string {
  let out = "";
  for (const part of parts) {
    if ("text" in part) {
      out += part.text;
      continue;
    }
    const value = fields[part.field];
    if (typeof value !== "string") {
      throw new Error(
        `${origin}: the template slot {${part.field}} has no value; the sample has the fields ` +
          `${Object.keys(fields).join(", ") || "(none)"}`,
      );
    }
    out += value;
  }
  return out;
}

/** Renders a sample's fields into the prompt text and the completion text. */
export function renderTemplate(
  template: PromptTemplate,
  fields: Readonly<Record<string, string>>,
  origin: string,
): { prompt: string; completion: string } {
  return {
    prompt: renderParts(template.prompt, fields, origin),
    completion: renderParts(template.completion, fields, origin),
  };
}

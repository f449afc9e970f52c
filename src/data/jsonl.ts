// JSONL reader: one JSON object per line, in one of three formats (the ones mlx-lm and TRL use):
//   {"text": ...}                    all tokens learned
//   {"prompt": ..., "completion": ...} completion learned
//   {"messages": [{"role", "content"}, ...]}  assistant turns learned
// With a custom template every line is a record of string fields for the template's slots.
// Blank lines, and text lines whose text is blank, are skipped. A line with the fields of more
// than one format is read in the first of messages, prompt/completion and text. Line numbers in
// errors are 1-based.
import { readUtf8File } from "../io/text-file.js";
import { blankTexts, ignoredFormatFields } from "./formats.js";
import { describeType, type ChatMessage, type Sample } from "./types.js";

export type JsonlFormat = "text" | "prompt-completion" | "messages" | "fields";

export interface JsonlData {
  samples: Sample[];
  format: JsonlFormat;
  /** "text" lines left out because their text is empty or only whitespace. */
  skippedBlank: number;
  /** Fields of another format that lines also have and that reading in `format` ignores. */
  ignoredFields: string[];
}

export interface JsonlOptions {
  /**
   * A field whose value groups lines for the train/validation split (lines with equal values
   * stay together). By default each line is its own group.
   */
  groupField?: string;
  /**
   * Read every line as a record of string fields (for a custom template) instead of detecting
   * the text, prompt/completion or messages format.
   */
  fields?: boolean;
}

function detectFormat(record: Record<string, unknown>): JsonlFormat | null {
  if ("messages" in record) return "messages";
  if ("prompt" in record || "completion" in record) return "prompt-completion";
  if ("text" in record) return "text";
  return null;
}

function requireString(where: string, record: Record<string, unknown>, key: string): string {
  const value = record[key];
  if (value === undefined) throw new Error(`${where}: the field "${key}" is missing`);
  if (typeof value !== "string") {
    throw new Error(`${where}: the field "${key}" must be a string, got ${describeType(value)}`);
  }
  return value;
}

function readMessages(where: string, record: Record<string, unknown>): ChatMessage[] {
  const raw = record.messages;
  if (!Array.isArray(raw)) {
    throw new Error(`${where}: the field "messages" must be an array, got ${describeType(raw)}`);
  }
  if (raw.length === 0) throw new Error(`${where}: the field "messages" is an empty array`);
  return raw.map((message, i) => {
    const at = `${where}: messages[${i}]`;
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      throw new Error(
        `${at} must be an object with "role" and "content", got ${describeType(message)}`,
      );
    }
    const record = message as Record<string, unknown>;
    return {
      role: requireString(at, record, "role"),
      content: requireString(at, record, "content"),
    };
  });
}

function readFields(where: string, record: Record<string, unknown>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === "string") fields[key] = value;
    else if (typeof value === "number" || typeof value === "boolean") fields[key] = String(value);
    else if (value !== null) {
      throw new Error(
        `${where}: the field "${key}" must be a string, number or boolean for a template, ` +
          `got ${describeType(value)}`,
      );
    }
  }
  return fields;
}

function groupOf(
  where: string,
  record: Record<string, unknown>,
  options: JsonlOptions,
  line: number,
) {
  if (options.groupField === undefined) return `line ${line}`;
  const value = record[options.groupField];
  if (typeof value === "string" || typeof value === "number")
    return `${options.groupField}=${value}`;
  throw new Error(
    `${where}: the group field "${options.groupField}" must be a string or number, ` +
      `got ${describeType(value)}`,
  );
}

/** Parses JSONL text into samples; `file` names the source in error messages. */
export function parseJsonl(text: string, file: string, options: JsonlOptions = {}): JsonlData {
  const samples: Sample[] = [];
  let skippedBlank = 0;
  const ignored = new Set<string>();
  let format: JsonlFormat | null = options.fields ? "fields" : null;
  let formatLine = 0;
  const lines = text.replace(/^\uFEFF/, "").split("\n");

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (line.trim() === "") continue;
    const lineNumber = i + 1;
    const where = `${file}:${lineNumber}`;

    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (error) {
      throw new Error(`readJsonl: ${where}: invalid JSON (${(error as Error).message})`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new Error(
        `readJsonl: ${where}: each line must be a JSON object, got ${describeType(json)}`,
      );
    }
    const record = json as Record<string, unknown>;

    const lineFormat: JsonlFormat | null = format === "fields" ? "fields" : detectFormat(record);
    if (lineFormat === null) {
      throw new Error(
        `readJsonl: ${where}: unknown line format with keys ${Object.keys(record).join(", ") || "(none)"}; ` +
          `expected "text", "prompt" and "completion", or "messages" (or pass a template to use ` +
          `other fields)`,
      );
    }
    if (format === null) {
      format = lineFormat;
      formatLine = lineNumber;
    } else if (lineFormat !== format) {
      throw new Error(
        `readJsonl: ${where}: this line is in the ${lineFormat} format but line ${formatLine} ` +
          `is in the ${format} format; use one format per file`,
      );
    }

    const group = groupOf(`readJsonl: ${where}`, record, options, lineNumber);
    const at = `readJsonl: ${where}`;
    if (lineFormat !== "fields") {
      for (const name of ignoredFormatFields(lineFormat, Object.keys(record))) ignored.add(name);
    }
    if (lineFormat === "text") {
      const lineText = requireString(at, record, "text");
      if (lineText.trim() === "") skippedBlank++;
      else samples.push({ kind: "text", text: lineText, group, origin: where });
    } else if (lineFormat === "prompt-completion") {
      const fields = {
        prompt: requireString(at, record, "prompt"),
        completion: requireString(at, record, "completion"),
      };
      samples.push({ kind: "fields", fields, group, origin: where });
    } else if (lineFormat === "messages") {
      samples.push({ kind: "chat", messages: readMessages(at, record), group, origin: where });
    } else {
      samples.push({ kind: "fields", fields: readFields(at, record), group, origin: where });
    }
  }

  if (format === null || samples.length === 0) {
    const blank = skippedBlank > 0 ? blankTexts(skippedBlank) : "no JSON lines";
    throw new Error(`readJsonl: ${file}: the dataset is empty (${blank})`);
  }
  return { samples, format, skippedBlank, ignoredFields: [...ignored] };
}

/** Reads a JSONL file into samples. */
export function readJsonl(path: string, options: JsonlOptions = {}): JsonlData {
  return parseJsonl(readUtf8File(path, "readJsonl"), path, options);
}

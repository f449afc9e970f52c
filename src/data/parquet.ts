// Parquet rows (read with hyparquet) mapped to samples. Columns are recognised by name, as the
// Hugging Face datasets library names them:
//   SQuAD: id, title, context, question, answers {text: string[], answer_start: int[]}
//   chat: messages [{role, content}]
//   prompt/completion: prompt, completion
//   text: text
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import type { SquadAnswer, SquadQuestion } from "./squad.js";
import { describeType, type ChatMessage, type Sample } from "./types.js";
import { blankTexts } from "./formats.js";

export type Row = Record<string, unknown>;
export type RowFormat = "squad" | "messages" | "prompt-completion" | "text";

/** Reads every row of a Parquet file as an object keyed by column name. */
export async function readParquetRows(path: string): Promise<Row[]> {
  try {
    const file = await asyncBufferFromFile(path);
    return await parquetReadObjects({ file });
  } catch (error) {
    throw new Error(
      `readParquetRows: ${path}: could not read the Parquet file (${(error as Error).message}); ` +
        `hyparquet reads uncompressed and Snappy files, the codecs the Hub's Parquet conversion uses`,
    );
  }
}

/** Picks the sample format from a row's column names, or throws with the columns found. */
export function detectRowFormat(columns: readonly string[], file: string): RowFormat {
  const has = (name: string) => columns.includes(name);
  if (has("context") && has("question") && has("answers")) return "squad";
  if (has("messages")) return "messages";
  if (has("prompt") && has("completion")) return "prompt-completion";
  if (has("text")) return "text";
  throw new Error(
    `${file}: no known columns among ${columns.join(", ") || "(none)"}; expected SQuAD columns ` +
      `(context, question, answers), messages, prompt and completion, or text`,
  );
}

function stringCell(row: Row, column: string, where: string): string {
  const value = row[column];
  if (typeof value === "string") return value;
  throw new Error(`${where}: column "${column}" must be a string, got ${describeType(value)}`);
}

// Parquet INT64 arrives as bigint, INT32 as number, and lists may be typed arrays.
function toNumber(value: unknown, where: string): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new Error(`${where} must be an integer, got ${describeType(value)}`);
}

function listCell(value: unknown, where: string): unknown[] {
  if (Array.isArray(value)) return value;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<unknown>);
  }
  throw new Error(`${where} must be a list, got ${describeType(value)}`);
}

/** Reads the answers cell: a struct of lists {text, answer_start} or a list of structs. */
function readAnswersCell(value: unknown, where: string, context: string): SquadAnswer[] {
  let answers: { text: unknown; start: unknown }[];
  if (Array.isArray(value)) {
    answers = value.map((entry) => ({ text: entry?.text, start: entry?.answer_start }));
  } else if (typeof value === "object" && value !== null) {
    const struct = value as Record<string, unknown>;
    const texts = listCell(struct.text, `${where}.text`);
    const starts = listCell(struct.answer_start, `${where}.answer_start`);
    if (texts.length !== starts.length) {
      throw new Error(
        `${where}: ${texts.length} answer texts but ${starts.length} answer_start values`,
      );
    }
    answers = texts.map((text, k) => ({ text, start: starts[k] }));
  } else {
    throw new Error(`${where} must be a struct {text, answer_start}, got ${describeType(value)}`);
  }

  return answers.map(({ text, start }, k) => {
    if (typeof text !== "string") {
      throw new Error(`${where}.text[${k}] must be a string, got ${describeType(text)}`);
    }
    const answerStart = toNumber(start, `${where}.answer_start[${k}]`);
    if (!Number.isInteger(answerStart) || answerStart < 0 || answerStart > context.length) {
      throw new Error(
        `${where}.answer_start[${k}] is ${answerStart}, outside the context of ` +
          `${context.length} characters`,
      );
    }
    return { text, answerStart };
  });
}

/**
 * Maps SQuAD-style rows to questions. Rows with the same title form one article (numbered in
 * order of first appearance), so a validation split keeps articles apart as with SQuAD JSON.
 */
export function squadQuestionsFromRows(rows: readonly Row[], file: string): SquadQuestion[] {
  const articleIndex = new Map<string, number>();
  const paragraphIndex = new Map<string, Map<string, number>>();
  return rows.map((row, i) => {
    const where = `${file}: row ${i}`;
    const context = stringCell(row, "context", where);
    const title =
      row.title === undefined || row.title === null ? "" : stringCell(row, "title", where);
    const id = row.id === undefined || row.id === null ? `row ${i}` : String(row.id);
    const answers = readAnswersCell(row.answers, `${where}: answers`, context);

    if (!articleIndex.has(title)) {
      articleIndex.set(title, articleIndex.size);
      paragraphIndex.set(title, new Map());
    }
    const paragraphs = paragraphIndex.get(title) as Map<string, number>;
    if (!paragraphs.has(context)) paragraphs.set(context, paragraphs.size);

    return {
      id,
      title,
      articleIndex: articleIndex.get(title) as number,
      paragraphIndex: paragraphs.get(context) as number,
      context,
      question: stringCell(row, "question", where),
      answers,
      isImpossible: answers.length === 0,
      origin: where,
    };
  });
}

function readMessagesCell(value: unknown, where: string): ChatMessage[] {
  const list = listCell(value, `${where}: messages`);
  if (list.length === 0) throw new Error(`${where}: messages is an empty list`);
  return list.map((message, k) => {
    const entry = (typeof message === "object" && message !== null ? message : {}) as Row;
    const role = entry.role;
    const content = entry.content;
    if (typeof role !== "string" || typeof content !== "string") {
      throw new Error(
        `${where}: messages[${k}] must have string "role" and "content", got ` +
          `${describeType(role)} and ${describeType(content)}`,
      );
    }
    return { role, content };
  });
}

/**
 * Maps text, prompt/completion or messages rows to samples; each row is its own group. Rows
 * whose text is empty or only whitespace are left out and counted.
 */
export function samplesFromRows(
  rows: readonly Row[],
  format: RowFormat,
  file: string,
): { samples: Sample[]; skippedBlank: number } {
  let skippedBlank = 0;
  const samples: Sample[] = [];
  rows.forEach((row, i) => {
    const where = `${file}: row ${i}`;
    const sample = rowSample(row, format, where, { group: where, origin: where });
    if (sample.kind === "text" && sample.text.trim() === "") skippedBlank++;
    else samples.push(sample);
  });
  if (samples.length === 0) {
    throw new Error(`${file}: the dataset is empty (${blankTexts(rows.length)})`);
  }
  return { samples, skippedBlank };
}

function rowSample(
  row: Row,
  format: RowFormat,
  where: string,
  base: { group: string; origin: string },
): Sample {
  switch (format) {
    case "text":
      return { kind: "text", text: stringCell(row, "text", where), ...base };
    case "prompt-completion":
      return {
        kind: "fields",
        fields: {
          prompt: stringCell(row, "prompt", where),
          completion: stringCell(row, "completion", where),
        },
        ...base,
      };
    case "messages":
      return { kind: "chat", messages: readMessagesCell(row.messages, where), ...base };
    case "squad":
      throw new Error("samplesFromRows: SQuAD rows go through squadQuestionsFromRows");
  }
}

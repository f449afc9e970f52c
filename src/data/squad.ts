// SQuAD JSON reader (v1.1 and v2.0): {"data": [{"title", "paragraphs": [{"context", "qas":
// [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}.
// The "version" key is optional because several well-known copies omit it.
import { readUtf8File } from "../io/text-file.js";
import { describeType, type FieldsSample } from "./types.js";

/** One gold answer: its text and character offset in the context. */
export interface SquadAnswer {
  text: string;
  answerStart: number;
  /** The answer_start of the file, when it did not point at the text and was moved. */
  givenStart?: number;
}

/** One SQuAD question with its paragraph and article. */
export interface SquadQuestion {
  /** The question's id, made unique within the file. */
  id: string;
  /** The id in the file, when another question has it too and `id` has a suffix. */
  fileId?: string;
  title: string;
  /** Position of the article in the file (or of the title's first row in a Hub split). */
  articleIndex: number;
  paragraphIndex: number;
  context: string;
  question: string;
  /** Gold answers; empty for a SQuAD 2.0 impossible question. */
  answers: SquadAnswer[];
  isImpossible: boolean;
  /** File and JSON path of the question, for error messages. */
  origin: string;
}

function fail(file: string, path: string, expected: string, value: unknown): never {
  throw new Error(
    `readSquad: ${file}: ${path} must be ${expected}, got ${describeType(value)}; ` +
      `check that the file is SQuAD JSON (v1.1 or v2.0)`,
  );
}

function field(
  file: string,
  path: string,
  record: Record<string, unknown>,
  key: string,
  kind: "string" | "number" | "array" | "object",
): unknown {
  const value = record[key];
  const ok =
    kind === "array"
      ? Array.isArray(value)
      : kind === "object"
        ? typeof value === "object" && value !== null && !Array.isArray(value)
        : typeof value === kind;
  if (!ok) {
    let expected = `a ${kind}`;
    if (kind === "array") expected = "an array";
    if (kind === "object") expected = "an object";
    if (value === undefined) {
      throw new Error(`readSquad: ${file}: ${path}.${key} is missing (expected ${expected})`);
    }
    fail(file, `${path}.${key}`, expected, value);
  }
  return value;
}

function asObject(file: string, path: string, value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(file, path, "an object", value);
  }
  return value as Record<string, unknown>;
}

function readAnswers(
  file: string,
  path: string,
  qa: Record<string, unknown>,
  context: string,
): SquadAnswer[] {
  const answers = field(file, path, qa, "answers", "array") as unknown[];
  return answers.map((raw, k) => {
    const answerPath = `${path}.answers[${k}]`;
    const answer = asObject(file, answerPath, raw);
    const text = field(file, answerPath, answer, "text", "string") as string;
    const answerStart = field(file, answerPath, answer, "answer_start", "number") as number;
    if (!Number.isInteger(answerStart) || answerStart < 0 || answerStart > context.length) {
      throw new Error(
        `readSquad: ${file}: ${answerPath}.answer_start is ${answerStart}, outside the context ` +
          `of ${context.length} characters`,
      );
    }
    if (context.startsWith(text, answerStart)) return { text, answerStart };
    // A wrong offset would make the context window that fits --max-length miss the answer.
    const found = nearestOccurrence(context, text, answerStart);
    if (found < 0) {
      const pointedAt = JSON.stringify(context.slice(answerStart, answerStart + text.length));
      throw new Error(
        `readSquad: ${file}: ${answerPath}: the answer text ${JSON.stringify(text)} does not ` +
          `occur in the context (answer_start ${answerStart} points at ${pointedAt}); fix the ` +
          `answer or remove it`,
      );
    }
    return { text, answerStart: found, givenStart: answerStart };
  });
}

/** Returns the start of the occurrence of `text` in `context` nearest to `near`, or -1. */
function nearestOccurrence(context: string, text: string, near: number): number {
  let best = -1;
  for (let at = context.indexOf(text); at >= 0; at = context.indexOf(text, at + 1)) {
    if (best < 0 || Math.abs(at - near) < Math.abs(best - near)) best = at;
  }
  return best;
}

/** Parses SQuAD JSON text; `file` names the source in error messages. */
export function parseSquad(text: string, file: string): SquadQuestion[] {
  let json: unknown;
  try {
    // A UTF-8 byte order mark, which some editors write, is not valid JSON.
    json = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    throw new Error(`readSquad: ${file}: invalid JSON (${(error as Error).message})`);
  }
  const root = asObject(file, "the top level", json);
  const articles = field(file, "$", root, "data", "array") as unknown[];

  const questions: SquadQuestion[] = [];
  // Exact match and F1 look the gold answers up by question id.
  const seenIds = new Set<string>();
  articles.forEach((rawArticle, a) => {
    const articlePath = `data[${a}]`;
    const article = asObject(file, articlePath, rawArticle);
    const title = field(file, articlePath, article, "title", "string") as string;
    const paragraphs = field(file, articlePath, article, "paragraphs", "array") as unknown[];

    paragraphs.forEach((rawParagraph, p) => {
      const paragraphPath = `${articlePath}.paragraphs[${p}]`;
      const paragraph = asObject(file, paragraphPath, rawParagraph);
      const context = field(file, paragraphPath, paragraph, "context", "string") as string;
      const qas = field(file, paragraphPath, paragraph, "qas", "array") as unknown[];

      qas.forEach((rawQa, q) => {
        const path = `${paragraphPath}.qas[${q}]`;
        const qa = asObject(file, path, rawQa);
        const impossible = qa.is_impossible;
        if (impossible !== undefined && typeof impossible !== "boolean") {
          fail(file, `${path}.is_impossible`, "a boolean", impossible);
        }
        const answers = readAnswers(file, path, qa, context);
        // A repeated id (AllenNLP's SQuAD 2.0 sample gives an unanswerable question the id of
        // an answerable one) gets a suffix, so each question keeps its own gold answers.
        const fileId = field(file, path, qa, "id", "string") as string;
        let id = fileId;
        for (let n = 2; seenIds.has(id); n++) id = `${fileId}#${n}`;
        seenIds.add(id);
        questions.push({
          id,
          ...(id === fileId ? {} : { fileId }),
          title,
          articleIndex: a,
          paragraphIndex: p,
          context,
          question: field(file, path, qa, "question", "string") as string,
          answers,
          isImpossible: impossible === true || answers.length === 0,
          origin: `${file}: ${path}`,
        });
      });
    });
  });

  if (questions.length === 0) {
    throw new Error(
      `readSquad: ${file}: the dataset is empty (no questions under data[].paragraphs[].qas)`,
    );
  }
  return questions;
}

/** Reads a SQuAD JSON file (v1.1 or v2.0) into its questions, in file order. */
export function readSquad(path: string): SquadQuestion[] {
  return parseSquad(readUtf8File(path, "readSquad"), path);
}

export interface SquadSampleOptions {
  /**
   * The answer to train on for impossible questions. When unset (the default) impossible
   * questions are skipped.
   */
  noAnswerText?: string;
}

/**
 * Turns SQuAD questions into template samples with the fields id, title, context, question and
 * answer. The first gold answer is the training target. Every question of an article gets the
 * same group, so a validation split keeps whole articles apart.
 */
export function squadSamples(
  questions: readonly SquadQuestion[],
  options: SquadSampleOptions = {},
): { samples: FieldsSample[]; skippedImpossible: number } {
  const samples: FieldsSample[] = [];
  let skippedImpossible = 0;
  for (const q of questions) {
    const group = `article ${q.articleIndex}: ${q.title}`;
    const fields = { id: q.id, title: q.title, context: q.context, question: q.question };
    if (q.isImpossible) {
      if (options.noAnswerText === undefined) {
        skippedImpossible++;
        continue;
      }
      samples.push({
        kind: "fields",
        fields: { ...fields, answer: options.noAnswerText },
        group,
        origin: q.origin,
      });
      continue;
    }
    const first = q.answers[0];
    samples.push({
      kind: "fields",
      fields: { ...fields, answer: first.text },
      answerStart: first.answerStart,
      group,
      origin: q.origin,
    });
  }
  return { samples, skippedImpossible };
}

// SQuAD exact match and F1, computed as the official evaluation scripts evaluate-v1.1.py and
// evaluate-v2.0.py do (rajpurkar.github.io/SQuAD-explorer). Answers are normalised by lowercasing,
// removing ASCII punctuation, removing the articles a/an/the and collapsing whitespace. F1 is over
// bags of whitespace tokens, and a question scores the max over its gold answers. A question
// without gold answers (SQuAD 2.0 "impossible") is scored against the empty answer, so only an
// empty prediction gets credit.

// Python's string.punctuation: the 32 ASCII punctuation characters, nothing else.
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

// Python's \b in a str pattern treats every character of categories L and N (and "_") as a word
// character. JavaScript's \b is ASCII-only, so the boundary is spelled out with lookarounds.
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

// The characters Python's str.split() splits on (str.isspace()), which differ from JavaScript's
// \s: Python includes \x1c-\x1f and \x85, and excludes \ufeff.
const PYTHON_WHITESPACE =
  // eslint-disable-next-line no-control-regex -- \x1c-\x1f are whitespace to Python.
  /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

/** Normalises an answer the way the official SQuAD scripts do before comparing. */
export function normalizeAnswer(text: string): string {
  const lower = text.toLowerCase();
  let withoutPunctuation = "";
  for (const ch of lower) {
    if (!PUNCTUATION.has(ch)) withoutPunctuation += ch;
  }
  const withoutArticles = withoutPunctuation.replace(ARTICLES, " ");
  return splitWhitespace(withoutArticles).join(" ");
}

function splitWhitespace(text: string): string[] {
  return text.split(PYTHON_WHITESPACE).filter((token) => token.length > 0);
}

/** Returns 1 when the normalised prediction equals the normalised gold answer, else 0. */
export function exactMatchOne(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

/**
 * Computes the token-level F1 between a prediction and one gold answer. When either side
 * normalises to no tokens, the score is 1 if both are empty and 0 otherwise (the SQuAD 2.0 rule,
 * which agrees with v1.1 whenever the gold answer is not empty).
 */
export function f1One(prediction: string, gold: string): number {
  const predicted = splitWhitespace(normalizeAnswer(prediction));
  const expected = splitWhitespace(normalizeAnswer(gold));
  if (predicted.length === 0 || expected.length === 0) {
    return predicted.length === expected.length ? 1 : 0;
  }

  const goldCounts = new Map<string, number>();
  for (const token of expected) goldCounts.set(token, (goldCounts.get(token) ?? 0) + 1);
  let common = 0;
  for (const token of predicted) {
    const left = goldCounts.get(token) ?? 0;
    if (left > 0) {
      common++;
      goldCounts.set(token, left - 1);
    }
  }
  if (common === 0) return 0;

  const precision = common / predicted.length;
  const recall = common / expected.length;
  return (2 * precision * recall) / (precision + recall);
}

// Gold answers that normalise to "" are dropped, and a question left without any is scored
// against "" (evaluate-v2.0.py does the same).
function usableGolds(golds: readonly string[]): string[] {
  const kept = golds.filter((gold) => normalizeAnswer(gold) !== "");
  return kept.length > 0 ? kept : [""];
}

/** Computes the exact match (0 or 1) of a prediction: the max over the gold answers. */
export function exactMatch(prediction: string, golds: readonly string[]): number {
  return Math.max(...usableGolds(golds).map((gold) => exactMatchOne(prediction, gold)));
}

/** Computes the F1 (0 to 1) of a prediction: the max over the gold answers. */
export function f1Score(prediction: string, golds: readonly string[]): number {
  return Math.max(...usableGolds(golds).map((gold) => f1One(prediction, gold)));
}

/** One scored question: its prediction and gold answers (empty for an unanswerable one). */
export interface SquadPrediction {
  id?: string;
  prediction: string;
  answers: readonly string[];
}

/** Mean scores in percent (0 to 100) over a set of questions, as the official scripts print. */
export interface SquadScore {
  exactMatch: number;
  f1: number;
  total: number;
}

/** Scores of a whole evaluation, also split by answerable and unanswerable questions. */
export interface SquadReport extends SquadScore {
  hasAnswer: SquadScore;
  noAnswer: SquadScore;
}

function meanScore(items: readonly SquadPrediction[]): SquadScore {
  if (items.length === 0) return { exactMatch: 0, f1: 0, total: 0 };
  let em = 0;
  let f1 = 0;
  for (const item of items) {
    em += exactMatch(item.prediction, item.answers);
    f1 += f1Score(item.prediction, item.answers);
  }
  return {
    exactMatch: (100 * em) / items.length,
    f1: (100 * f1) / items.length,
    total: items.length,
  };
}

/**
 * Scores a list of predictions: mean exact match and F1 in percent, overall and split into
 * questions with gold answers and questions without (SQuAD 2.0). Throws on an empty list because
 * a mean over nothing would read as a score of 0.
 */
export function scoreSquad(items: readonly SquadPrediction[]): SquadReport {
  if (items.length === 0) {
    throw new Error("scoreSquad: no predictions to score; pass at least one question");
  }
  // Like evaluate-v2.0.py, a question counts as answerable when its answer list is not empty.
  const answerable = items.filter((item) => item.answers.length > 0);
  const unanswerable = items.filter((item) => item.answers.length === 0);
  return {
    ...meanScore(items),
    hasAnswer: meanScore(answerable),
    noAnswer: meanScore(unanswerable),
  };
}

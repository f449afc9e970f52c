import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  exactMatch,
  f1One,
  f1Score,
  normalizeAnswer,
  scoreSquad,
} from "../../src/eval/squad-metric.js";
import { fixture } from "../helpers/fixtures.js";

function close(actual: number, expected: number, message: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${message}: expected ${expected}, got ${actual}`);
}

test("normalizeAnswer lowercases and drops punctuation", () => {
  assert.equal(normalizeAnswer("The Cat!"), "cat");
  assert.equal(normalizeAnswer("Anne's"), "annes");
  assert.equal(normalizeAnswer("1,000.5"), "10005");
  assert.equal(normalizeAnswer("(Denver) Broncos"), "denver broncos");
});

test("normalizeAnswer removes whole-word articles only", () => {
  assert.equal(normalizeAnswer("an apple a day"), "apple day");
  assert.equal(normalizeAnswer("theater and anthem"), "theater and anthem");
  assert.equal(normalizeAnswer("THE END"), "end");
  // Punctuation goes before articles, so "the-end" becomes one word "theend".
  assert.equal(normalizeAnswer("the-end"), "theend");
  // "a.b" becomes "ab", which is not an article.
  assert.equal(normalizeAnswer("a.b"), "ab");
});

test("normalizeAnswer treats non-ASCII letters as word characters", () => {
  // Python's \b sees "é" as a word character, so "éthe" keeps its "the".
  assert.equal(normalizeAnswer("éthe"), "éthe");
  assert.equal(normalizeAnswer("é the x"), "é x");
  assert.equal(normalizeAnswer("the日本"), "the日本");
});

test("normalizeAnswer keeps non-ASCII punctuation", () => {
  // string.punctuation is ASCII only: curly quotes and the en dash stay.
  assert.equal(normalizeAnswer("“Quoted” – text"), "“quoted” – text");
});

test("normalizeAnswer collapses Python whitespace", () => {
  assert.equal(normalizeAnswer("  a\tquick \n\n brown\u00a0fox  "), "quick brown fox");
  assert.equal(normalizeAnswer("x\u2003y"), "x y");
  // Python's str.split() does not split on U+FEFF but does split on U+001F.
  assert.equal(normalizeAnswer("x\ufeffy"), "x\ufeffy");
  assert.equal(normalizeAnswer("x\u001fy"), "x y");
});

test("f1One counts tokens as a bag", () => {
  // pred [cat sat on mat], gold [cat on mat]: 3 common, P = 3/4, R = 1, F1 = 6/7.
  close(f1One("the cat sat on the mat", "cat on mat"), 6 / 7, "partial overlap");
  // pred [x x y], gold [x y y]: common = min counts = 2, P = R = 2/3.
  close(f1One("x x y", "x y y"), 2 / 3, "repeated tokens");
  close(f1One("Denver Broncos", "denver broncos."), 1, "same after normalisation");
  close(f1One("Carolina Panthers", "Denver Broncos"), 0, "no overlap");
});

test("f1One handles empty answers", () => {
  close(f1One("", ""), 1, "both empty");
  close(f1One("the", ""), 1, "prediction normalises to empty");
  close(f1One("", "Broncos"), 0, "empty prediction");
  close(f1One("Broncos", ""), 0, "empty gold");
});

test("scores take the max over gold answers", () => {
  const golds = ["Denver Broncos", "The Denver Broncos", "Broncos"];
  assert.equal(exactMatch("the broncos", golds), 1);
  assert.equal(exactMatch("Denver", golds), 0);
  // "Denver" vs "Denver Broncos": P = 1, R = 1/2, F1 = 2/3; it shares nothing with "Broncos".
  close(f1Score("Denver", golds), 2 / 3, "best gold");
  close(f1Score("Denver Broncos team", ["Broncos", "Denver Broncos"]), 0.8, "P 2/3, R 1");
});

test("unanswerable questions need an empty prediction", () => {
  assert.equal(exactMatch("", []), 1);
  close(f1Score("", []), 1, "empty prediction, no gold");
  assert.equal(exactMatch("an", []), 1);
  assert.equal(exactMatch("Normandy", []), 0);
  close(f1Score("Normandy", []), 0, "answer to unanswerable question");
  // A gold answer that normalises to "" is dropped like in evaluate-v2.0.py.
  assert.equal(exactMatch("", ["The"]), 1);
  assert.equal(exactMatch("cat", ["the", "cat"]), 1);
});

test("scoreSquad averages in percent", () => {
  const report = scoreSquad([
    { prediction: "Denver Broncos", answers: ["Denver Broncos"] },
    { prediction: "Denver", answers: ["Denver Broncos"] },
    { prediction: "", answers: [] },
    { prediction: "France", answers: [] },
  ]);
  assert.equal(report.total, 4);
  close(report.exactMatch, 50, "overall EM");
  // F1 per question: 1, 2/3, 1, 0.
  close(report.f1, (100 * (1 + 2 / 3 + 1)) / 4, "overall F1");
  assert.equal(report.hasAnswer.total, 2);
  close(report.hasAnswer.exactMatch, 50, "answerable EM");
  close(report.hasAnswer.f1, (100 * (1 + 2 / 3)) / 2, "answerable F1");
  assert.equal(report.noAnswer.total, 2);
  close(report.noAnswer.exactMatch, 50, "unanswerable EM");
  assert.throws(() => scoreSquad([]), /no predictions/);
});

test("gold answers score 100 on the SQuAD 2.0 fixture", () => {
  type Qa = { answers: { text: string }[]; is_impossible?: boolean };
  const json = JSON.parse(
    readFileSync(fixture("data/squad/squad2-dev-first5articles.json"), "utf8"),
  );
  const items = [];
  for (const article of json.data) {
    for (const paragraph of article.paragraphs) {
      for (const qa of paragraph.qas as Qa[]) {
        const golds = qa.answers.map((a) => a.text);
        items.push({ prediction: qa.is_impossible ? "" : golds[golds.length - 1], answers: golds });
      }
    }
  }
  const report = scoreSquad(items);
  assert.equal(report.total, 1407);
  assert.equal(report.hasAnswer.total, 705);
  assert.equal(report.noAnswer.total, 702);
  close(report.exactMatch, 100, "EM");
  close(report.f1, 100, "F1");
});

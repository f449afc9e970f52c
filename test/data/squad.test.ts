import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readSquad, squadSamples } from "../../src/data/squad.js";
import { fixture } from "../helpers/fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "tslora-squad-"));

function writeJson(name: string, value: unknown): string {
  const path = join(tmp, name);
  writeFileSync(path, typeof value === "string" ? value : JSON.stringify(value));
  return path;
}

test("readSquad reads the SQuAD 2.0 fixture", () => {
  const questions = readSquad(fixture("data/squad/squad2-dev-first5articles.json"));
  assert.equal(questions.length, 1407);
  assert.equal(questions.filter((q) => q.isImpossible).length, 702);
  const titles = [...new Set(questions.map((q) => q.title))];
  assert.deepEqual(titles, [
    "Normans",
    "Computational_complexity_theory",
    "Southern_California",
    "Sky_(United_Kingdom)",
    "Victoria_(Australia)",
  ]);
  assert.equal(questions[0].id, "56ddde6b9a695914005b9628");
  assert.equal(questions[0].articleIndex, 0);
  assert.equal(questions[questions.length - 1].articleIndex, 4);
  assert.equal(new Set(questions.map((q) => `${q.articleIndex}/${q.paragraphIndex}`)).size, 173);
});

test("readSquad answer offsets match contexts", () => {
  const questions = readSquad(fixture("data/squad/squad1.1-style-dev-first5articles.json"));
  assert.equal(questions.length, 705);
  assert.equal(questions.filter((q) => q.isImpossible).length, 0);
  for (const q of questions) {
    for (const a of q.answers) {
      assert.equal(q.context.slice(a.answerStart, a.answerStart + a.text.length), a.text, q.origin);
    }
  }
});

test("readSquad accepts files without a version", () => {
  const v1 = readSquad(fixture("data/squad/allennlp-squad.json"));
  assert.equal(v1.length, 5);
  assert.ok(v1.every((q) => q.title === "University_of_Notre_Dame"));
  const v2 = readSquad(fixture("data/squad/allennlp-squad2.json"));
  assert.equal(v2.length, 6);
  const impossible = v2.filter((q) => q.isImpossible);
  assert.equal(impossible.length, 1);
  assert.equal(impossible[0].question, "This is an unanswerable question?");
  assert.deepEqual(impossible[0].answers, []);
});

test("squadSamples skips impossible questions by default", () => {
  const questions = readSquad(fixture("data/squad/squad2-dev-first5articles.json"));
  const { samples, skippedImpossible } = squadSamples(questions);
  assert.equal(samples.length, 705);
  assert.equal(skippedImpossible, 702);
  assert.equal(new Set(samples.map((s) => s.group)).size, 5);
  const first = samples[0];
  assert.equal(first.fields.question, questions[0].question);
  assert.equal(first.fields.answer, questions[0].answers[0].text);
  assert.equal(first.answerStart, questions[0].answers[0].answerStart);
  assert.equal(first.group, "article 0: Normans");
});

test("squadSamples trains a no-answer string", () => {
  const questions = readSquad(fixture("data/squad/allennlp-squad2.json"));
  const { samples, skippedImpossible } = squadSamples(questions, { noAnswerText: "unanswerable" });
  assert.equal(samples.length, 6);
  assert.equal(skippedImpossible, 0);
  const noAnswer = samples.filter((s) => s.fields.answer === "unanswerable");
  assert.equal(noAnswer.length, 1);
  assert.equal(noAnswer[0].answerStart, undefined);
});

test("readSquad errors name the JSON path", () => {
  const good = {
    data: [
      {
        title: "T",
        paragraphs: [
          {
            context: "abc",
            qas: [{ id: "1", question: "q?", answers: [{ text: "a", answer_start: 0 }] }],
          },
        ],
      },
    ],
  };
  const cases: [string, unknown, RegExp][] = [
    ["invalid.json", '{"data": [', /invalid\.json: invalid JSON/],
    ["nodata.json", { version: "1.1" }, /nodata\.json: \$\.data is missing \(expected an array\)/],
    ["empty.json", { data: [] }, /empty\.json: the dataset is empty/],
    [
      "title.json",
      { data: [{ title: 3, paragraphs: [] }] },
      /data\[0\]\.title must be a string, got number/,
    ],
  ];
  const wrongQuestion = structuredClone(good);
  (wrongQuestion.data[0].paragraphs[0].qas[0] as Record<string, unknown>).question = 5;
  cases.push([
    "question.json",
    wrongQuestion,
    /data\[0\]\.paragraphs\[0\]\.qas\[0\]\.question must be a string, got number/,
  ]);
  const missingContext = structuredClone(good);
  delete (missingContext.data[0].paragraphs[0] as Record<string, unknown>).context;
  cases.push(["context.json", missingContext, /data\[0\]\.paragraphs\[0\]\.context is missing/]);
  const badStart = structuredClone(good);
  badStart.data[0].paragraphs[0].qas[0].answers[0].answer_start = 99;
  cases.push([
    "start.json",
    badStart,
    /qas\[0\]\.answers\[0\]\.answer_start is 99, outside the context of 3/,
  ]);
  const badAnswers = structuredClone(good);
  (badAnswers.data[0].paragraphs[0].qas[0] as Record<string, unknown>).answers = "a";
  cases.push(["answers.json", badAnswers, /qas\[0\]\.answers must be an array, got string/]);

  for (const [name, value, pattern] of cases) {
    const path = writeJson(name, value);
    assert.throws(() => readSquad(path), pattern, name);
  }
  assert.equal(readSquad(writeJson("good.json", good)).length, 1);
  assert.equal(readSquad(writeJson("bom.json", "\uFEFF" + JSON.stringify(good))).length, 1);
});

/** Returns a one-article SQuAD file whose questions have the given ids and answers. */
function squadWith(context: string, qas: { id: string; text: string; start: number }[]) {
  return {
    data: [
      {
        title: "T",
        paragraphs: [
          {
            context,
            qas: qas.map((q) => ({
              id: q.id,
              question: "q?",
              answers: [{ text: q.text, answer_start: q.start }],
            })),
          },
        ],
      },
    ],
  };
}

test("readSquad makes repeated question ids unique", () => {
  const path = writeJson(
    "dup-id.json",
    squadWith("Paris in 1889", [
      { id: "g1", text: "Paris", start: 0 },
      { id: "g1", text: "1889", start: 9 },
      { id: "g1#2", text: "in", start: 6 },
    ]),
  );
  const questions = readSquad(path);
  assert.deepEqual(
    questions.map((q) => [q.id, q.fileId, q.answers[0].text]),
    [
      ["g1", undefined, "Paris"],
      ["g1#2", "g1", "1889"],
      ["g1#2#2", "g1#2", "in"],
    ],
  );
});

test("readSquad moves a wrong answer_start to the answer", () => {
  const context = "The Eiffel Tower is in Paris, and Paris is in France.";
  const path = writeJson(
    "bad-start.json",
    squadWith(context, [{ id: "a", text: "Paris", start: 30 }]),
  );
  const [answer] = readSquad(path)[0].answers;
  // The nearest of the two occurrences (23 and 34) to the given 30.
  assert.equal(answer.answerStart, 34);
  assert.equal(answer.givenStart, 30);
  assert.equal(context.slice(34, 39), "Paris");

  const missing = writeJson(
    "no-answer-text.json",
    squadWith(context, [{ id: "a", text: "London", start: 4 }]),
  );
  assert.throws(
    () => readSquad(missing),
    /qas\[0\]\.answers\[0\]: the answer text "London" does not occur in the context \(answer_start 4 points at "Eiffel"\)/,
  );
});

test("readSquad rejects text that is not UTF-8", () => {
  const path = join(tmp, "latin1.json");
  const text = JSON.stringify(squadWith("Caf\u00e9", [{ id: "a", text: "Caf", start: 0 }]));
  writeFileSync(path, Buffer.from(text, "latin1"));
  assert.throws(() => readSquad(path), /latin1\.json:1: the file is not valid UTF-8/);
});

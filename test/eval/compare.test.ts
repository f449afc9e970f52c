import assert from "node:assert/strict";
import { test } from "node:test";
import { readSquad, squadSamples } from "../../src/data/squad.js";
import { compareWithBase, formatComparison } from "../../src/eval/compare.js";
import { answerQuestions, squadPrompts } from "../../src/eval/squad.js";
import { loadAdapter } from "../../src/lora/adapter-io.js";
import { loadModel } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";

test("compareWithBase answers with and without the adapter", async () => {
  const modelDir = fixture("models/TinyStories-656K");
  const base = await loadModel(modelDir, { dtype: "f32" });
  const adapted = await loadModel(modelDir, { dtype: "f32" });
  loadAdapter(adapted.model, fixture("reference/tinystories/adapter-final"));

  const questions = readSquad(fixture("data/squad/allennlp-squad.json"));
  const { samples } = squadSamples(questions);
  const answersById = new Map(questions.map((q) => [q.id, q.answers.map((a) => a.text)]));
  const prompts = squadPrompts(samples.slice(0, 2), answersById, base.tokenizer, {
    maxLength: 512,
    maxNewTokens: 5,
  });
  const options = { maxNewTokens: 5 };
  const expectedBase = answerQuestions(base.model, base.tokenizer, prompts, options);
  const expectedAdapted = answerQuestions(adapted.model, adapted.tokenizer, prompts, options);

  const comparison = compareWithBase(adapted.model, adapted.tokenizer, prompts, {
    ...options,
    shown: 1,
  });
  assert.deepEqual(
    comparison.base.predictions.map((p) => p.prediction),
    expectedBase,
  );
  assert.deepEqual(
    comparison.adapted.predictions.map((p) => p.prediction),
    expectedAdapted,
  );
  assert.notDeepEqual(expectedAdapted, expectedBase, "the trained adapter changes the answers");

  const text = formatComparison(comparison);
  assert.match(text, /base model\s+\d+\.\d\d\s+\d+\.\d\d/);
  assert.match(text, /with adapter\s+\d+\.\d\d\s+\d+\.\d\d/);
  assert.match(text, /^Q1: /m);
  assert.doesNotMatch(text, /^Q2: /m, "only `shown` questions are printed");
});

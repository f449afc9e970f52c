import assert from "node:assert/strict";
import { test } from "node:test";
import { endStep, noGrad, Tensor } from "../../src/engine/index.js";
import { readSquad, squadSamples } from "../../src/data/squad.js";
import { parseTemplate, SQUAD_TEMPLATE } from "../../src/data/template.js";
import {
  answerQuestions,
  evaluateSquad,
  extractAnswer,
  squadPrompts,
} from "../../src/eval/squad.js";
import { loadModel } from "../../src/models/index.js";
import type { CausalLM } from "../../src/models/types.js";
import { fixture } from "../helpers/fixtures.js";

/** Greedy decoding by full recomputation, one sequence at a time: the slow, obvious reference. */
function greedyReference(
  model: CausalLM,
  prompt: readonly number[],
  maxNewTokens: number,
  stopIds: readonly number[],
): number[] {
  const ids = [...prompt];
  const generated: number[] = [];
  for (let step = 0; step < maxNewTokens; step++) {
    const next = noGrad(() => {
      const hidden = model.forward(Tensor.from(Int32Array.from(ids), [1, ids.length], "i32"));
      const logits = model.logits(hidden).toFloat32Array();
      const row = logits.subarray(logits.length - model.dims.vocabSize);
      let best = 0;
      for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
      return best;
    });
    endStep();
    ids.push(next);
    generated.push(next);
    if (stopIds.includes(next)) break;
  }
  return generated;
}

test("extractAnswer cuts at the newline", () => {
  assert.equal(extractAnswer(" Paris\nQuestion: x"), "Paris");
  assert.equal(extractAnswer("  the cat "), "the cat");
  assert.equal(extractAnswer("\nrest"), "");
  assert.equal(extractAnswer(": Saint Bernadette\n", ":"), "Saint Bernadette");
  assert.equal(extractAnswer(" 1858", ":"), "1858");
});

test("SQuAD answers match greedy reference", async () => {
  const { model, tokenizer } = await loadModel(fixture("models/TinyStories-656K"), {
    dtype: "f32",
  });
  const questions = readSquad(fixture("data/squad/allennlp-squad.json"));
  const { samples } = squadSamples(questions);
  const answersById = new Map(questions.map((q) => [q.id, q.answers.map((a) => a.text)]));
  const template = parseTemplate(SQUAD_TEMPLATE);
  const maxNewTokens = 6;
  const prompts = squadPrompts(samples.slice(0, 3), answersById, tokenizer, {
    maxLength: 512,
    maxNewTokens,
    template,
  });
  assert.equal(prompts.length, 3);

  // The prompt is the template text up to "Answer:", tokenized as the whole example is: the
  // common prefix of the prompt's and the whole text's ids. This tokenizer has a ": " token, so
  // the ":" goes to the answer side and is removed from generated answers.
  const first = samples[0].fields;
  const promptText = `Context: ${first.context}\nQuestion: ${first.question}\nAnswer:`;
  const promptOnly = tokenizer.encode(promptText);
  const whole = tokenizer.encode(`${promptText} ${first.answer}`);
  let common = 0;
  while (promptOnly[common] === whole[common]) common++;
  assert.deepEqual(prompts[0].promptIds, whole.slice(0, common));
  assert.equal(prompts[0].uncoveredPrompt, ":");
  assert.deepEqual(prompts[0].answers, answersById.get(first.id));

  // Batched, left-padded generation must give each prompt's own greedy answer.
  const answers = answerQuestions(model, tokenizer, prompts, { maxNewTokens, batchSize: 2 });
  const newlineIds = [...Array(tokenizer.vocabSize).keys()].filter((id) =>
    tokenizer.decode([id]).includes("\n"),
  );
  for (let i = 0; i < prompts.length; i++) {
    const ids = greedyReference(model, prompts[i].promptIds, maxNewTokens, [
      ...tokenizer.eosTokenIds,
      ...newlineIds,
    ]);
    const text = tokenizer.decode(ids, { skipSpecialTokens: true });
    const expected = extractAnswer(text, prompts[i].uncoveredPrompt);
    assert.equal(answers[i], expected, `question ${i}`);
  }

  const { report, predictions } = evaluateSquad(model, tokenizer, prompts, {
    maxNewTokens,
    batchSize: 3,
  });
  assert.equal(report.total, 3);
  assert.deepEqual(
    predictions.map((p) => p.prediction),
    answers,
  );
});

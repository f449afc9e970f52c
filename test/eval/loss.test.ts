import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import type { TokenizedExample } from "../../src/data/tokenize.js";
import { evaluateLoss } from "../../src/eval/loss.js";
import { loadModel } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";

interface LogitsFixture {
  sample_loss: { mean: number; predicted_tokens: number };
  story_token_ids: number[][];
}

function storyExamples(reference: LogitsFixture): TokenizedExample[] {
  return reference.story_token_ids.map((ids, i) => ({
    inputIds: Int32Array.from(ids),
    labels: Int32Array.from(ids),
    promptLength: 0,
    group: `story ${i}`,
    origin: `story ${i}`,
    truncated: false,
  }));
}

const reference = JSON.parse(
  readFileSync(fixture("reference/tinystories/logits.json"), "utf8"),
) as LogitsFixture;

test("evaluateLoss matches the reference loss with padding", async () => {
  const { model } = await loadModel(fixture("models/TinyStories-656K"), { dtype: "f32" });
  // Batches of 2 pad the shorter story of each pair, so padding must not count.
  for (const batchSize of [1, 2, 5]) {
    const report = evaluateLoss(model, storyExamples(reference), { batchSize, padTokenId: 0 });
    assert.equal(report.tokens, reference.sample_loss.predicted_tokens, `batch ${batchSize}`);
    assert.ok(
      Math.abs(report.loss - reference.sample_loss.mean) < 1e-5,
      `batch ${batchSize}: loss ${report.loss}, expected ${reference.sample_loss.mean}`,
    );
    assert.ok(Math.abs(report.perplexity - Math.exp(reference.sample_loss.mean)) < 1e-3);
  }
});

test("evaluateLoss rejects fully masked data", async () => {
  const { model } = await loadModel(fixture("models/TinyStories-656K"), { dtype: "f32" });
  const masked = storyExamples(reference).map((e) => ({ ...e, labels: e.labels.map(() => -100) }));
  assert.throws(
    () => evaluateLoss(model, masked, { batchSize: 2, padTokenId: 0 }),
    /none of the 5 examples has an unmasked target token/,
  );
});

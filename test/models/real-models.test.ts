// Real trained checkpoints: stories260K against its greedy and loss goldens, and
// TinyStories-656K (bf16, tied weights stored both ways) against transformers' logits.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { endStep, noGrad, Tensor } from "../../src/engine/index.js";
import { generate } from "../../src/generate/index.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import type { CausalLM } from "../../src/models/types.js";
import { loadModelFromDir } from "../../src/models/weights.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(fixture(path), "utf8")) as T;
}

function row(ids: readonly number[]): Tensor {
  return Tensor.from(Int32Array.from(ids), [1, ids.length], "i32");
}

/** Returns the loss of one sequence (labels = inputs) and its number of predicted tokens. */
function sequenceLoss(model: CausalLM, ids: readonly number[]): number {
  const loss = noGrad(() => model.loss(row(ids), row(ids)).item());
  endStep();
  return loss;
}

/** Returns the mean loss over every predicted token of all sequences. */
function sampleLoss(model: CausalLM, sequences: readonly (readonly number[])[]): number {
  let total = 0;
  let count = 0;
  for (const ids of sequences) {
    total += sequenceLoss(model, ids) * (ids.length - 1);
    count += ids.length - 1;
  }
  return total / count;
}

function allLogits(model: CausalLM, ids: readonly number[]): Float32Array {
  const logits = noGrad(() => model.logits(model.forward(row(ids))).toFloat32Array());
  endStep();
  return logits;
}

test("stories260K greedy 256 tokens match golden", async () => {
  const dir = fixture("models/stories260K");
  const model = loadModelFromDir(dir);
  const tokenizer = await loadTokenizer(dir);
  const golden = readJson<{ generated_ids: number[] }>(
    "models/stories260K/golden/golden_greedy_256_ids.json",
  );
  const goldenText = readFileSync(
    fixture("models/stories260K/golden/golden_greedy_256.txt"),
    "utf8",
  );
  const result = generate(model, [[1]], { maxNewTokens: 256, eosTokenId: 1, tokenizer });
  assert.deepEqual(result.tokens[0], golden.generated_ids);
  assert.equal(result.texts[0].trim(), goldenText.trim());
});

test("stories260K loss on TinyStories sample", () => {
  const model = loadModelFromDir(fixture("models/stories260K"));
  const golden = readJson<{ mean_cross_entropy_nats_per_token: number; token_ids: number[][] }>(
    "models/stories260K/golden/golden_loss_tinystories_sample.json",
  );
  const loss = sampleLoss(model, golden.token_ids);
  assert.ok(Math.abs(loss - 1.266441) <= 1e-4, `loss ${loss}, expected 1.2664410`);
  assert.ok(Math.abs(loss - golden.mean_cross_entropy_nats_per_token) <= 1e-4);
});

interface TinyStoriesLogits {
  input_ids: number[];
  top5: { ids: number[][]; logits: number[][] };
  last_position_logits: number[];
  sample_loss: { mean: number; story_token_ids?: number[][] };
  story_token_ids: number[][];
}

test("TinyStories-656K bf16 and f32 resave agree", () => {
  const bf16 = loadModelFromDir(fixture("models/TinyStories-656K"));
  const resaved = loadModelFromDir(fixture("models/TinyStories-656K/fp32-resave"));
  assert.equal(bf16.weightDtype, "bf16");
  assert.equal(resaved.weightDtype, "f32");
  const ids = [1, 80, 147, 201, 282, 57, 8];
  assert.deepEqual(allLogits(bf16, ids), allLogits(resaved, ids));
});

test("TinyStories-656K logits match transformers", () => {
  const reference = readJson<TinyStoriesLogits>("reference/tinystories/logits.json");
  const model = loadModelFromDir(fixture("models/TinyStories-656K"), "f32");
  const ids = reference.input_ids;
  const logits = allLogits(model, ids);
  const vocab = model.dims.vocabSize;
  reference.top5.ids.forEach((top, t) => {
    const got = top.map((id) => logits[t * vocab + id]);
    assertClose(got, reference.top5.logits[t], { atol: 1e-4, what: `top-5 logits at ${t}` });
  });
  const last = logits.subarray((ids.length - 1) * vocab, ids.length * vocab);
  assertClose(last, reference.last_position_logits, { atol: 1e-4, what: "last position" });
});

test("TinyStories-656K sample loss matches transformers", () => {
  const reference = readJson<TinyStoriesLogits>("reference/tinystories/logits.json");
  const model = loadModelFromDir(fixture("models/TinyStories-656K"));
  const loss = sampleLoss(model, reference.story_token_ids);
  assert.ok(
    Math.abs(loss - reference.sample_loss.mean) <= 1e-5,
    `loss ${loss}, expected ${reference.sample_loss.mean}`,
  );
});

test("TinyStories-656K greedy matches golden", async () => {
  const dir = fixture("models/TinyStories-656K");
  const golden = readJson<{
    greedy_from_bos: { ids: number[]; text: string };
    greedy_from_prompt: { prompt: string; prompt_ids: number[]; ids: number[]; text: string };
  }>("models/TinyStories-656K/golden.json");
  const model = loadModelFromDir(dir);
  const tokenizer = await loadTokenizer(dir);
  for (const run of [golden.greedy_from_bos, golden.greedy_from_prompt]) {
    const promptIds = "prompt_ids" in run ? (run as { prompt_ids: number[] }).prompt_ids : [1];
    const result = generate(model, [promptIds], {
      maxNewTokens: run.ids.length - promptIds.length,
      eosTokenId: 2,
      tokenizer,
    });
    assert.deepEqual([...promptIds, ...result.tokens[0]], run.ids);
    assert.deepEqual(result.finishReasons, ["eos"]);
    assert.equal(tokenizer.decode(run.ids, { skipSpecialTokens: true }), run.text);
  }
});

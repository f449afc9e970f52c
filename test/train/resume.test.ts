// Exact resume and gradient checkpointing on a real model: TinyStories-656K with a small LoRA,
// trained on chunks of the reference stories for a few seconds.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { TokenizedExample } from "../../src/data/tokenize.js";
import { Rng } from "../../src/engine/random.js";
import { applyLora } from "../../src/lora/inject.js";
import { trainableParameters } from "../../src/lora/adapters.js";
import { loadModel } from "../../src/models/index.js";
import { fineTune, type FineTuneOptions } from "../../src/train/fine-tune.js";
import { readMetricsLog } from "../../src/train/progress.js";
import { fixture } from "../helpers/fixtures.js";

const stories = (
  JSON.parse(readFileSync(fixture("reference/tinystories/logits.json"), "utf8")) as {
    story_token_ids: number[][];
  }
).story_token_ids;

/** Cuts the stories into examples of 12 to 24 tokens (varied lengths exercise the padding). */
function chunks(): TokenizedExample[] {
  const out: TokenizedExample[] = [];
  stories.forEach((ids, s) => {
    for (let start = 0, k = 0; start + 12 <= ids.length; k++) {
      const length = 12 + ((s * 7 + k * 5) % 13);
      const piece = Int32Array.from(ids.slice(start, start + length));
      out.push({
        inputIds: piece,
        labels: piece.slice(),
        promptLength: 0,
        group: `story ${s}`,
        origin: `story ${s} chunk ${k}`,
        truncated: false,
      });
      start += length;
    }
  });
  return out;
}

const examples = chunks();
const train = examples.filter((e) => e.group !== "story 4");
const validation = examples.filter((e) => e.group === "story 4");

async function setup(dropout: number) {
  const { model } = await loadModel(fixture("models/TinyStories-656K"), { dtype: "f32" });
  applyLora(
    model,
    { r: 4, lora_alpha: 8, lora_dropout: dropout, target_modules: ["q_proj", "v_proj"] },
    { rng: new Rng(7) },
  );
  return model;
}

function baseOptions(model: FineTuneOptions["model"], outDir: string | null): FineTuneOptions {
  return {
    model,
    train,
    validation,
    padTokenId: 0,
    batchSize: 3,
    steps: 20,
    lr: 2e-3,
    schedule: "cosine",
    warmupSteps: 2,
    maxGradNorm: 1,
    evalEvery: 4,
    saveEvery: 4,
    outDir,
    seed: 3,
  };
}

function adapterBytes(dir: string): Buffer {
  return readFileSync(join(dir, "adapter_model.safetensors"));
}

test("20 steps equal 10, abort, resume 10", async () => {
  const straightDir = mkdtempSync(join(tmpdir(), "tslora-straight-"));
  const straight = await fineTune(baseOptions(await setup(0.1), straightDir));
  assert.equal(straight.reason, "completed");

  const resumedDir = mkdtempSync(join(tmpdir(), "tslora-resumed-"));
  const controller = new AbortController();
  const first = await fineTune({
    ...baseOptions(await setup(0.1), resumedDir),
    signal: controller.signal,
    onStep: (m) => {
      if (m.step === 10) controller.abort();
    },
  });
  assert.equal(first.reason, "aborted");
  assert.equal(first.step, 10);
  assert.equal(first.adapterDir, null, "no final adapter after an interruption");

  const second = await fineTune({ ...baseOptions(await setup(0.1), resumedDir), resume: true });
  assert.equal(second.reason, "completed");
  assert.equal(second.step, 20);
  assert.ok(adapterBytes(straightDir).equals(adapterBytes(resumedDir)), "adapters differ");

  // The validation loss falls, and the resumed log lists every step once.
  const validations = straight.validations.map((v) => v.valLoss);
  assert.ok(validations[validations.length - 1] < validations[0], `${validations}`);
  const steps = readMetricsLog(join(resumedDir, "metrics.jsonl"))
    .filter((r) => r.type === "train")
    .map((r) => r.step);
  assert.deepEqual(
    steps,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});

test("extended run drops its earlier adapter", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tslora-extended-"));
  const options = { ...baseOptions(await setup(0), dir), steps: 4, validation: null };
  const finished = await fineTune(options);
  assert.equal(finished.reason, "completed");
  assert.ok(existsSync(join(dir, "adapter_model.safetensors")));

  // Raising the step count and stopping after one more step leaves no adapter of step 4.
  const controller = new AbortController();
  const lines: string[] = [];
  const extended = await fineTune({
    ...options,
    model: await setup(0),
    steps: 8,
    resume: true,
    signal: controller.signal,
    log: (line) => lines.push(line),
    onStep: () => controller.abort(),
  });
  assert.equal(extended.reason, "aborted");
  assert.equal(extended.step, 5);
  assert.equal(existsSync(join(dir, "adapter_model.safetensors")), false);
  assert.equal(existsSync(join(dir, "adapter_config.json")), false);
  assert.ok(
    lines.some((line) => /removed the adapter that the run's earlier end saved/.test(line)),
    lines.join("\n"),
  );

  // Finishing the extended run saves a new adapter.
  const again = await fineTune({ ...options, model: await setup(0), steps: 8, resume: true });
  assert.equal(again.reason, "completed");
  assert.ok(existsSync(join(dir, "adapter_model.safetensors")));
  // Resuming a finished run without new steps keeps the adapter of its end.
  const unchanged = await fineTune({ ...options, model: await setup(0), steps: 8, resume: true });
  assert.equal(unchanged.step, 8);
  assert.ok(existsSync(join(dir, "adapter_model.safetensors")));
});

for (const dropout of [0, 0.1]) {
  test(`gradient checkpointing gives the same training (dropout ${dropout})`, async () => {
    const plain = await setup(dropout);
    await fineTune({ ...baseOptions(plain, null), steps: 3, validation: null });
    const checkpointed = await setup(dropout);
    await fineTune({
      ...baseOptions(checkpointed, null),
      steps: 3,
      validation: null,
      gradientCheckpointing: true,
    });
    const a = trainableParameters(plain);
    const b = trainableParameters(checkpointed);
    assert.equal(b.length, a.length);
    for (let i = 0; i < a.length; i++) {
      assert.deepEqual(b[i][1].f32(), a[i][1].f32(), a[i][0]);
    }
  });
}

// fineTune's output folder: a new run must not mix its metrics and checkpoints with another run's.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { TokenizedExample } from "../../src/data/tokenize.js";
import { Rng } from "../../src/engine/random.js";
import { applyLora } from "../../src/lora/inject.js";
import { loadModelFromDir } from "../../src/models/weights.js";
import { fineTune, type FineTuneOptions } from "../../src/train/fine-tune.js";
import { MetricsLog, readMetricsLog } from "../../src/train/progress.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const modelDir = mkdtempSync(join(tmpdir(), "tslora-outdir-model-"));
const config = writeTinyModel(modelDir, "llama");
const vocabSize = Number(config.vocab_size);

const examples: TokenizedExample[] = Array.from({ length: 4 }, (_, i) => {
  const ids = Int32Array.from({ length: 8 }, (_, k) => (i * 8 + k) % vocabSize);
  return {
    inputIds: ids,
    labels: ids.slice(),
    promptLength: 0,
    group: `sample ${i}`,
    origin: `sample ${i}`,
    truncated: false,
  };
});

async function options(outDir: string, steps: number): Promise<FineTuneOptions> {
  const model = loadModelFromDir(modelDir, "f32");
  applyLora(model, { r: 2, lora_alpha: 4, target_modules: ["q_proj"] }, { rng: new Rng(1) });
  return {
    model,
    train: examples,
    padTokenId: 0,
    batchSize: 2,
    steps,
    lr: 1e-3,
    saveEvery: 1,
    outDir,
    seed: 1,
  };
}

function trainSteps(outDir: string): unknown[] {
  return readMetricsLog(join(outDir, "metrics.jsonl"))
    .filter((r) => r.type === "train")
    .map((r) => r.step);
}

test("fineTune rejects a second run in outDir", async () => {
  const outDir = mkdtempSync(join(tmpdir(), "tslora-outdir-"));
  await fineTune(await options(outDir, 3));
  const before = readdirSync(join(outDir, "checkpoints")).sort();

  await assert.rejects(fineTune(await options(outDir, 2)), (err: Error) => {
    assert.match(err.message, /is not empty/);
    assert.ok(err.message.includes(outDir), err.message);
    assert.match(err.message, /another folder/);
    assert.match(err.message, /resume: true/);
    return true;
  });
  assert.deepEqual(trainSteps(outDir), [1, 2, 3], "the first run's metrics are unchanged");
  assert.deepEqual(readdirSync(join(outDir, "checkpoints")).sort(), before);
});

test("fineTune replaces metrics of a crashed run", async () => {
  // A run killed before its first checkpoint leaves only its metrics log (and, from the CLI,
  // train_config.json).
  const outDir = mkdtempSync(join(tmpdir(), "tslora-outdir-"));
  new MetricsLog(join(outDir, "metrics.jsonl")).write("train", { step: 1, loss: 9 });
  writeFileSync(join(outDir, "train_config.json"), "{}\n");

  const result = await fineTune(await options(outDir, 2));
  assert.equal(result.reason, "completed");
  assert.deepEqual(trainSteps(outDir), [1, 2]);
});

test("fineTune accepts a new or empty outDir", async () => {
  const parent = mkdtempSync(join(tmpdir(), "tslora-outdir-"));
  const outDir = join(parent, "run");
  const result = await fineTune(await options(outDir, 1));
  assert.equal(result.adapterDir, outDir);
  assert.ok(existsSync(join(outDir, "adapter_model.safetensors")));
});

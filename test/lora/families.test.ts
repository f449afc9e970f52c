// LoRA on every supported family: default targets, all-linear without the LM head, and a merged
// checkpoint that reproduces the adapted model.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad, Tensor } from "../../src/engine/index.js";
import { Rng } from "../../src/engine/random.js";
import { applyLora, saveAdapter } from "../../src/lora/index.js";
import { familyDefaultTargets } from "../../src/lora/config.js";
import { mergeCheckpoint } from "../../src/lora/merge-checkpoint.js";
import { KNOWN_MODEL_TYPES, loadModelFromDir } from "../../src/models/index.js";
import type { CausalLM } from "../../src/models/index.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-lora-families-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const FAMILIES: [TinyFamily, string][] = [
  ["gpt2", "attn.c_attn"],
  ["llama", "self_attn.q_proj"],
  ["mistral", "self_attn.v_proj"],
  ["qwen2", "self_attn.q_proj"],
  ["bloom", "self_attention.query_key_value"],
];

function logits(model: CausalLM): Float32Array {
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 14, 3, 7, 2, 11]), [1, 8], "i32");
  return noGrad(() => model.logits(model.forward(ids)).toFloat32Array());
}

test("every model type has default targets", () => {
  for (const type of KNOWN_MODEL_TYPES) {
    assert.ok(familyDefaultTargets(type).length > 0, type);
  }
});

for (const [family, suffix] of FAMILIES) {
  test(`${family}: default targets and merged checkpoint`, () => {
    const modelDir = join(scratch, `${family}-model`);
    writeTinyModel(modelDir, family, { seed: 3 });
    const model = loadModelFromDir(modelDir, "f32");
    const record = applyLora(model, { init_lora_weights: false }, { rng: new Rng(9) });
    assert.equal(
      record.targets.length,
      family === "llama" || family === "mistral" || family === "qwen2" ? 4 : 2,
    );
    assert.ok(
      record.targets.some((p) => p.endsWith(suffix)),
      `${family}: ${record.targets.join(", ")}`,
    );
    const adapted = logits(model);

    const adapterDir = join(scratch, `${family}-adapter`);
    saveAdapter(model, adapterDir);
    const out = join(scratch, `${family}-merged`);
    mergeCheckpoint({ modelDir, adapterDir, outDir: out });
    const merged = loadModelFromDir(out, "f32");
    assert.ok(maxAbsDiff(logits(merged), adapted) <= 1e-4, `${family}: merged logits differ`);
    endStep();
  });
}

test("all-linear leaves an untied lm_head out", () => {
  const modelDir = join(scratch, "qwen2-untied");
  writeTinyModel(modelDir, "qwen2", { seed: 4 });
  const model = loadModelFromDir(modelDir, "f32");
  assert.equal(model.dims.tieWordEmbeddings, false);
  const record = applyLora(model, { target_modules: "all-linear" }, { rng: new Rng(10) });
  assert.equal(record.targets.length, 14);
  assert.ok(!record.targets.includes("lm_head"));
});

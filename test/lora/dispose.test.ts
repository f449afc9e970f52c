// Disposing a model with adapters: every LoRA tensor and gradient is freed, and every later call
// on the model fails with an error naming the disposal.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { backward, endStep, Tensor } from "../../src/engine/index.js";
import { getHeap } from "../../src/engine/memory.js";
import {
  applyLora,
  listAdapters,
  loadAdapter,
  mergeAdapter,
  mergeAndUnload,
  saveAdapter,
  type LoraConfigInput,
} from "../../src/lora/index.js";
import { loadModelFromDir, type CausalLM } from "../../src/models/index.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-lora-dispose-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const modelDirs = new Map<TinyFamily, string>();

function tinyModel(family: TinyFamily): CausalLM {
  let dir = modelDirs.get(family);
  if (dir === undefined) {
    dir = join(scratch, family);
    writeTinyModel(dir, family, { seed: 5 });
    modelDirs.set(family, dir);
  }
  return loadModelFromDir(dir, "f32");
}

/** Runs one forward and backward pass, so the trainable tensors get gradients. */
function trainStep(model: CausalLM): void {
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 14, 3, 7]), [1, 6], "i32");
  backward(model.loss(ids, ids));
  endStep();
}

/** The token embedding, which both tiny models tie to the output layer. */
const EMBEDDING: Record<"gpt2" | "llama", string> = { gpt2: "wte", llama: "embed_tokens" };

function configs(family: "gpt2" | "llama"): [string, LoraConfigInput][] {
  return [
    ["r 4", { r: 4 }],
    ["all-linear with biases", { r: 8, target_modules: "all-linear", bias: "all" }],
    ["modules_to_save", { r: 4, modules_to_save: [EMBEDDING[family]] }],
  ];
}

// The first training step allocates the step arena from the heap, which then stays, so warm up
// before any test measures the heap.
const warmUp = tinyModel("gpt2");
applyLora(warmUp, { r: 4 });
trainStep(warmUp);
warmUp.dispose();

for (const family of ["gpt2", "llama"] as const) {
  for (const [label, config] of configs(family)) {
    test(`dispose frees adapters: ${family}, ${label}`, () => {
      const before = getHeap().bytesInUse;
      const model = tinyModel(family);
      applyLora(model, config);
      applyLora(model, { r: 2 }, { adapterName: "second" });
      trainStep(model);
      assert.ok(getHeap().bytesInUse > before);
      model.dispose();
      assert.equal(getHeap().bytesInUse, before);
    });
  }
}

test("dispose frees adapters after mergeAndUnload", () => {
  const before = getHeap().bytesInUse;
  const model = tinyModel("llama");
  applyLora(model, { r: 4, modules_to_save: [EMBEDDING.llama] });
  applyLora(model, { r: 2 }, { adapterName: "second" });
  mergeAndUnload(model);
  model.dispose();
  assert.equal(getHeap().bytesInUse, before);
});

test("disposed model rejects LoRA calls", () => {
  const model = tinyModel("llama");
  applyLora(model, { r: 4 });
  const dir = join(scratch, "adapter");
  saveAdapter(model, dir);
  model.dispose();
  const disposed = /the model was disposed; load it again/;
  const ids = Tensor.from(Int32Array.from([1, 2, 3]), [1, 3], "i32");
  assert.throws(() => applyLora(model, { r: 4 }, { adapterName: "other" }), /applyLora: /);
  assert.throws(() => applyLora(model, { r: 4 }, { adapterName: "other" }), disposed);
  assert.throws(() => loadAdapter(model, dir, { adapterName: "other" }), disposed);
  assert.throws(() => saveAdapter(model, join(scratch, "again")), disposed);
  assert.throws(() => mergeAdapter(model), disposed);
  assert.throws(() => model.forward(ids), disposed);
  assert.throws(() => model.loss(ids, ids), disposed);
  assert.throws(() => listAdapters(model), disposed);
  model.dispose();
});

test("listAdapters of a plain model is empty", () => {
  const model = tinyModel("gpt2");
  assert.deepEqual(listAdapters(model), []);
  applyLora(model, { r: 4 });
  assert.deepEqual(listAdapters(model), ["default"]);
  assert.deepEqual(listAdapters(mergeAndUnload(model)), []);
  model.dispose();
});

// Named adapters, initialisation, dropout, the parameter report and training every layer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, endStep, noGrad, zeroGrad } from "../../src/engine/index.js";
import { AdamW } from "../../src/engine/optim.js";
import { Rng } from "../../src/engine/random.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import {
  activeAdapter,
  applyLora,
  countParameters,
  deleteAdapter,
  disableAdapters,
  enableAdapters,
  listAdapters,
  loadAdapter,
  setActiveAdapter,
  trainableParameters,
  trainableParametersReport,
} from "../../src/lora/index.js";
import { LoraLinear } from "../../src/lora/layer.js";
import { enableGradientCheckpointing } from "../../src/train/checkpointing.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";
import {
  logitsOf,
  lossOf,
  loadReferenceModel,
  maxLogitError,
  readJson,
  referenceBatch,
  type ReferenceAdapter,
} from "./helpers.js";

test("adapters switch, disable and delete", () => {
  const model = loadReferenceModel("llama");
  const batch = referenceBatch("llama");
  loadAdapter(model, fixture("reference/llama/adapter"), { adapterName: "small" });
  loadAdapter(model, fixture("reference/llama/adapter-all-linear"), { adapterName: "all" });
  assert.deepEqual(listAdapters(model), ["small", "all"]);
  assert.equal(activeAdapter(model), "small");
  const small = readJson<ReferenceAdapter>("reference/llama/adapter.json");
  const all = readJson<ReferenceAdapter>("reference/llama/adapter-all-linear.json");
  const base = readJson<{ logits: number[][][] }>("reference/llama/base.json");
  noGrad(() => {
    assert.ok(maxLogitError(logitsOf(model, batch), small.logits, batch.mask) <= 1e-4);
    setActiveAdapter(model, "all");
    assert.ok(maxLogitError(logitsOf(model, batch), all.logits, batch.mask) <= 1e-4);
    disableAdapters(model);
    assert.ok(maxLogitError(logitsOf(model, batch), base.logits, batch.mask) <= 1e-4);
    enableAdapters(model);
    assert.ok(maxLogitError(logitsOf(model, batch), all.logits, batch.mask) <= 1e-4);
    deleteAdapter(model, "all");
    assert.equal(activeAdapter(model), "small");
    assert.ok(maxLogitError(logitsOf(model, batch), small.logits, batch.mask) <= 1e-4);
    deleteAdapter(model, "small");
    assert.equal(activeAdapter(model), null);
    assert.ok(maxLogitError(logitsOf(model, batch), base.logits, batch.mask) <= 1e-4);
  });
  const hooks = model.namedModules().filter(([, m]) => "hook" in m && m.hook !== null);
  assert.equal(hooks.length, 0, "deleting every adapter removes every hook");
  endStep();
});

test("only the active adapter is trainable", () => {
  const model = loadReferenceModel("llama");
  loadAdapter(model, fixture("reference/llama/adapter"), { adapterName: "a", trainable: true });
  loadAdapter(model, fixture("reference/llama/adapter"), { adapterName: "b", trainable: true });
  const a = trainableParameters(model, "a").map(([, t]) => t);
  const b = trainableParameters(model, "b").map(([, t]) => t);
  assert.ok(a.every((t) => t.requiresGrad));
  assert.ok(b.every((t) => !t.requiresGrad));
  setActiveAdapter(model, "b");
  assert.ok(a.every((t) => !t.requiresGrad));
  assert.ok(b.every((t) => t.requiresGrad));
  assert.ok(
    model.namedParameters().every(([, t]) => !t.requiresGrad),
    "base stays frozen",
  );
});

function loraLayers(model: ReturnType<typeof loadReferenceModel>): LoraLinear[] {
  const out: LoraLinear[] = [];
  for (const [, m] of model.namedModules()) {
    const hook = (m as { hook?: unknown }).hook;
    if (hook instanceof LoraLinear) out.push(hook);
  }
  return out;
}

test("init true: Kaiming A, zero B", () => {
  const model = loadReferenceModel("llama");
  const batch = referenceBatch("llama");
  const base = readJson<{ logits: number[][][] }>("reference/llama/base.json");
  applyLora(model, { r: 8, target_modules: "all-linear" }, { rng: new Rng(1) });
  for (const layer of loraLayers(model)) {
    const w = layer.adapters.get("default");
    assert.ok(w);
    const bound = 1 / Math.sqrt(layer.base.inFeatures);
    const A = w.A.toFloat32Array();
    assert.ok(
      A.every((v) => Math.abs(v) <= bound),
      `${layer.path}: |A| <= 1/sqrt(in)`,
    );
    assert.ok(Math.max(...A.map(Math.abs)) > 0.8 * bound, `${layer.path}: A spans its range`);
    assert.ok(
      w.B.toFloat32Array().every((v) => v === 0),
      `${layer.path}: B is zero`,
    );
  }
  noGrad(() => assert.ok(maxLogitError(logitsOf(model, batch), base.logits, batch.mask) <= 1e-4));
  endStep();
});

test("init gaussian: A std 1/r", () => {
  const model = loadReferenceModel("llama");
  applyLora(
    model,
    { r: 4, target_modules: "all-linear", init_lora_weights: "gaussian" },
    { rng: new Rng(2) },
  );
  const values = loraLayers(model).flatMap((l) => [
    ...(l.adapters.get("default")?.A.toFloat32Array() ?? []),
  ]);
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
  assert.ok(Math.abs(std - 0.25) < 0.01, `std ${std}, expected 0.25`);
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
});

test("init false: random nonzero B", () => {
  const model = loadReferenceModel("llama");
  applyLora(model, { r: 4, init_lora_weights: false }, { rng: new Rng(3) });
  for (const layer of loraLayers(model)) {
    const B = layer.adapters.get("default")?.B.toFloat32Array() ?? new Float32Array();
    assert.ok(
      B.some((v) => v !== 0),
      `${layer.path}: B is not zero`,
    );
    assert.ok(
      B.every((v) => Math.abs(v) <= 0.5),
      `${layer.path}: |B| <= 1/sqrt(r)`,
    );
  }
});

test("dropout only in training mode", () => {
  const model = loadReferenceModel("llama");
  const batch = referenceBatch("llama");
  applyLora(model, { r: 4, lora_dropout: 0.5, init_lora_weights: false }, { rng: new Rng(4) });
  noGrad(() => {
    model.eval();
    const first = logitsOf(model, batch);
    const second = logitsOf(model, batch);
    assert.equal(maxAbsDiff(second, first), 0, "eval mode is deterministic");
    model.train();
    const dropped = logitsOf(model, batch);
    assert.ok(maxAbsDiff(dropped, first) > 1e-3, "training mode drops LoRA inputs");
    disableAdapters(model);
    const baseTrain = logitsOf(model, batch);
    model.eval();
    const baseEval = logitsOf(model, batch);
    assert.equal(maxAbsDiff(baseTrain, baseEval), 0, "dropout never touches the base path");
  });
  endStep();
});

test("parameter report in PEFT's form", () => {
  const model = loadReferenceModel("gpt2");
  loadAdapter(model, fixture("reference/gpt2/adapter"), { trainable: true });
  // Independent counts from the files: base tensors plus LoRA tensors.
  const count = (rel: string) => {
    const file = SafetensorsFile.open(fixture(rel));
    try {
      return file.names.reduce((s, n) => s + file.info(n).shape.reduce((p, d) => p * d, 1), 0);
    } finally {
      file.close();
    }
  };
  const lora = count("reference/gpt2/adapter/adapter_model.safetensors");
  const all = count("reference/gpt2/model/model.safetensors") + lora;
  assert.deepEqual(countParameters(model), { trainable: lora, all, percent: (100 * lora) / all });
  assert.equal(
    trainableParametersReport(model),
    `trainable params: ${lora.toLocaleString("en-US")} || all params: ` +
      `${all.toLocaleString("en-US")} || trainable%: ${((100 * lora) / all).toFixed(4)}`,
  );
  assert.match(
    trainableParametersReport(model),
    /^trainable params: 2,048 \|\| all params: 137,216 \|\| trainable%: 1\.4925$/,
  );
});

for (const checkpointing of [false, true]) {
  test(`training moves every lora_B (checkpointing ${checkpointing})`, () => {
    const model = loadReferenceModel("llama");
    const batch = referenceBatch("llama");
    applyLora(model, { r: 4, target_modules: "all-linear" }, { rng: new Rng(5) });
    if (checkpointing) enableGradientCheckpointing(model);
    model.train();
    const named = trainableParameters(model);
    const params = named.map(([, t]) => t);
    const optimizer = new AdamW(params, { lr: 1e-2 });
    for (let step = 0; step < 3; step++) {
      zeroGrad(params);
      backward(lossOf(model, batch));
      optimizer.step();
      endStep();
    }
    const lorasB = named.filter(([key]) => key.endsWith("lora_B.weight"));
    assert.equal(lorasB.length, 14);
    for (const [key, t] of lorasB) {
      assert.ok(
        t.toFloat32Array().some((v) => v !== 0),
        `${key} is still zero`,
      );
    }
  });
}

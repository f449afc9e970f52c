// Config features on real models: biases, modules_to_save, rank_pattern, rsLoRA, fan_in_fan_out.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { backward, endStep, noGrad, Tensor, zeroGrad } from "../../src/engine/index.js";
import { AdamW } from "../../src/engine/optim.js";
import { Rng } from "../../src/engine/random.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import {
  applyLora,
  disableAdapters,
  loadAdapter,
  mergeAndUnload,
  saveAdapter,
  trainableParameters,
} from "../../src/lora/index.js";
import type { Linear } from "../../src/nn/linear.js";
import { LoraLinear } from "../../src/lora/layer.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { randomArray } from "../helpers/random.js";
import { logitsOf, lossOf, loadReferenceModel, referenceBatch } from "./helpers.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-lora-features-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function trainSteps(model: ReturnType<typeof loadReferenceModel>, steps: number): void {
  const batch = referenceBatch(model.modelType === "gpt2" ? "gpt2" : "llama");
  const params = trainableParameters(model).map(([, t]) => t);
  const optimizer = new AdamW(params, { lr: 1e-2 });
  for (let step = 0; step < steps; step++) {
    zeroGrad(params);
    backward(lossOf(model, batch));
    optimizer.step();
    endStep();
  }
}

test("bias and modules_to_save round trip", () => {
  const model = loadReferenceModel("gpt2");
  const batch = referenceBatch("gpt2");
  applyLora(
    model,
    { r: 2, bias: "all", modules_to_save: ["ln_f"], target_modules: ["c_attn"] },
    { rng: new Rng(11) },
  );
  const keys = trainableParameters(model).map(([k]) => k);
  assert.ok(keys.includes("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias"));
  assert.ok(keys.includes("base_model.model.transformer.h.1.mlp.c_fc.bias"));
  assert.ok(keys.includes("base_model.model.transformer.ln_f.weight"));
  assert.ok(keys.includes("base_model.model.transformer.ln_f.bias"));
  assert.equal(new Set(keys).size, keys.length, "no key twice");
  trainSteps(model, 2);

  const out = join(scratch, "bias-all");
  saveAdapter(model, out);
  const saved = readSafetensors(join(out, "adapter_model.safetensors")).tensors;
  assert.deepEqual([...saved.keys()].sort(), [...keys].sort());
  const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.equal(config.bias, "all");
  assert.deepEqual(config.modules_to_save, ["ln_f"]);

  const fresh = loadReferenceModel("gpt2");
  loadAdapter(fresh, out);
  noGrad(() => {
    assert.equal(maxAbsDiff(logitsOf(fresh, batch), logitsOf(model, batch)), 0);
  });
  endStep();
});

test("disable restores modules_to_save originals", () => {
  const model = loadReferenceModel("gpt2");
  const base = loadReferenceModel("gpt2");
  const batch = referenceBatch("gpt2");
  applyLora(model, { r: 2, modules_to_save: ["ln_f"] }, { rng: new Rng(12) });
  trainSteps(model, 2);
  noGrad(() => {
    const adapted = logitsOf(model, batch);
    const reference = logitsOf(base, batch);
    assert.ok(maxAbsDiff(adapted, reference) > 1e-3, "training changed the outputs");
    disableAdapters(model);
    assert.equal(maxAbsDiff(logitsOf(model, batch), reference), 0);
  });
  endStep();
});

test("rank_pattern and alpha_pattern per module", () => {
  const model = loadReferenceModel("llama");
  const record = applyLora(
    model,
    {
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "v_proj"],
      rank_pattern: { "layers.1.self_attn.q_proj": 8 },
      alpha_pattern: { v_proj: 2 },
      use_rslora: true,
    },
    { rng: new Rng(13), trainable: true },
  );
  const shapes = new Map(trainableParameters(model).map(([k, t]) => [k, [...t.shape]]));
  const q1 = "base_model.model.model.layers.1.self_attn.q_proj";
  const q0 = "base_model.model.model.layers.0.self_attn.q_proj";
  assert.deepEqual(shapes.get(`${q1}.lora_A.weight`), [8, 64]);
  assert.deepEqual(shapes.get(`${q1}.lora_B.weight`), [64, 8]);
  assert.deepEqual(shapes.get(`${q0}.lora_A.weight`), [4, 64]);
  assert.equal(record.targets.length, 4);

  trainSteps(model, 1);
  const out = join(scratch, "patterns");
  saveAdapter(model, out);
  const fresh = loadReferenceModel("llama");
  loadAdapter(fresh, out);
  const batch = referenceBatch("llama");
  noGrad(() => assert.equal(maxAbsDiff(logitsOf(fresh, batch), logitsOf(model, batch)), 0));
  endStep();
});

test("rslora layer output matches f64", () => {
  const model = loadReferenceModel("llama");
  applyLora(
    model,
    { r: 4, lora_alpha: 16, use_rslora: true, init_lora_weights: false },
    { rng: new Rng(14) },
  );
  const layer = model.getModule("model.layers.0.self_attn.v_proj") as Linear;
  const hook = layer.hook as LoraLinear;
  const w = hook.adapters.get("default");
  assert.ok(w);
  assert.equal(w.scaling, 8, "16 / sqrt(4)");

  // y = base + scaling · x A^T B^T, checked against an f64 loop on x [3, 64].
  const [rows, inF, outF, r] = [3, 64, 32, 4];
  const x = randomArray(rows * inF, 21);
  const base = randomArray(rows * outF, 22);
  const out = noGrad(() =>
    hook.forward(Tensor.from(x, [rows, inF]), Tensor.from(base, [rows, outF])).toFloat32Array(),
  );
  const A = w.A.toFloat32Array();
  const B = w.B.toFloat32Array();
  for (let n = 0; n < rows; n++) {
    for (let o = 0; o < outF; o++) {
      let sum = 0;
      for (let k = 0; k < r; k++) {
        let h = 0;
        for (let i = 0; i < inF; i++) h += x[n * inF + i] * A[k * inF + i];
        sum += h * B[o * r + k];
      }
      const expected = base[n * outF + o] + 8 * sum;
      assert.ok(Math.abs(out[n * outF + o] - expected) <= 1e-5, `[${n}, ${o}]`);
    }
  }
  endStep();
});

test("gpt2 forces fan_in_fan_out true", () => {
  const model = loadReferenceModel("gpt2");
  const record = applyLora(model, { fan_in_fan_out: false }, { rng: new Rng(15) });
  assert.equal(record.config.fan_in_fan_out, true);
  const llama = loadReferenceModel("llama");
  const other = applyLora(llama, { fan_in_fan_out: true }, { rng: new Rng(15) });
  assert.equal(other.config.fan_in_fan_out, false);
});

test("mergeAndUnload leaves a plain model", () => {
  const model = loadReferenceModel("llama");
  const batch = referenceBatch("llama");
  applyLora(model, { r: 4, init_lora_weights: false }, { rng: new Rng(16) });
  const adapted = noGrad(() => logitsOf(model, batch));
  mergeAndUnload(model);
  const hooks = model.namedModules().filter(([, m]) => "hook" in m && m.hook !== null);
  assert.equal(hooks.length, 0);
  noGrad(() => assert.ok(maxAbsDiff(logitsOf(model, batch), adapted) <= 1e-4));
  endStep();
});

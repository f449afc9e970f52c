// LoRA training on the real bf16 TinyStories-656K checkpoint against PEFT's 30-step run.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, endStep, noGrad, Tensor, zeroGrad } from "../../src/engine/index.js";
import { AdamW } from "../../src/engine/optim.js";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { loadAdapter, trainableParameters } from "../../src/lora/index.js";
import { loadModelFromDir } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";
import { readJson } from "./helpers.js";

interface Trajectory {
  data: { batches: number[][][] };
  losses: number[];
  final_losses_per_batch: number[];
  step0_grads: Record<string, number[][]>;
}

test("TinyStories 30 LoRA steps match PEFT", () => {
  const ref = readJson<Trajectory>("reference/tinystories/lora_trajectory.json");
  const model = loadModelFromDir(fixture("models/TinyStories-656K"), "auto");
  assert.equal(model.weightDtype, "bf16");
  loadAdapter(model, fixture("reference/tinystories/adapter-init"), { trainable: true });
  const named = trainableParameters(model);
  const params = named.map(([, t]) => t);
  const optimizer = new AdamW(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const batches = ref.data.batches.map((rows) =>
    Tensor.from(Int32Array.from(rows.flat()), [rows.length, rows[0].length], "i32", {
      persistent: true,
    }),
  );

  for (let step = 0; step < 30; step++) {
    const ids = batches[step % 3];
    zeroGrad(params);
    const loss = model.loss(ids, ids);
    const value = loss.item();
    assert.ok(
      Math.abs(value - ref.losses[step]) <= 1e-4,
      `step ${step}: loss ${value}, expected ${ref.losses[step]}`,
    );
    backward(loss);
    if (step === 0) {
      for (const [key, t] of named) {
        const want = ref.step0_grads[key].flat();
        const got = t.grad?.toFloat32Array() ?? new Float32Array(want.length);
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const worst = want.reduce((m, v, i) => Math.max(m, Math.abs(got[i] - v)), 0);
        assert.ok(worst <= 1e-3 * scale + 1e-7, `${key}: step-0 gradient error ${worst}`);
      }
    }
    optimizer.step();
    endStep();
  }

  noGrad(() => {
    batches.forEach((ids, b) => {
      const value = model.loss(ids, ids).item();
      const want = ref.final_losses_per_batch[b];
      assert.ok(Math.abs(value - want) <= 1e-4, `final loss of batch ${b}: ${value} vs ${want}`);
    });
  });
  endStep();

  const final = readSafetensors(
    fixture("reference/tinystories/adapter-final/adapter_model.safetensors"),
  ).tensors;
  for (const [key, t] of named) {
    const want = final.get(key);
    assert.ok(want, `${key} not in adapter-final`);
    const expected = decodeToFloat32(want.data, want.dtype, key);
    const got = t.toFloat32Array();
    const worst = expected.reduce((m, v, i) => Math.max(m, Math.abs(got[i] - v)), 0);
    assert.ok(worst <= 1e-4, `${key}: final weight error ${worst}`);
  }
});

// The LoRA maths against transformers + PEFT outputs for the tiny GPT-2 (Conv1D) and Llama
// models: adapted logits and loss, gradients, merge and unmerge, and AdamW steps.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, endStep, noGrad, zeroGrad } from "../../src/engine/index.js";
import { AdamW } from "../../src/engine/optim.js";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import {
  loadAdapter,
  mergeAdapter,
  trainableParameters,
  unmergeAdapter,
} from "../../src/lora/index.js";
import { fixture } from "../helpers/fixtures.js";
import {
  logitsOf,
  lossOf,
  loadReferenceModel,
  maxLogitError,
  readJson,
  referenceBatch,
  type AdapterDir,
  type Arch,
  type ReferenceAdapter,
} from "./helpers.js";

const CASES: [Arch, AdapterDir][] = [
  ["gpt2", "adapter"],
  ["gpt2", "adapter-all-linear"],
  ["llama", "adapter"],
  ["llama", "adapter-all-linear"],
];

function setup(arch: Arch, dir: AdapterDir, trainable = false) {
  const model = loadReferenceModel(arch);
  loadAdapter(model, fixture(`reference/${arch}/${dir}`), { trainable });
  const ref = readJson<ReferenceAdapter>(`reference/${arch}/${dir}.json`);
  return { model, ref, batch: referenceBatch(arch) };
}

function maxAbs(rows: number[][]): number {
  let m = 0;
  for (const row of rows) for (const v of row) m = Math.max(m, Math.abs(v));
  return m;
}

for (const [arch, dir] of CASES) {
  test(`${arch} ${dir}: adapted logits and loss`, () => {
    const { model, ref, batch } = setup(arch, dir);
    noGrad(() => {
      const error = maxLogitError(logitsOf(model, batch), ref.logits, batch.mask);
      assert.ok(error <= 1e-4, `max logit error ${error}`);
      const loss = lossOf(model, batch).item();
      assert.ok(Math.abs(loss - ref.loss) <= 1e-5, `loss ${loss}, expected ${ref.loss}`);
    });
    endStep();
  });

  test(`${arch} ${dir}: LoRA gradients`, () => {
    const { model, ref, batch } = setup(arch, dir, true);
    const params = new Map(trainableParameters(model));
    assert.deepEqual([...params.keys()].sort(), Object.keys(ref.grads).sort());
    backward(lossOf(model, batch));
    for (const [key, expected] of Object.entries(ref.grads)) {
      const grad = params.get(key)?.grad;
      assert.ok(grad, `${key} has no gradient`);
      const ours = grad.toFloat32Array();
      const atol = 1e-3 * maxAbs(expected) + 1e-7;
      const flat = expected.flat();
      let worst = 0;
      for (let i = 0; i < flat.length; i++) worst = Math.max(worst, Math.abs(ours[i] - flat[i]));
      assert.ok(worst <= atol, `${key}: max gradient error ${worst} > ${atol}`);
    }
    endStep();
  });

  test(`${arch} ${dir}: merge and unmerge`, () => {
    const { model, ref, batch } = setup(arch, dir);
    noGrad(() => {
      const adapted = logitsOf(model, batch);
      mergeAdapter(model);
      const merged = logitsOf(model, batch);
      const error = maxLogitError(merged, ref.merged.logits, batch.mask);
      assert.ok(error <= 1e-4, `merged logits error ${error}`);
      const loss = lossOf(model, batch).item();
      assert.ok(Math.abs(loss - ref.merged.loss) <= 1e-5, `merged loss ${loss}`);

      if (ref.merged.saved_dir !== null) {
        const file = fixture(`reference/${arch}/${ref.merged.saved_dir}/model.safetensors`);
        const params = new Map(model.namedParameters());
        for (const [name, t] of readSafetensors(file).tensors) {
          const ours = params.get(name);
          assert.ok(ours, `${name} not in the model`);
          const want = decodeToFloat32(t.data, t.dtype, name);
          const got = ours.toFloat32Array();
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
          assert.ok(worst <= 1e-6, `merged weight ${name}: error ${worst}`);
        }
      }

      unmergeAdapter(model);
      const back = logitsOf(model, batch);
      let worst = 0;
      for (let i = 0; i < back.length; i++) worst = Math.max(worst, Math.abs(back[i] - adapted[i]));
      assert.ok(worst <= 1e-4, `unmerged logits differ by ${worst}`);
    });
    endStep();
  });

  test(`${arch} ${dir}: AdamW steps`, () => {
    const { model, ref, batch } = setup(arch, dir, true);
    const named = trainableParameters(model);
    const params = named.map(([, t]) => t);
    const h = ref.adamw.hyperparameters;
    const optimizer = new AdamW(params, {
      lr: h.lr,
      betas: h.betas,
      eps: h.eps,
      weightDecay: h.weight_decay,
    });
    const small = new Set(ref.adamw.small_grad_elements.map(([k, [r, c]]) => `${k}[${r},${c}]`));
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      zeroGrad(params);
      const loss = lossOf(model, batch);
      losses.push(loss.item());
      backward(loss);
      optimizer.step();
      endStep();

      if (step > 0) continue;
      for (const [key, t] of named) {
        const want = ref.adamw.params_after_step1[key];
        const got = t.toFloat32Array();
        const cols = want[0].length;
        want.forEach((row, r) =>
          row.forEach((v, c) => {
            const tol = small.has(`${key}[${r},${c}]`) ? 2 * h.lr : 1e-6;
            const d = Math.abs(got[r * cols + c] - v);
            assert.ok(d <= tol, `${key}[${r},${c}] after one step: ${got[r * cols + c]} vs ${v}`);
          }),
        );
      }
    }
    losses.push(noGrad(() => lossOf(model, batch).item()));
    endStep();
    losses.forEach((loss, k) => {
      const want = ref.adamw.losses[k];
      assert.ok(Math.abs(loss - want) <= 1e-5, `loss ${k}: ${loss}, expected ${want}`);
    });
  });
}

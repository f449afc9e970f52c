// The base model's own dropout in training: GPT-2's embd_pdrop, resid_pdrop and attn_pdrop,
// BLOOM's hidden_dropout and attention_dropout, and Llama's attention_dropout. The attention op
// is checked against the f64 reference with the same masks. Whole models are checked too: the
// masks repeat for one generator state, evaluation applies none, gradients match finite
// differences, and gradient checkpointing recomputes the same masks.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { attention, backward, endStep, noGrad, Tensor, zeroGrad } from "../../src/engine/index.js";
import { Rng } from "../../src/engine/random.js";
import { setThreads } from "../../src/kernels/pool.js";
import { attentionRef } from "../../src/kernels/reference/attention.js";
import { applyLora, trainableParameters } from "../../src/lora/index.js";
import { loadModelFromDir, type CausalLM } from "../../src/models/index.js";
import { randomSourceOf } from "../../src/nn/random-source.js";
import { enableGradientCheckpointing } from "../../src/train/checkpointing.js";
import { dropFactors } from "../helpers/dropout-factors.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-base-dropout-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("attention dropout gradcheck", () => {
  setThreads(2);
  const [B, H, Hkv, T, S, D] = [2, 4, 2, 6, 6, 5];
  const p = 0.25;
  const scale = Math.fround(1 / Math.sqrt(D));
  // A fresh generator of the same seed reserves the same stream as the op's first draw.
  const factors = dropFactors(new Rng(5).reserve(B * H * T * S), B * H * T * S, p);
  gradcheck(
    ([q, k, v]) => attention(q, k, v, { causal: true, dropout: { p, rng: new Rng(5) } }),
    ([q, k, v]) =>
      attentionRef(q, k, v, { B, H, Hkv, T, S, D, scale, causal: true, dropFactors: factors }),
    [
      { data: randomArray(B * H * T * D, 1), shape: [B, H, T, D] },
      { data: randomArray(B * Hkv * S * D, 2), shape: [B, Hkv, S, D] },
      { data: randomArray(B * Hkv * S * D, 3), shape: [B, Hkv, S, D] },
    ],
    { what: "attention dropout" },
  );
});

test("attention rejects a dropout rate of 1", () => {
  const q = Tensor.from(randomArray(8, 1), [1, 1, 2, 4]);
  assert.throws(
    () => attention(q, q, q, { causal: true, dropout: { p: 1, rng: new Rng(1) } }),
    /dropout probability must be in \[0, 1\), got 1/,
  );
});

/** Config fields that turn on every dropout the family has. */
const DROPOUT_CONFIG: Record<string, Record<string, unknown>> = {
  gpt2: {},
  bloom: { hidden_dropout: 0.1, attention_dropout: 0.1 },
  llama: { attention_dropout: 0.1 },
};

/** Loads a tiny random `family` model (with `config` fields) and adds a LoRA adapter to it. */
function tinyModel(family: TinyFamily, config: Record<string, unknown>, name: string): CausalLM {
  const dir = join(scratch, name);
  writeTinyModel(dir, family, { seed: 3, config });
  const model = loadModelFromDir(dir, "f32");
  applyLora(model, { r: 4, lora_alpha: 8, target_modules: "all-linear" }, { rng: new Rng(11) });
  // B starts at zero, which would leave A without a gradient; give it values.
  for (const [path, t] of trainableParameters(model)) {
    if (path.includes("lora_B")) t.f32().set(randomArray(t.size, 17, 0.2));
  }
  return model;
}

const ids = Tensor.from(
  Int32Array.from({ length: 2 * 12 }, (_, i) => (i * 7 + 3) % 64),
  [2, 12],
  "i32",
  { persistent: true },
);

/** Returns the training loss after setting the model's generator to `state`. */
function lossAt(model: CausalLM, state: Rng): number {
  randomSourceOf(model).rng = Rng.fromState(state.state());
  const value = noGrad(() => model.loss(ids, ids).item());
  endStep();
  return value;
}

for (const family of ["gpt2", "bloom", "llama"] as const) {
  test(`${family} dropout repeats and stops in eval mode`, () => {
    const model = tinyModel(family, DROPOUT_CONFIG[family], `${family}-repeat`);
    const plain = tinyModel(family, {}, `${family}-plain`);
    try {
      assert.ok(Object.values(model.dropoutRates).some((rate) => rate > 0));
      model.train();
      const first = lossAt(model, new Rng(1));
      assert.equal(lossAt(model, new Rng(1)), first, "the same generator state gives other masks");
      assert.notEqual(lossAt(model, new Rng(2)), first, "another state gives the same masks");

      model.eval();
      const evaluated = lossAt(model, new Rng(1));
      assert.notEqual(evaluated, first);
      if (family !== "gpt2") {
        // Without its dropout rates the same weights give the evaluation loss.
        plain.eval();
        assert.equal(lossAt(plain, new Rng(1)), evaluated);
      }
    } finally {
      model.dispose();
      plain.dispose();
    }
  });

  test(`${family} dropout gradients match finite differences`, () => {
    const model = tinyModel(family, DROPOUT_CONFIG[family], `${family}-grad`);
    try {
      model.train();
      const state = new Rng(4);
      const params = trainableParameters(model);
      zeroGrad(params.map(([, t]) => t));
      randomSourceOf(model).rng = Rng.fromState(state.state());
      backward(model.loss(ids, ids));
      endStep();
      // The three entries with the largest gradient in each of two adapter matrices.
      const checked = params.filter(([path]) => /\.0\..*lora_[AB]/.test(path)).slice(0, 2);
      assert.equal(checked.length, 2);
      for (const [path, t] of checked) {
        const grad = t.grad?.f32().slice() ?? new Float32Array(t.size);
        const order = Array.from(grad.keys()).sort((a, b) => Math.abs(grad[b]) - Math.abs(grad[a]));
        for (const i of order.slice(0, 3)) {
          const values = t.f32();
          const saved = values[i];
          const eps = 1e-2;
          values[i] = saved + eps;
          const up = lossAt(model, state);
          values[i] = saved - eps;
          const down = lossAt(model, state);
          values[i] = saved;
          const numeric = (up - down) / (2 * eps);
          const error = Math.abs(numeric - grad[i]);
          assert.ok(
            error <= 2e-3 + 0.03 * Math.abs(numeric),
            `${path}[${i}]: backward ${grad[i]}, finite differences ${numeric}`,
          );
        }
      }
    } finally {
      model.dispose();
    }
  });

  test(`${family} checkpointing recomputes dropout masks`, () => {
    const grads = [false, true].map((checkpointed) => {
      const model = tinyModel(family, DROPOUT_CONFIG[family], `${family}-ckpt-${checkpointed}`);
      try {
        if (checkpointed) enableGradientCheckpointing(model);
        model.train();
        randomSourceOf(model).rng = new Rng(9);
        const params = trainableParameters(model);
        zeroGrad(params.map(([, t]) => t));
        backward(model.loss(ids, ids));
        endStep();
        return params.map(([, t]) => t.grad?.f32().slice() ?? new Float32Array(0));
      } finally {
        model.dispose();
      }
    });
    assert.equal(grads[1].length, grads[0].length);
    grads[0].forEach((g, i) => assert.deepEqual(grads[1][i], g, `gradient ${i} differs`));
  });
}

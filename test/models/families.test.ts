// Every family on tiny random checkpoints: logits against a float64 reference written from
// transformers' modeling code, the KV cache against full recomputation, left padding against
// single rows, and the loss against cross-entropy computed from the logits.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad, scale, Tensor } from "../../src/engine/index.js";
import { alibiSlopes } from "../../src/models/bloom.js";
import type { Linear } from "../../src/nn/linear.js";
import type { CausalLM } from "../../src/models/types.js";
import { loadModelFromDir } from "../../src/models/weights.js";
import { assertClose } from "../helpers/assert.js";
import { referenceLogits } from "../helpers/reference-forward.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const root = mkdtempSync(join(tmpdir(), "tslora-families-"));
after(() => rmSync(root, { recursive: true, force: true }));

const FAMILIES: TinyFamily[] = ["gpt2", "llama", "qwen2", "mistral", "bloom"];
const IDS = [3, 17, 42, 5, 63, 0, 28, 9, 11];

function ids2d(rows: number[][]): Tensor {
  return Tensor.from(Int32Array.from(rows.flat()), [rows.length, rows[0].length], "i32");
}

/** Runs the model without gradients and returns the logits [B * T * V] as a copy. */
function logitsOf(model: CausalLM, rows: number[][], mask?: number[][]): Float32Array {
  const out = noGrad(() => {
    const hidden = model.forward(ids2d(rows), { attentionMask: mask && ids2d(mask) });
    return model.logits(hidden).toFloat32Array();
  });
  endStep();
  return out;
}

for (const family of FAMILIES) {
  const dir = join(root, family);
  writeTinyModel(dir, family, { seed: FAMILIES.indexOf(family) + 1 });
  const model = loadModelFromDir(dir);
  const vocab = model.dims.vocabSize;

  test(`${family} logits match float64 reference`, () => {
    const got = logitsOf(model, [IDS]);
    const expected = referenceLogits(dir, IDS);
    expected.forEach((row, t) => {
      assertClose(got.subarray(t * vocab, (t + 1) * vocab), row, {
        atol: 1e-4,
        what: `${family} logits at ${t}`,
      });
    });
  });

  test(`${family} shapes with batch 2`, () => {
    noGrad(() => {
      const hidden = model.forward(ids2d([IDS.slice(0, 5), IDS.slice(4, 9)]));
      assert.deepEqual(hidden.shape, [2, 5, model.dims.hiddenSize]);
      assert.deepEqual(model.logits(hidden).shape, [2, 5, vocab]);
    });
    endStep();
  });

  test(`${family} KV cache equals full recompute`, () => {
    const full = logitsOf(model, [IDS]);
    const cache = model.createCache(1, IDS.length);
    const prefill = 4;
    const steps: Float32Array[] = [];
    noGrad(() => {
      const first = model.logits(model.forward(ids2d([IDS.slice(0, prefill)]), { cache }));
      steps.push(first.toFloat32Array().slice((prefill - 1) * vocab));
      endStep();
      for (let t = prefill; t < IDS.length; t++) {
        steps.push(model.logits(model.forward(ids2d([[IDS[t]]]), { cache })).toFloat32Array());
        endStep();
      }
    });
    cache.dispose();
    assert.equal(cache.length, IDS.length);
    steps.forEach((row, i) => {
      const t = prefill - 1 + i;
      assertClose(row, full.subarray(t * vocab, (t + 1) * vocab), {
        atol: 1e-5,
        what: `${family} cached logits at ${t}`,
      });
    });
  });

  test(`${family} left padding equals single rows`, () => {
    const long = IDS.slice(0, 7);
    const short = IDS.slice(2, 5);
    const pad = long.length - short.length;
    const batched = logitsOf(
      model,
      [long, [...Array<number>(pad).fill(0), ...short]],
      [long.map(() => 1), [...Array<number>(pad).fill(0), ...short.map(() => 1)]],
    );
    const alone = [logitsOf(model, [long]), logitsOf(model, [short])];
    const T = long.length;
    assertClose(batched.subarray(0, T * vocab), alone[0], { atol: 1e-5, what: "row 0" });
    assertClose(batched.subarray((T + pad) * vocab, 2 * T * vocab), alone[1], {
      atol: 1e-5,
      what: "row 1 real positions",
    });
  });

  test(`${family} loss equals cross-entropy of logits`, () => {
    const labels = IDS.map((id, t) => (t < 3 ? -100 : id));
    const loss = noGrad(() => model.loss(ids2d([IDS]), ids2d([labels])).item());
    endStep();
    const logits = logitsOf(model, [IDS]);
    let total = 0;
    let count = 0;
    for (let t = 0; t + 1 < IDS.length; t++) {
      if (labels[t + 1] === -100) continue;
      const row = Array.from(logits.subarray(t * vocab, (t + 1) * vocab));
      const max = Math.max(...row);
      const logSum = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      total += logSum - row[labels[t + 1]];
      count++;
    }
    assert.ok(Math.abs(loss - total / count) <= 1e-5, `loss ${loss}, expected ${total / count}`);
  });
}

test("qwen2 has q/k/v biases and no o_proj bias", () => {
  const model = loadModelFromDir(join(root, "qwen2"));
  const names = model.namedParameters().map(([name]) => name);
  for (const proj of ["q_proj", "k_proj", "v_proj"]) {
    assert.ok(names.includes(`model.layers.0.self_attn.${proj}.bias`), `${proj}.bias`);
  }
  assert.ok(!names.includes("model.layers.0.self_attn.o_proj.bias"));
  assert.ok(names.includes("lm_head.weight"), "qwen2 unties lm_head by default");
});

test("lm_head hook reaches the loss", () => {
  const model = loadModelFromDir(join(root, "qwen2"));
  const labels = [...IDS];
  const plain = noGrad(() => model.loss(ids2d([IDS]), ids2d([labels])).item());
  const lmHead = model.getModule("lm_head") as Linear;
  lmHead.hook = { forward: (_x, base) => scale(base, 2) };
  const hooked = noGrad(() => model.loss(ids2d([IDS]), ids2d([labels])).item());
  const logits = logitsOf(model, [IDS]);
  lmHead.hook = null;
  endStep();
  const vocab = model.dims.vocabSize;
  let total = 0;
  for (let t = 0; t + 1 < IDS.length; t++) {
    const row = Array.from(logits.subarray(t * vocab, (t + 1) * vocab));
    const max = Math.max(...row);
    total += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[IDS[t + 1]];
  }
  const expected = total / (IDS.length - 1);
  assert.ok(Math.abs(hooked - expected) <= 1e-5, `hooked loss ${hooked}, expected ${expected}`);
  assert.ok(Math.abs(hooked - plain) > 1e-3, "the hook changes the loss");
});

const VARIANTS: [TinyFamily, Record<string, unknown>][] = [
  ["gpt2", { scale_attn_by_inverse_layer_idx: true }],
  ["bloom", { apply_residual_connection_post_layernorm: true }],
  ["llama", { attention_bias: true, mlp_bias: true, tie_word_embeddings: false }],
  ["llama", { head_dim: 16, rope_scaling: { type: "linear", factor: 2 } }],
];

for (const [family, overrides] of VARIANTS) {
  test(`${family} ${Object.keys(overrides).join(", ")} match reference`, () => {
    const dir = join(root, `${family}-${Object.keys(overrides).join("-")}`);
    writeTinyModel(dir, family, { seed: 21, config: overrides });
    const model = loadModelFromDir(dir);
    const vocab = model.dims.vocabSize;
    const got = logitsOf(model, [IDS]);
    referenceLogits(dir, IDS).forEach((row, t) => {
      assertClose(got.subarray(t * vocab, (t + 1) * vocab), row, {
        atol: 1e-4,
        what: `${family} logits at ${t}`,
      });
    });
  });
}

test("alibi slopes for 8 and 6 heads", () => {
  assert.deepEqual(
    Array.from(alibiSlopes(8)),
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i),
  );
  assert.deepEqual(Array.from(alibiSlopes(6)), [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]);
});

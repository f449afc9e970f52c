// LoRA on a quantized frozen base: training learns about as well as on the unquantized base, and
// merging decodes the quantized weights instead of dropping the adapter.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  backward,
  endStep,
  noGrad,
  Tensor,
  zeroGrad,
  type QuantizeOption,
} from "../../src/engine/index.js";
import { AdamW } from "../../src/engine/optim.js";
import { loadAdapter, mergeAndUnload, trainableParameters } from "../../src/lora/index.js";
import { mergeCheckpoint } from "../../src/lora/merge-checkpoint.js";
import { disposeQuantized, loadModelFromDir, type CausalLM } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";

const STEPS = 30;

function tokens(rows: number[][]): Tensor {
  return Tensor.from(Int32Array.from(rows.flat()), [rows.length, rows[0].length], "i32", {
    persistent: true,
  });
}

function lossOf(model: CausalLM, ids: Tensor): number {
  const value = noGrad(() => model.loss(ids, ids).item());
  endStep();
  return value;
}

interface Curve {
  train: number[];
  validationBefore: number;
  validationAfter: number;
}

// Trains the PEFT init adapter for STEPS AdamW steps on three batches of TinyStories text,
// cycling through them, and returns the training losses and the loss on held-out stories.
function trainCurve(quantize: QuantizeOption): Curve {
  const trajectory = JSON.parse(
    readFileSync(fixture("reference/tinystories/lora_trajectory.json"), "utf8"),
  ) as { data: { batches: number[][][] } };
  const stories = JSON.parse(
    readFileSync(fixture("reference/tinystories/logits.json"), "utf8"),
  ) as { story_token_ids: number[][] };
  const batches = trajectory.data.batches.map(tokens);
  const validation = tokens(stories.story_token_ids.slice(4, 8).map((ids) => ids.slice(0, 48)));

  const model = loadModelFromDir(fixture("models/TinyStories-656K"), "auto", { quantize });
  loadAdapter(model, fixture("reference/tinystories/adapter-init"), { trainable: true });
  const params = trainableParameters(model).map(([, t]) => t);
  const optimizer = new AdamW(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  const validationBefore = lossOf(model, validation);
  const train: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const ids = batches[step % batches.length];
    zeroGrad(params);
    const loss = model.loss(ids, ids);
    train.push(loss.item());
    backward(loss);
    optimizer.step();
    endStep();
  }
  const validationAfter = lossOf(model, validation);
  disposeQuantized(model);
  model.dispose();
  return { train, validationBefore, validationAfter };
}

test("LoRA on quantized TinyStories learns", () => {
  const base = trainCurve("none");
  const format = (c: Curve): string =>
    `train ${c.train.map((v) => v.toFixed(3)).join(" ")}; validation ` +
    `${c.validationBefore.toFixed(4)} -> ${c.validationAfter.toFixed(4)}`;
  console.log(`bf16 base: ${format(base)}`);
  // The last pass over the three batches against the first one.
  const drop = (c: Curve): number =>
    c.train.slice(0, 3).reduce((a, b) => a + b) / 3 - c.train.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(drop(base) > 0.05, `the unquantized run learned too little: drop ${drop(base)}`);
  for (const kind of ["int8", "nf4"] as const) {
    const curve = trainCurve(kind);
    console.log(`${kind} base: ${format(curve)}`);
    assert.ok(
      drop(curve) >= 0.7 * drop(base),
      `${kind}: training loss fell ${drop(curve)}, the bf16 run ${drop(base)}`,
    );
    const validationDrop = curve.validationBefore - curve.validationAfter;
    const baseValidationDrop = base.validationBefore - base.validationAfter;
    assert.ok(
      validationDrop >= 0.5 * baseValidationDrop,
      `${kind}: validation loss fell ${validationDrop}, the bf16 run ${baseValidationDrop}`,
    );
  }
});

test("merge into quantized base keeps adapter", () => {
  const modelDir = fixture("reference/llama/model");
  const adapterDir = fixture("reference/llama/adapter");
  const ids = tokens([[1, 17, 300, 42, 9, 77]]);
  const logits = (m: CausalLM): Float32Array => {
    const out = noGrad(() => m.logits(m.forward(ids)).toFloat32Array());
    endStep();
    return out;
  };
  const model = loadModelFromDir(modelDir, "auto", { quantize: "nf4" });
  const plain = logits(model);
  loadAdapter(model, adapterDir);
  const adapted = logits(model);
  let changed = 0;
  for (let i = 0; i < plain.length; i++)
    changed = Math.max(changed, Math.abs(adapted[i] - plain[i]));
  assert.ok(changed > 1e-3, `the adapter changes the logits by only ${changed}`);

  // In memory: the adapted layers are decoded to the checkpoint's dtype (f32) and merged.
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (message: string) => warnings.push(message);
  try {
    mergeAndUnload(model);
  } finally {
    console.warn = warn;
  }
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /quantized base weights were decoded to f32, merged and stored as f32/);
  const merged = logits(model);
  for (let i = 0; i < merged.length; i++) {
    assert.ok(Math.abs(merged[i] - adapted[i]) < 1e-4, `merged logit ${i}`);
  }

  // On disk: the merged checkpoint loads (unquantized) to the same logits.
  const out = mkdtempSync(join(tmpdir(), "tslora-quant-merge-"));
  try {
    console.warn = () => {};
    try {
      mergeCheckpoint({ modelDir, adapterDir, outDir: join(out, "merged"), quantize: "nf4" });
    } finally {
      console.warn = warn;
    }
    const reloaded = loadModelFromDir(join(out, "merged"), "auto");
    assert.equal(reloaded.weightDtype, "f32");
    const fromDisk = logits(reloaded);
    for (let i = 0; i < fromDisk.length; i++) {
      assert.ok(Math.abs(fromDisk[i] - adapted[i]) < 1e-4, `reloaded logit ${i}`);
    }
    reloaded.dispose();
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  disposeQuantized(model);
  model.dispose();
});

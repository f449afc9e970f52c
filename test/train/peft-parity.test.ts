// Training parity with PEFT: 30 AdamW steps of LoRA on TinyStories-656K from the reference
// adapter-init, on the reference batches, must follow the reference loss trajectory and end at
// the reference adapter-final.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { Batch } from "../../src/data/batches.js";
import { AdamW, clipGradNorm, gradNorm } from "../../src/engine/optim.js";
import { batchLoss, countTargets } from "../../src/eval/loss.js";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { loadAdapter } from "../../src/lora/adapter-io.js";
import { trainableParameters } from "../../src/lora/adapters.js";
import { loadModel } from "../../src/models/index.js";
import { trainLoop, type BatchSource } from "../../src/train/trainer.js";
import { fixture } from "../helpers/fixtures.js";

interface Trajectory {
  losses: number[];
  grad_norms: number[];
  data: { batches: number[][][] };
}

/** Cycles through the reference batches: step s uses batch s mod 3. */
class FixedBatches implements BatchSource<Batch> {
  private index = 0;
  constructor(private readonly batches: Batch[]) {}
  get epoch(): number {
    return Math.floor(this.index / this.batches.length);
  }
  next(): Batch {
    return this.batches[this.index++ % this.batches.length];
  }
  position(): unknown {
    return this.index;
  }
  restore(position: unknown): void {
    this.index = position as number;
  }
}

function toBatch(rows: number[][]): Batch {
  const [B, T] = [rows.length, rows[0].length];
  const ids = Int32Array.from(rows.flat());
  return {
    inputIds: ids,
    labels: ids.slice(),
    attentionMask: new Int32Array(B * T).fill(1),
    batchSize: B,
    seqLen: T,
    exampleIndices: [],
    tokens: B * T,
    learnedTokens: B * T,
  };
}

test("LoRA training follows the PEFT trajectory", async () => {
  const reference = JSON.parse(
    readFileSync(fixture("reference/tinystories/lora_trajectory.json"), "utf8"),
  ) as Trajectory;
  const { model } = await loadModel(fixture("models/TinyStories-656K"), { dtype: "f32" });
  loadAdapter(model, fixture("reference/tinystories/adapter-init"), { trainable: true });
  const named = trainableParameters(model);
  const params = named.map(([, t]) => t);
  assert.equal(named.length, 16, "q, k, v, o in 2 layers, A and B each");
  const optimizer = new AdamW(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });

  const losses: number[] = [];
  const norms: number[] = [];
  model.train();
  const result = await trainLoop({
    params,
    optimizerStep: (lr) => optimizer.step(lr),
    clipGradNorm: (p, maxNorm) => clipGradNorm([...p], maxNorm),
    gradNorm: (p) => gradNorm([...p]),
    batches: new FixedBatches(reference.data.batches.map(toBatch)),
    lossOf: (batch) => batchLoss(model, batch),
    countTokens: (batch) => ({ lossTokens: countTargets(batch), tokens: batch.tokens }),
    schedule: { kind: "constant", lr: 1e-3, warmupSteps: 0, totalSteps: 30 },
    maxGradNorm: null,
    onStep: (m) => {
      losses.push(m.loss);
      norms.push(m.gradNorm);
    },
  });
  model.eval();
  assert.equal(result.step, 30);

  let worstLoss = 0;
  for (let s = 0; s < 30; s++) {
    const expected = reference.losses[s];
    worstLoss = Math.max(worstLoss, Math.abs(losses[s] - expected));
    assert.ok(
      Math.abs(losses[s] - expected) <= 1e-4,
      `step ${s}: loss ${losses[s]}, PEFT ${expected}`,
    );
    const normError = Math.abs(norms[s] - reference.grad_norms[s]) / reference.grad_norms[s];
    assert.ok(
      normError <= 1e-3,
      `step ${s}: grad norm ${norms[s]}, PEFT ${reference.grad_norms[s]}`,
    );
  }

  const final = readSafetensors(
    join(fixture("reference/tinystories/adapter-final"), "adapter_model.safetensors"),
  ).tensors;
  let worstWeight = 0;
  for (const [key, tensor] of named) {
    const stored = final.get(key);
    assert.ok(stored !== undefined, `adapter-final has no ${key}`);
    const expected = decodeToFloat32(stored.data, stored.dtype, key);
    const actual = tensor.f32();
    for (let i = 0; i < expected.length; i++) {
      worstWeight = Math.max(worstWeight, Math.abs(actual[i] - expected[i]));
    }
  }
  assert.ok(worstWeight <= 1e-4, `adapter-final differs by ${worstWeight}`);
  console.log(
    `max loss error ${worstLoss.toExponential(2)}, max weight error ${worstWeight.toExponential(2)}`,
  );
});

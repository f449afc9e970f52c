// Freeing the forward intermediates that no backward reads (freeUnsaved around each block).
// Each case trains one step twice on two identical models: once with every intermediate kept
// until endStep(), once with freeUnsaved on and freed memory filled with NaN. A backward that
// read memory its op did not declare as saved would then see NaN; the loss and every LoRA
// gradient must instead be bitwise equal, and the forward must hold fewer bytes.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  backward,
  endStep,
  freeUnsaved,
  Tensor,
  zeroGrad,
  type QuantizeOption,
} from "../../src/engine/index.js";
import { getArena, getHeap } from "../../src/engine/memory.js";
import { Rng } from "../../src/engine/random.js";
import { record, setFreeUnsaved } from "../../src/engine/tape.js";
import { setPoisonFreedMemory } from "../../src/engine/tensor.js";
import { applyLora, trainableParameters } from "../../src/lora/index.js";
import { loadModelFromDir, type CausalLM } from "../../src/models/index.js";
import { enableGradientCheckpointing } from "../../src/train/checkpointing.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const root = mkdtempSync(join(tmpdir(), "tslora-free-unsaved-"));
after(() => rmSync(root, { recursive: true, force: true }));

interface Case {
  family: TinyFamily;
  targets: string[] | "all-linear";
  checkpointing?: boolean;
  quantize?: QuantizeOption;
  dropout?: number;
}

const CASES: Case[] = [
  { family: "gpt2", targets: ["c_attn"] },
  { family: "gpt2", targets: "all-linear", dropout: 0.1 },
  { family: "gpt2", targets: ["c_attn"], checkpointing: true },
  { family: "llama", targets: ["q_proj", "v_proj"] },
  { family: "llama", targets: "all-linear", dropout: 0.1 },
  { family: "llama", targets: ["q_proj", "k_proj", "v_proj", "o_proj"], checkpointing: true },
  { family: "llama", targets: ["q_proj", "v_proj"], quantize: "int8" },
  { family: "llama", targets: ["q_proj", "v_proj"], quantize: "nf4", checkpointing: true },
  { family: "qwen2", targets: ["q_proj", "v_proj"] },
  { family: "bloom", targets: ["query_key_value"] },
  { family: "bloom", targets: "all-linear", checkpointing: true },
];

function describeCase(c: Case): string {
  const targets = c.targets === "all-linear" ? c.targets : c.targets.join(",");
  const extras = [
    c.checkpointing === true ? "checkpointing" : "",
    c.quantize !== undefined ? c.quantize : "",
    c.dropout !== undefined ? `dropout ${c.dropout}` : "",
  ].filter((s) => s !== "");
  const suffix = extras.length > 0 ? ` (${extras.join(", ")})` : "";
  return `${c.family} ${targets}${suffix}`;
}

function buildModel(dir: string, c: Case): CausalLM {
  const model = loadModelFromDir(dir, "f32", { quantize: c.quantize });
  applyLora(
    model,
    {
      r: 4,
      lora_alpha: 8,
      lora_dropout: c.dropout ?? 0,
      target_modules: c.targets,
      init_lora_weights: false,
    },
    { rng: new Rng(11) },
  );
  if (c.checkpointing === true) enableGradientCheckpointing(model);
  model.train();
  return model;
}

interface Step {
  loss: number;
  grads: Float32Array[];
  /** Bytes of step memory held once forward and loss return: arena plus scratch heap. */
  forwardBytes: number;
}

function trainStep(model: CausalLM, ids: Tensor): Step {
  const params = trainableParameters(model).map(([, t]) => t);
  zeroGrad(params);
  endStep();
  const heapBefore = getHeap().bytesInUse;
  const loss = model.loss(ids, ids);
  const forwardBytes = getHeap().bytesInUse - heapBefore + getArena().mark().used;
  const value = loss.item();
  backward(loss);
  const grads = params.map((p) => p.grad?.f32().slice() ?? new Float32Array(0));
  endStep();
  return { loss: value, grads, forwardBytes };
}

/** Runs a warm-up step (arena chunk, packing buffers), then the measured one. */
function measure(model: CausalLM, ids: Tensor, freeing: boolean): Step {
  const previousFreeing = setFreeUnsaved(freeing);
  const previousPoison = setPoisonFreedMemory(freeing);
  try {
    trainStep(model, ids);
    return trainStep(model, ids);
  } finally {
    setFreeUnsaved(previousFreeing);
    setPoisonFreedMemory(previousPoison);
  }
}

CASES.forEach((c, index) => {
  test(`${describeCase(c)}: gradients unchanged`, () => {
    const dir = join(root, `model-${index}`);
    writeTinyModel(dir, c.family, { seed: 5 + index });
    const ids = Tensor.from(
      Int32Array.from({ length: 24 }, (_, i) => (i * 11 + index) % 64),
      [2, 12],
      "i32",
      { persistent: true },
    );
    const kept = measure(buildModel(dir, c), ids, false);
    const freed = measure(buildModel(dir, c), ids, true);

    assert.ok(Number.isFinite(kept.loss), `loss ${kept.loss}`);
    assert.equal(freed.loss, kept.loss);
    assert.equal(freed.grads.length, kept.grads.length);
    kept.grads.forEach((g, i) => {
      assert.ok(g.length > 0 && g.some((v) => v !== 0), `gradient ${i} is empty or zero`);
      assert.deepEqual(freed.grads[i], g, `gradient ${i} differs`);
    });
    if (c.checkpointing !== true) {
      // Checkpointing keeps only block inputs in the forward pass either way.
      assert.ok(
        freed.forwardBytes < 0.85 * kept.forwardBytes,
        `forward holds ${freed.forwardBytes} bytes freed against ${kept.forwardBytes} kept`,
      );
    }
  });
});

test("undeclared saves keep everything", () => {
  const w = Tensor.from([1, 2, 3], [3], "f32", { persistent: true, requiresGrad: true });
  // An op with an undeclared save: its backward reads `hidden`, a buffer made in its forward.
  const opaque = (x: Tensor): Tensor => {
    const hidden = Tensor.from(
      x.toFloat32Array().map((v) => 2 * v),
      [3],
    );
    const out = Tensor.from([hidden.f32().reduce((s, v) => s + v, 0)], [1]);
    return record(out, "opaque", [x], () => [Tensor.from(hidden.toFloat32Array(), [3])]);
  };
  const previous = setPoisonFreedMemory(true);
  try {
    endStep();
    const loss = freeUnsaved(() => opaque(w));
    backward(loss);
    assert.deepEqual(Array.from(w.grad?.f32() ?? []), [2, 4, 6]);
    endStep();
  } finally {
    setPoisonFreedMemory(previous);
  }
});

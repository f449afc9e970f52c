// Quantized frozen bases against their f32 originals: logits stay close, the loss barely moves,
// and only the Linear layers of the transformer blocks are quantized.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { endStep, noGrad, Tensor, type QuantKind } from "../../src/engine/index.js";
import { Linear } from "../../src/nn/linear.js";
import {
  disposeQuantized,
  loadModelFromDir,
  quantizableLinears,
  quantizeModel,
  type CausalLM,
  type QuantizeSummary,
} from "../../src/models/index.js";
import { getHeap } from "../../src/engine/memory.js";
import { fixture } from "../helpers/fixtures.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

function row(ids: readonly number[]): Tensor {
  return Tensor.from(Int32Array.from(ids), [1, ids.length], "i32");
}

function logitsOf(model: CausalLM, ids: readonly number[]): Float32Array {
  const logits = noGrad(() => model.logits(model.forward(row(ids))).toFloat32Array());
  endStep();
  return logits;
}

// Mean loss over every predicted token of the sequences (labels = inputs).
function meanLoss(model: CausalLM, sequences: readonly (readonly number[])[]): number {
  let total = 0;
  let count = 0;
  for (const ids of sequences) {
    total += noGrad(() => model.loss(row(ids), row(ids)).item()) * (ids.length - 1);
    count += ids.length - 1;
    endStep();
  }
  return total / count;
}

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function meanAbs(a: Float32Array): number {
  let sum = 0;
  for (const v of a) sum += Math.abs(v);
  return sum / a.length;
}

interface Case {
  name: string;
  dir: string;
  sequences: () => number[][];
  /** Bounds on the mean |logit difference| relative to the mean |logit|, per format. */
  logitBound: Record<QuantKind, number>;
  /** Bounds on |loss change| in nats, per format. */
  lossBound: Record<QuantKind, number>;
}

const CASES: Case[] = [
  {
    name: "reference llama",
    dir: "reference/llama/model",
    sequences: () => {
      const inputs = JSON.parse(readFileSync(fixture("reference/llama/inputs.json"), "utf8")) as {
        input_ids: number[][];
      };
      return [inputs.input_ids[0], inputs.input_ids[1].slice(0, 8)];
    },
    // Random weights give small logits, so the relative difference is larger than for trained ones.
    logitBound: { int8: 0.05, nf4: 0.6 },
    lossBound: { int8: 0.02, nf4: 0.2 },
  },
  {
    // Conv1D weights stored [in, out].
    name: "reference gpt2",
    dir: "reference/gpt2/model",
    sequences: () => {
      const inputs = JSON.parse(readFileSync(fixture("reference/gpt2/inputs.json"), "utf8")) as {
        input_ids: number[][];
      };
      return [inputs.input_ids[0], inputs.input_ids[1].slice(0, 8)];
    },
    logitBound: { int8: 0.05, nf4: 0.6 },
    lossBound: { int8: 0.02, nf4: 0.2 },
  },
  {
    name: "TinyStories-656K",
    dir: "models/TinyStories-656K",
    sequences: () => {
      const reference = JSON.parse(
        readFileSync(fixture("reference/tinystories/logits.json"), "utf8"),
      ) as { story_token_ids: number[][] };
      return reference.story_token_ids.slice(0, 4).map((ids) => ids.slice(0, 64));
    },
    logitBound: { int8: 0.02, nf4: 0.2 },
    lossBound: { int8: 0.01, nf4: 0.08 },
  },
];

for (const c of CASES) {
  test(`${c.name} quantized logits stay close`, () => {
    const dir = fixture(c.dir);
    const sequences = c.sequences();
    const base = loadModelFromDir(dir, "f32");
    const baseLogits = logitsOf(base, sequences[0]);
    const baseLoss = meanLoss(base, sequences);
    for (const kind of ["int8", "nf4"] as QuantKind[]) {
      const summary: QuantizeSummary = { kind, layers: 0, bytesBefore: 0, bytesAfter: 0 };
      const model = loadModelFromDir(dir, "f32", { quantize: kind, summary });
      const logits = logitsOf(model, sequences[0]);
      const loss = meanLoss(model, sequences);
      const diff = meanAbsDiff(logits, baseLogits);
      const relative = diff / meanAbs(baseLogits);
      console.log(
        `${c.name} ${kind}: mean |logit diff| ${diff.toExponential(3)} ` +
          `(${(relative * 100).toFixed(2)}% of mean |logit|), loss ${baseLoss.toFixed(5)} -> ` +
          `${loss.toFixed(5)} (${(loss - baseLoss).toFixed(5)}), block weights ` +
          `${summary.bytesBefore} -> ${summary.bytesAfter} bytes in ${summary.layers} layers`,
      );
      assert.ok(relative < c.logitBound[kind], `${kind}: relative logit diff ${relative}`);
      assert.ok(Math.abs(loss - baseLoss) < c.lossBound[kind], `${kind}: loss ${loss}`);
      const ratio = summary.bytesAfter / summary.bytesBefore;
      assert.ok(ratio < (kind === "int8" ? 0.27 : 0.15), `${kind}: memory ratio ${ratio}`);
      disposeQuantized(model);
      model.dispose();
    }
    base.dispose();
  });
}

test("quantization covers the block linears only", () => {
  const model = loadModelFromDir(fixture("models/TinyStories-656K"), "f32", { quantize: "nf4" });
  const quantized = quantizableLinears(model);
  // 2 layers x (q, k, v, o, gate, up, down).
  assert.equal(quantized.length, 14);
  for (const [path, linear] of quantized) {
    assert.ok(/^model\.layers\.\d+\./.test(path), path);
    assert.equal(linear.quantizedWeight?.kind, "nf4");
  }
  for (const [path, module] of model.namedModules()) {
    if (module instanceof Linear && !/^model\.layers\./.test(path)) {
      assert.equal(module.quantizedWeight, null, path);
    }
  }
  const embedding = model.namedParameters().find(([p]) => p === "model.embed_tokens.weight");
  assert.equal(embedding?.[1].dtype, "f32");
  assert.ok(embedding?.[1].toFloat32Array().some((v) => v !== 0));
  disposeQuantized(model);
  model.dispose();
});

test("post-load quantization matches quantizing loader", () => {
  const dir = fixture("reference/llama/model");
  const loaded = loadModelFromDir(dir, "f32", { quantize: "int8" });
  const later = loadModelFromDir(dir, "f32");
  const summary = quantizeModel(later, "int8");
  assert.equal(summary.layers, quantizableLinears(later).length);
  const ids = [1, 5, 9, 30, 7];
  assert.deepEqual(logitsOf(later, ids), logitsOf(loaded, ids));
  // A second pass leaves quantized layers alone.
  assert.equal(quantizeModel(later, "int8").layers, 0);
  for (const m of [loaded, later]) {
    disposeQuantized(m);
    m.dispose();
  }
});

test("dispose frees quantized weights", () => {
  const model = loadModelFromDir(fixture("reference/llama/model"), "f32", { quantize: "nf4" });
  const quantized = quantizableLinears(model).map(([, linear]) => linear.quantizedWeight);
  model.dispose();
  for (const q of quantized) assert.throws(() => q?.toFloat32Array(), /disposed/);
});

// Loading with quantization never allocates the float block weights: the heap's peak during the
// load is what the model keeps. Qwen2's untied output layer stays float and must still load.
// GPT-2 stores its Linear weights [in, out].
for (const family of ["qwen2", "gpt2"] as const) {
  test(`quantized ${family} loading allocates only what it keeps`, () => {
    const dir = mkdtempSync(join(tmpdir(), "tslora-quant-load-"));
    try {
      writeTinyModel(dir, family);
      const heap = getHeap();
      const before = heap.bytesInUse;
      heap.resetPeak();
      const model = loadModelFromDir(dir, "f32", { quantize: "int8" });
      assert.equal(heap.peakBytes, heap.bytesInUse);
      const quantizedBytes = quantizableLinears(model).reduce(
        (bytes, [, linear]) => bytes + (linear.quantizedWeight?.byteLength ?? 0),
        0,
      );
      assert.ok(heap.bytesInUse - before >= quantizedBytes);
      const later = loadModelFromDir(dir, "f32");
      if (family === "qwen2") {
        const head = (m: CausalLM) => m.lmHeadWeight().toFloat32Array();
        assert.equal(model.lmHeadWeight().dtype, "f32");
        assert.deepEqual(head(model), head(later));
      }
      quantizeModel(later, "int8");
      const ids = [1, 5, 9, 30, 7];
      assert.deepEqual(logitsOf(model, ids), logitsOf(later, ids));
      for (const m of [model, later]) {
        disposeQuantized(m);
        m.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors, type RawTensor } from "../../src/io/safetensors.js";
import { addLoraDelta } from "../../src/lora/merge.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";
import { randomArray } from "../helpers/random.js";

function values(t: RawTensor | undefined, what: string): Float32Array {
  assert.ok(t !== undefined, `${what} is missing`);
  return decodeToFloat32(t.data, t.dtype, what);
}

/** Merges reference/<arch>/adapter into model/ with addLoraDelta and compares with merged/. */
function checkMergedFixture(arch: string, modules: string[], layout: "outIn" | "inOut"): void {
  const base = readSafetensors(fixture(`reference/${arch}/model/model.safetensors`)).tensors;
  const merged = readSafetensors(fixture(`reference/${arch}/merged/model.safetensors`)).tensors;
  const adapter = readSafetensors(
    fixture(`reference/${arch}/adapter/adapter_model.safetensors`),
  ).tensors;
  assert.deepEqual([...merged.keys()].sort(), [...base.keys()].sort());
  const scaling = 2; // lora_alpha 8 / r 4
  for (const path of modules) {
    const w = base.get(`${path}.weight`);
    assert.ok(w !== undefined);
    const A = values(adapter.get(`base_model.model.${path}.lora_A.weight`), "lora_A");
    const B = values(adapter.get(`base_model.model.${path}.lora_B.weight`), "lora_B");
    const r = A.length / (layout === "outIn" ? w.shape[1] : w.shape[0]);
    const [inF, outF] = layout === "outIn" ? [w.shape[1], w.shape[0]] : [w.shape[0], w.shape[1]];
    const ours = values(w, path);
    addLoraDelta(ours, layout, inF, outF, { A, B, r, scaling }, 1);
    assertClose(ours, values(merged.get(`${path}.weight`), path), { atol: 1e-6, what: path });
    // Unmerging restores the base weight up to f32 rounding.
    addLoraDelta(ours, layout, inF, outF, { A, B, r, scaling }, -1);
    assertClose(ours, values(w, path), { atol: 1e-6, what: `${path} unmerged` });
  }
  // Every tensor the adapter does not touch is bitwise unchanged.
  for (const [name, t] of base) {
    if (modules.some((m) => name === `${m}.weight`)) continue;
    assert.deepEqual(merged.get(name)?.data, t.data, name);
  }
}

test("merge matches PEFT for GPT-2 Conv1D", () => {
  checkMergedFixture(
    "gpt2",
    ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"],
    "inOut",
  );
});

test("merge matches PEFT for Llama Linear", () => {
  checkMergedFixture(
    "llama",
    [
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.v_proj",
    ],
    "outIn",
  );
});

test("addLoraDelta matches an f64 reference", () => {
  const [inF, outF, r, s] = [7, 5, 3, 0.75];
  const A = randomArray(r * inF, 1);
  const B = randomArray(outF * r, 2);
  const W = randomArray(outF * inF, 3);
  const expected = new Float64Array(W);
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += B[o * r + k] * A[k * inF + i];
      expected[o * inF + i] += s * d;
    }
  }
  const outIn = W.slice();
  addLoraDelta(outIn, "outIn", inF, outF, { A, B, r, scaling: s }, 1);
  assertClose(outIn, expected, { atol: 1e-6, what: "outIn" });
  // The [in, out] layout gets the transpose of the same delta.
  const inOut = new Float32Array(inF * outF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) inOut[i * outF + o] = W[o * inF + i];
  addLoraDelta(inOut, "inOut", inF, outF, { A, B, r, scaling: s }, 1);
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      assert.ok(Math.abs(inOut[i * outF + o] - expected[o * inF + i]) < 1e-6, `[${i}, ${o}]`);
    }
  }
});

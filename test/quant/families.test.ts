// Every model family under quantization: the quantized model computes what the f32 model computes
// with each block weight replaced by its quantized-then-decoded values.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad, quantizeRoundTrip, Tensor } from "../../src/engine/index.js";
import { loadModelFromDir, quantizableLinears, type CausalLM } from "../../src/models/index.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const root = mkdtempSync(join(tmpdir(), "tslora-quant-families-"));
after(() => rmSync(root, { recursive: true, force: true }));

function logitsOf(model: CausalLM, ids: number[]): Float32Array {
  const input = Tensor.from(Int32Array.from(ids), [1, ids.length], "i32");
  const logits = noGrad(() => model.logits(model.forward(input)).toFloat32Array());
  endStep();
  return logits;
}

const FAMILIES: [TinyFamily, { bareNames?: boolean }][] = [
  ["gpt2", {}],
  ["gpt2", { bareNames: true }],
  ["llama", {}],
  ["qwen2", {}],
  ["mistral", {}],
  ["bloom", { bareNames: true }],
];

for (const [family, options] of FAMILIES) {
  for (const kind of ["int8", "nf4"] as const) {
    const variant = options.bareNames ? " bare names" : "";
    test(`${family}${variant} ${kind} matches decoded weights`, () => {
      const dir = join(root, `${family}${options.bareNames ? "-bare" : ""}`);
      writeTinyModel(dir, family, { seed: 3, ...options });
      const quantized = loadModelFromDir(dir, "f32", { quantize: kind });
      const reference = loadModelFromDir(dir, "f32");
      const linears = quantizableLinears(reference);
      assert.ok(linears.length >= 8, `${linears.length} quantizable linears`);
      for (const [, linear] of linears) {
        const values = linear.weight.toFloat32Array();
        const { outFeatures, inFeatures, layout } = linear;
        linear.weight.f32().set(quantizeRoundTrip(kind, values, outFeatures, inFeatures, layout));
      }
      const ids = [1, 5, 9, 2, 33, 17, 8];
      const got = logitsOf(quantized, ids);
      const expected = logitsOf(reference, ids);
      for (let i = 0; i < got.length; i++) {
        assert.ok(Math.abs(got[i] - expected[i]) < 1e-4, `logit ${i}: ${got[i]} vs ${expected[i]}`);
      }
      quantized.dispose();
      reference.dispose();
    });
  }
}

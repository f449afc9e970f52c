// Checkpoint loading: name prefixes, tied weights stored either way, stored dtypes, and the
// errors for mismatched, missing and unexpected tensors and unknown architectures.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad, Tensor, type QuantizeOption } from "../../src/engine/index.js";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/types.js";
import { loadModelFromDir, type LoadDType } from "../../src/models/weights.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const root = mkdtempSync(join(tmpdir(), "tslora-weights-"));
after(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

function tinyDir(family: TinyFamily, options: Parameters<typeof writeTinyModel>[2] = {}): string {
  const dir = join(root, `${family}-${folders++}`);
  writeTinyModel(dir, family, { seed: 7, ...options });
  return dir;
}

function logitsOf(model: CausalLM): Float32Array {
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 2, 33]), [1, 5], "i32");
  const out = noGrad(() => model.logits(model.forward(ids)).toFloat32Array());
  endStep();
  return out;
}

/** Rewrites dir/model.safetensors through `edit`, which may drop, add or replace tensors. */
function editCheckpoint(
  dir: string,
  edit: (
    tensors: Map<string, { name: string; dtype: "F32"; shape: number[]; data: Uint8Array }>,
  ) => void,
): void {
  const path = join(dir, "model.safetensors");
  const { tensors } = readSafetensors(path);
  const map = new Map([...tensors].map(([k, t]) => [k, { ...t, dtype: "F32" as const }]));
  edit(map);
  writeSafetensors(path, [...map.values()]);
}

for (const family of ["gpt2", "bloom", "llama"] as const) {
  test(`${family} loads names without prefix`, () => {
    const full = logitsOf(loadModelFromDir(tinyDir(family)));
    const bare = logitsOf(loadModelFromDir(tinyDir(family, { bareNames: true })));
    assert.deepEqual(bare, full);
  });
}

test("tied embedding stored as lm_head loads", () => {
  const asEmbedding = loadModelFromDir(tinyDir("llama"));
  const asLmHead = loadModelFromDir(tinyDir("llama", { tiedAsLmHead: true }));
  assert.deepEqual(logitsOf(asLmHead), logitsOf(asEmbedding));
});

test("bf16 checkpoint keeps bf16 or upcasts", () => {
  const dir = tinyDir("llama", { dtype: "BF16" });
  const kept = loadModelFromDir(dir, "auto");
  const upcast = loadModelFromDir(dir, "f32");
  assert.equal(kept.weightDtype, "bf16");
  assert.equal(upcast.weightDtype, "f32");
  const q = kept.namedParameters().find(([n]) => n.endsWith("q_proj.weight"));
  assert.equal(q?.[1].dtype, "bf16");
  assertClose(logitsOf(kept), logitsOf(upcast), { atol: 1e-5, what: "bf16 vs upcast logits" });
});

test("f32 checkpoint stored as bf16 on request", () => {
  const dir = tinyDir("gpt2");
  const model = loadModelFromDir(dir, "bf16");
  assert.equal(model.weightDtype, "bf16");
  const f32 = loadModelFromDir(dir, "f32");
  // Rounding the weights to bf16 moves the logits a little, not a lot.
  assertClose(logitsOf(model), logitsOf(f32), { atol: 0.1, what: "bf16 vs f32 logits" });
});

test("shape mismatch names tensor, shapes and file", () => {
  const dir = tinyDir("llama");
  const configPath = join(dir, "config.json");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  writeFileSync(configPath, JSON.stringify({ ...config, intermediate_size: 40 }));
  assert.throws(
    () => loadModelFromDir(dir),
    (err: Error) => {
      assert.match(err.message, /model\.layers\.0\.mlp\.gate_proj\.weight/);
      assert.match(err.message, /stored \[48, 32\], config expects \[40, 32\]/);
      assert.match(err.message, /model\.safetensors/);
      assert.match(err.message, /shape mismatches \(6\)/);
      return true;
    },
  );
});

test("missing and unexpected tensors in one error", () => {
  const dir = tinyDir("gpt2");
  editCheckpoint(dir, (tensors) => {
    tensors.delete("transformer.h.1.ln_2.bias");
    tensors.delete("transformer.wpe.weight");
    tensors.set("transformer.h.9.extra.weight", {
      name: "transformer.h.9.extra.weight",
      dtype: "F32",
      shape: [1],
      data: new Uint8Array(4),
    });
  });
  assert.throws(
    () => loadModelFromDir(dir),
    (err: Error) => {
      assert.match(err.message, /missing tensors \(2\)/);
      assert.match(err.message, /transformer\.h\.1\.ln_2\.bias/);
      assert.match(err.message, /transformer\.wpe\.weight/);
      assert.match(err.message, /unexpected tensors \(1\)/);
      assert.match(err.message, /transformer\.h\.9\.extra\.weight/);
      return true;
    },
  );
});

test("unknown model_type lists known types", () => {
  const dir = tinyDir("llama");
  const configPath = join(dir, "config.json");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  writeFileSync(configPath, JSON.stringify({ ...config, model_type: "falcon" }));
  assert.throws(
    () => loadModelFromDir(dir),
    /unknown model_type "falcon".*gpt2, llama, mistral, qwen2, bloom/,
  );
});

test("loadModel without tokenizer.json fails", async () => {
  const dir = tinyDir("llama");
  await assert.rejects(loadModel(dir), /tokenizer\.json not found/);
});

test("loadModel returns model, tokenizer and folder", async () => {
  const source = fixture("models/stories260K");
  const dir = tinyDir("llama", { config: { vocab_size: 512 }, tokenizerFrom: source });
  const loaded = await loadModel(dir);
  assert.equal(loaded.dir, dir);
  assert.equal(loaded.model.modelType, "llama");
  assert.equal(loaded.tokenizer.bosTokenId, 1);
});

test("loadModel rejects unknown dtype and quantize", async () => {
  const dir = tinyDir("llama", { tokenizerFrom: fixture("models/stories260K") });
  const dtype = "f64" as LoadDType;
  await assert.rejects(
    loadModel(dir, { dtype }),
    /^Error: loadModel: invalid dtype "f64"; expected one of "auto", "f32", "bf16"$/,
  );
  const quantize = "int4" as QuantizeOption;
  await assert.rejects(
    loadModel(dir, { quantize }),
    /^Error: loadModel: invalid quantize "int4"; expected one of "none", "int8", "nf4"$/,
  );
});

test("loadModelFromDir rejects unknown dtype and quantize", () => {
  const dir = tinyDir("llama");
  assert.throws(
    () => loadModelFromDir(dir, "f16" as LoadDType),
    /^Error: loadModelFromDir: invalid dtype "f16"; expected one of "auto", "f32", "bf16"$/,
  );
  assert.throws(
    () => loadModelFromDir(dir, "f32", { quantize: "int4" as QuantizeOption }),
    /^Error: loadModelFromDir: invalid quantize "int4"; expected one of "none", "int8", "nf4"$/,
  );
});

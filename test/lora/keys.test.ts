import assert from "node:assert/strict";
import { test } from "node:test";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import {
  matchAdapterTensors,
  parseKey,
  safetensorsOrder,
  type ExpectedAdapter,
  type TensorEntry,
} from "../../src/lora/keys.js";
import { fixture } from "../helpers/fixtures.js";

function headerEntries(rel: string): TensorEntry[] {
  const file = SafetensorsFile.open(fixture(rel));
  try {
    return file.names.map((name) => {
      const info = file.info(name);
      return { name, dtype: info.dtype, shape: info.shape };
    });
  } finally {
    file.close();
  }
}

function gpt2Expected(r = 4): ExpectedAdapter {
  const lora = new Map([
    ["transformer.h.0.attn.c_attn", { r, inFeatures: 64, outFeatures: 192 }],
    ["transformer.h.1.attn.c_attn", { r, inFeatures: 64, outFeatures: 192 }],
  ]);
  return { lora, params: new Map(), rankSource: `adapter_config.json (r = ${r})` };
}

test("parseKey accepts PEFT key variants", () => {
  assert.deepEqual(parseKey("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), {
    kind: "lora",
    modulePath: "model.layers.0.self_attn.q_proj",
    which: "lora_A",
  });
  assert.deepEqual(parseKey("base_model.model.transformer.h.0.attn.c_attn.lora_B.default.weight"), {
    kind: "lora",
    modulePath: "transformer.h.0.attn.c_attn",
    which: "lora_B",
  });
  assert.deepEqual(parseKey("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias"), {
    kind: "param",
    paramPath: "transformer.h.0.attn.c_attn.bias",
  });
  assert.deepEqual(parseKey("base_model.model.lm_head.modules_to_save.default.weight"), {
    kind: "param",
    paramPath: "lm_head.weight",
  });
  assert.equal(parseKey("model.layers.0.self_attn.q_proj.lora_A.weight").kind, "invalid");
  assert.equal(parseKey("base_model.model.x.lora_magnitude_vector.weight").kind, "invalid");
});

test("fixture adapter matches the expected layout", () => {
  const entries = headerEntries("reference/gpt2/adapter/adapter_model.safetensors");
  const match = matchAdapterTensors(entries, gpt2Expected());
  assert.deepEqual(match.problems, []);
  assert.equal(match.lora.size, 2);
});

test("bad adapter gives one list of every problem", () => {
  const entries = headerEntries("reference/gpt2/adapter/adapter_model.safetensors");
  const bad: TensorEntry[] = entries
    // a missing key
    .filter((e) => e.name !== "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight")
    // a key without the prefix
    .map((e) =>
      e.name === "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"
        ? { ...e, name: "transformer.h.1.attn.c_attn.lora_A.weight" }
        : e,
    );
  // an extra key and a module that is not a target
  bad.push({
    name: "base_model.model.transformer.h.0.attn.c_proj.lora_A.weight",
    dtype: "F32",
    shape: [4, 64],
  });
  bad.push({ name: "base_model.model.transformer.wte.extra", dtype: "F32", shape: [3] });
  const match = matchAdapterTensors(bad, gpt2Expected());
  const text = match.problems.join("\n");
  assert.match(text, /missing key "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"/);
  assert.match(text, /missing key "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"/);
  assert.match(
    text,
    /unexpected key "transformer.h.1.attn.c_attn.lora_A.weight": it does not start with "base_model.model."/,
  );
  assert.match(text, /"transformer.h.0.attn.c_proj" is not a target module/);
  assert.match(text, /unexpected key "base_model.model.transformer.wte.extra"/);
  assert.equal(match.problems.length, 5);
});

test("wrong r is reported with both shapes", () => {
  const entries = headerEntries("reference/gpt2/adapter/adapter_model.safetensors");
  const match = matchAdapterTensors(entries, gpt2Expected(8));
  assert.equal(match.problems.length, 4);
  assert.match(
    match.problems.join("\n"),
    /"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight" has shape \[4, 64\], expected \[8, 64\] = \[r, in_features\] \(r = 8 from adapter_config.json \(r = 8\)\)/,
  );
});

test("safetensorsOrder reproduces the fixture headers", () => {
  for (const rel of [
    "reference/gpt2/adapter-all-linear/adapter_model.safetensors",
    "reference/llama/adapter-all-linear/adapter_model.safetensors",
    "reference/llama/model/model.safetensors",
  ]) {
    const entries = headerEntries(rel);
    const shuffled = [...entries].reverse();
    assert.deepEqual(
      safetensorsOrder(shuffled).map((e) => e.name),
      entries.map((e) => e.name),
      rel,
    );
  }
});

test("safetensorsOrder puts wider dtypes first", () => {
  const order = safetensorsOrder([
    { name: "a", dtype: "BF16" },
    { name: "b", dtype: "F32" },
    { name: "c", dtype: "I64" },
  ]).map((e) => e.name);
  assert.deepEqual(order, ["c", "b", "a"]);
});

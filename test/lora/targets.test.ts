import assert from "node:assert/strict";
import { test } from "node:test";
import { loraConfig } from "../../src/lora/config.js";
import {
  collectTargets,
  layerIndexOf,
  patternKeyFor,
  rankAndAlphaFor,
  selectTargets,
  type ModuleEntry,
} from "../../src/lora/targets.js";

function llamaModules(layers: number): ModuleEntry[] {
  const out: ModuleEntry[] = [
    { path: "", typeName: "LlamaForCausalLM", isLinear: false },
    { path: "model", typeName: "LlamaModel", isLinear: false },
    { path: "model.embed_tokens", typeName: "Embedding", isLinear: false },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    out.push({ path: p, typeName: "LlamaDecoderLayer", isLinear: false });
    out.push({ path: `${p}.self_attn`, typeName: "LlamaAttention", isLinear: false });
    for (const n of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
      out.push({ path: `${p}.self_attn.${n}`, typeName: "Linear", isLinear: true });
    }
    out.push({ path: `${p}.mlp`, typeName: "LlamaMLP", isLinear: false });
    for (const n of ["gate_proj", "up_proj", "down_proj"]) {
      out.push({ path: `${p}.mlp.${n}`, typeName: "Linear", isLinear: true });
    }
    out.push({ path: `${p}.input_layernorm`, typeName: "RMSNorm", isLinear: false });
  }
  out.push({ path: "lm_head", typeName: "Linear", isLinear: true });
  return out;
}

const LLAMA = { modelType: "llama", outputLayerPaths: ["lm_head"] };

test("family default targets for llama", () => {
  const s = selectTargets(loraConfig(), llamaModules(2), LLAMA);
  assert.deepEqual(s.paths, [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
  ]);
  assert.deepEqual(s.resolved, { kind: "names", names: ["q_proj", "v_proj"] });
});

test("names match whole path segments only", () => {
  // "proj" must not match "q_proj": a suffix match needs a dot before the name.
  const r = collectTargets(loraConfig({ target_modules: ["proj"] }), llamaModules(1), LLAMA);
  assert.deepEqual(r.paths, []);
  assert.match(r.problems[0], /target module "proj" matches no module/);
  const s = selectTargets(loraConfig({ target_modules: ["mlp.up_proj"] }), llamaModules(2), LLAMA);
  assert.deepEqual(s.paths, ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"]);
});

test("regex must match the whole path", () => {
  const s = selectTargets(
    loraConfig({ target_modules: ".*\\.1\\.self_attn\\.(q|k)_proj" }),
    llamaModules(2),
    LLAMA,
  );
  assert.deepEqual(s.paths, ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj"]);
  // A partial match is not enough (re.fullmatch).
  const r = collectTargets(loraConfig({ target_modules: "q_proj" }), llamaModules(1), LLAMA);
  assert.deepEqual(r.paths, []);
  assert.match(r.problems[0], /selects nothing/);
});

test("all-linear skips the output layer", () => {
  const s = selectTargets(loraConfig({ target_modules: "all-linear" }), llamaModules(2), LLAMA);
  assert.equal(s.paths.length, 14);
  assert.ok(!s.paths.includes("lm_head"));
  assert.equal(s.resolved.kind, "names");
  if (s.resolved.kind === "names")
    assert.ok(s.resolved.names.includes("model.layers.1.mlp.down_proj"));
});

test("exclude_modules removes matches", () => {
  const s = selectTargets(
    loraConfig({ target_modules: "all-linear", exclude_modules: ["mlp.down_proj", "k_proj"] }),
    llamaModules(1),
    LLAMA,
  );
  assert.deepEqual(s.paths, [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.o_proj",
    "model.layers.0.mlp.gate_proj",
    "model.layers.0.mlp.up_proj",
  ]);
});

test("layers_to_transform filters suffix matches", () => {
  const s = selectTargets(
    loraConfig({ target_modules: ["q_proj"], layers_to_transform: [1, 2] }),
    llamaModules(3),
    LLAMA,
  );
  assert.deepEqual(s.paths, ["model.layers.1.self_attn.q_proj", "model.layers.2.self_attn.q_proj"]);
  const withPattern = selectTargets(
    loraConfig({ target_modules: ["q_proj"], layers_to_transform: 0, layers_pattern: "layers" }),
    llamaModules(3),
    LLAMA,
  );
  assert.deepEqual(withPattern.paths, ["model.layers.0.self_attn.q_proj"]);
});

test("layerIndexOf reads the layer number", () => {
  assert.equal(layerIndexOf("model.layers.12.self_attn.q_proj", null), 12);
  assert.equal(layerIndexOf("transformer.h.3.attn.c_attn", null), 3);
  assert.equal(layerIndexOf("transformer.h.3.attn.c_attn", ["layers"]), null);
  assert.equal(layerIndexOf("lm_head", null), null);
});

test("non-Linear target is reported with the Linear list", () => {
  assert.throws(
    () =>
      selectTargets(loraConfig({ target_modules: ["self_attn", "nope"] }), llamaModules(1), LLAMA),
    (err: Error) => {
      assert.match(err.message, /"model.layers.0.self_attn" is a LlamaAttention/);
      assert.match(err.message, /target module "nope" matches no module/);
      assert.match(err.message, /Linear modules are:\n {2}model.layers.0.self_attn.q_proj/);
      return true;
    },
  );
});

test("rank_pattern and alpha_pattern keys match like PEFT", () => {
  const c = loraConfig({
    r: 4,
    lora_alpha: 8,
    rank_pattern: { "model.layers.0.self_attn.q_proj": 16, v_proj: 2, "layers\\.1\\..*": 6 },
    alpha_pattern: { q_proj: 32 },
  });
  assert.deepEqual(rankAndAlphaFor(c, "model.layers.0.self_attn.q_proj"), { r: 16, alpha: 32 });
  assert.deepEqual(rankAndAlphaFor(c, "model.layers.0.self_attn.v_proj"), { r: 2, alpha: 8 });
  assert.deepEqual(rankAndAlphaFor(c, "model.layers.1.self_attn.k_proj"), { r: 6, alpha: 8 });
  assert.deepEqual(rankAndAlphaFor(c, "model.layers.0.self_attn.k_proj"), { r: 4, alpha: 8 });
  // A key must end at the path's end and start after a dot.
  assert.equal(patternKeyFor({ proj: 2 }, "model.layers.0.self_attn.q_proj"), null);
});

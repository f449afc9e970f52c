import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  ADAPTER_CONFIG_KEYS,
  adapterConfigJson,
  parseAdapterConfig,
} from "../../src/lora/adapter-config.js";
import { familyDefaultTargets, loraConfig, loraScaling } from "../../src/lora/config.js";
import { fixture } from "../helpers/fixtures.js";

test("loraConfig fills PEFT defaults", () => {
  const c = loraConfig();
  assert.equal(c.r, 8);
  assert.equal(c.lora_alpha, 8);
  assert.equal(c.lora_dropout, 0);
  assert.equal(c.bias, "none");
  assert.equal(c.use_rslora, false);
  assert.equal(c.init_lora_weights, true);
  assert.deepEqual(c.target_modules, { kind: "family-default" });
  assert.equal(c.task_type, "CAUSAL_LM");
});

test("loraConfig classifies target_modules", () => {
  assert.deepEqual(loraConfig({ target_modules: ["v_proj", "q_proj", "q_proj"] }).target_modules, {
    kind: "names",
    names: ["q_proj", "v_proj"],
  });
  assert.deepEqual(loraConfig({ target_modules: ".*q_proj" }).target_modules, {
    kind: "regex",
    pattern: ".*q_proj",
  });
  assert.deepEqual(loraConfig({ target_modules: "all-linear" }).target_modules, {
    kind: "all-linear",
  });
});

test("loraConfig lists every invalid field", () => {
  assert.throws(
    () =>
      loraConfig({
        r: 0,
        lora_dropout: 1.5,
        bias: "some" as "none",
        init_lora_weights: "pissa" as "gaussian",
        rank_pattern: { q_proj: 2.5 },
      }),
    (err: Error) => {
      assert.match(err.message, /r must be an integer > 0, got 0/);
      assert.match(err.message, /lora_dropout must be in \[0, 1\), got 1.5/);
      assert.match(err.message, /bias must be "none", "all" or "lora_only"/);
      assert.match(err.message, /init_lora_weights "pissa" is not supported yet/);
      assert.match(err.message, /rank_pattern\["q_proj"\] must be an integer > 0/);
      return true;
    },
  );
});

test("loraConfig rejects layers_to_transform with a regex", () => {
  assert.throws(
    () => loraConfig({ target_modules: ".*proj", layers_to_transform: [0] }),
    /layers_to_transform cannot be used when target_modules is a regex/,
  );
  assert.throws(
    () => loraConfig({ layers_pattern: "layers" }),
    /layers_pattern needs layers_to_transform/,
  );
});

test("loraScaling uses sqrt(r) with rslora", () => {
  assert.equal(loraScaling(16, 4, false), 4);
  assert.equal(loraScaling(16, 4, true), 8);
});

test("familyDefaultTargets matches PEFT's table", () => {
  assert.deepEqual(familyDefaultTargets("gpt2"), ["c_attn"]);
  assert.deepEqual(familyDefaultTargets("llama"), ["q_proj", "v_proj"]);
  assert.deepEqual(familyDefaultTargets("qwen2"), ["q_proj", "v_proj"]);
  assert.deepEqual(familyDefaultTargets("bloom"), ["query_key_value"]);
  assert.throws(() => familyDefaultTargets("t5"), /known: gpt2, llama/);
});

const FIXTURE_CONFIGS = [
  "reference/gpt2/adapter/adapter_config.json",
  "reference/gpt2/adapter-all-linear/adapter_config.json",
  "reference/llama/adapter/adapter_config.json",
  "reference/llama/adapter-all-linear/adapter_config.json",
  "reference/tinystories/adapter-init/adapter_config.json",
];

test("adapter_config.json round trip keeps PEFT's values", () => {
  for (const rel of FIXTURE_CONFIGS) {
    const text = readFileSync(fixture(rel), "utf8");
    const peft = JSON.parse(text) as Record<string, unknown>;
    const ours = adapterConfigJson(parseAdapterConfig(text, rel));
    const written = JSON.parse(ours) as Record<string, unknown>;
    for (const [key, value] of Object.entries(written)) {
      assert.ok(key in peft, `${rel}: we write "${key}", which PEFT 0.21 does not know`);
      assert.deepEqual(value, peft[key], `${rel}: key "${key}"`);
    }
    assert.deepEqual(Object.keys(written), [...ADAPTER_CONFIG_KEYS], `${rel}: key list`);
  }
});

test("adapter_config.json text matches PEFT's layout", () => {
  const rel = "reference/gpt2/adapter/adapter_config.json";
  const text = readFileSync(fixture(rel), "utf8");
  const ours = adapterConfigJson(parseAdapterConfig(text, rel));
  // Drop the keys that only newer PEFT versions write, then compare byte for byte.
  const peftLines = text.split("\n");
  const ourKeys = new Set(Object.keys(JSON.parse(ours)));
  const kept = peftLines.filter((line) => {
    const m = /^ {2}"([^"]+)":/.exec(line);
    return m === null || ourKeys.has(m[1]);
  });
  // Removing a multi-line value would leave its body, but every dropped key here is one line.
  const expected = kept.join("\n").replace(/,\n}$/, "\n}");
  assert.equal(ours, expected);
  assert.match(ours, /"lora_dropout": 0\.0,/);
  assert.ok(!ours.endsWith("\n"), "PEFT writes no trailing newline");
});

test("parseAdapterConfig rejects DoRA and other variants", () => {
  const base = JSON.parse(
    readFileSync(fixture("reference/llama/adapter/adapter_config.json"), "utf8"),
  ) as Record<string, unknown>;
  const dora = JSON.stringify({ ...base, use_dora: true, lora_bias: true });
  assert.throws(
    () => parseAdapterConfig(dora, "x.json"),
    (err: Error) =>
      /use_dora = true is not supported yet/.test(err.message) &&
      /lora_bias = true is not supported yet/.test(err.message),
  );
  assert.throws(
    () => parseAdapterConfig(JSON.stringify({ ...base, peft_type: "IA3" }), "x.json"),
    /peft_type is "IA3", expected "LORA"/,
  );
});

test("parseAdapterConfig accepts init-only values", () => {
  const base = JSON.parse(
    readFileSync(fixture("reference/llama/adapter/adapter_config.json"), "utf8"),
  ) as Record<string, unknown>;
  const c = parseAdapterConfig(JSON.stringify({ ...base, init_lora_weights: "pissa" }), "x.json");
  assert.equal(c.init_lora_weights, true);
});

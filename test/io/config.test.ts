// config.json and generation_config.json in the spellings of transformers 4 and 5.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGenerationConfig, readModelConfig } from "../../src/io/config.js";
import { fixture } from "../helpers/fixtures.js";

function withConfig(json: unknown, body: (dir: string) => void, file = "config.json"): void {
  const dir = mkdtempSync(join(tmpdir(), "tslora-config-"));
  try {
    writeFileSync(join(dir, file), typeof json === "string" ? json : JSON.stringify(json));
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const llamaBase = {
  model_type: "llama",
  vocab_size: 100,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};

test("transformers 4 Llama config", () => {
  const config = readModelConfig(fixture("models/TinyStories-656K"));
  assert.equal(config.model_type, "llama");
  assert.deepEqual(config.architectures, ["LlamaForCausalLM"]);
  assert.equal(config.vocab_size, 2048);
  assert.equal(config.hidden_size, 128);
  assert.equal(config.intermediate_size, 384);
  assert.equal(config.num_hidden_layers, 2);
  assert.equal(config.num_attention_heads, 8);
  assert.equal(config.num_key_value_heads, 4);
  assert.equal(config.head_dim, 16);
  assert.equal(config.rms_norm_eps, 1e-6);
  assert.equal(config.rope_theta, 10000);
  assert.equal(config.rope_scaling, null);
  assert.equal(config.tie_word_embeddings, true);
  assert.equal(config.dtype, "bfloat16");
  assert.equal(config.bos_token_id, 1);
  assert.deepEqual(config.eos_token_id, [2]);
  assert.equal(config.raw.transformers_version, "4.41.2");
});

test("transformers 5 Llama config", () => {
  const config = readModelConfig(fixture("reference/llama/model"));
  assert.equal(config.dtype, "float32");
  assert.equal(config.rope_theta, 10000);
  assert.equal(config.rope_scaling, null);
  assert.equal(config.head_dim, 16);
  assert.equal(config.num_key_value_heads, 2);
  assert.equal(config.pad_token_id, 0);
});

test("GPT-2 config field spellings", () => {
  const config = readModelConfig(fixture("reference/gpt2/model"));
  assert.equal(config.model_type, "gpt2");
  assert.equal(config.hidden_size, 64);
  assert.equal(config.num_hidden_layers, 2);
  assert.equal(config.num_attention_heads, 4);
  assert.equal(config.num_key_value_heads, 4);
  assert.equal(config.head_dim, 16);
  assert.equal(config.intermediate_size, 128);
  assert.equal(config.max_position_embeddings, 64);
  assert.equal(config.layer_norm_epsilon, 1e-5);
  assert.equal(config.hidden_act, "gelu_new");
  assert.equal(config.rope_theta, null);
  assert.equal(config.tie_word_embeddings, true);
});

test("RoPE scaling in both spellings", () => {
  const llama3 = {
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
  };
  withConfig(
    { ...llamaBase, rope_theta: 500000, rope_scaling: { rope_type: "llama3", ...llama3 } },
    (dir) => {
      const config = readModelConfig(dir);
      assert.equal(config.rope_theta, 500000);
      assert.equal(config.rope_scaling?.rope_type, "llama3");
      assert.equal(config.rope_scaling?.factor, 8);
      assert.equal(config.rope_scaling?.raw.original_max_position_embeddings, 8192);
    },
  );
  withConfig(
    { ...llamaBase, rope_parameters: { rope_theta: 500000, rope_type: "llama3", ...llama3 } },
    (dir) => {
      const config = readModelConfig(dir);
      assert.equal(config.rope_theta, 500000);
      assert.equal(config.rope_scaling?.rope_type, "llama3");
      assert.equal(config.rope_scaling?.raw.rope_theta, undefined);
    },
  );
  withConfig({ ...llamaBase, rope_scaling: { type: "linear", factor: 2 } }, (dir) => {
    assert.deepEqual(readModelConfig(dir).rope_scaling, {
      rope_type: "linear",
      factor: 2,
      raw: { type: "linear", factor: 2 },
    });
  });
  withConfig({ ...llamaBase, rope_scaling: { factor: 2 } }, (dir) => {
    assert.throws(() => readModelConfig(dir), /has factor 2 but no "rope_type"/);
  });
});

test("defaults for absent fields", () => {
  withConfig(llamaBase, (dir) => {
    const config = readModelConfig(dir);
    assert.equal(config.num_key_value_heads, 4);
    assert.equal(config.head_dim, 16);
    assert.equal(config.tie_word_embeddings, false, "LlamaConfig unties by default");
    assert.deepEqual(config.eos_token_id, []);
  });
  withConfig({ ...llamaBase, eos_token_id: [128001, 128009] }, (dir) => {
    assert.deepEqual(readModelConfig(dir).eos_token_id, [128001, 128009]);
  });
});

test("malformed and missing config errors", () => {
  withConfig('{ "model_type": ', (dir) => {
    assert.throws(() => readModelConfig(dir), /config\.json is not valid JSON/);
  });
  withConfig({ ...llamaBase, hidden_size: "64" }, (dir) => {
    assert.throws(
      () => readModelConfig(dir),
      /config\.json: field "hidden_size" must be an integer > 0, got "64"/,
    );
  });
  withConfig({ ...llamaBase, model_type: undefined }, (dir) => {
    assert.throws(() => readModelConfig(dir), /missing field "model_type"/);
  });
  withConfig({ ...llamaBase, vocab_size: undefined }, (dir) => {
    assert.throws(() => readModelConfig(dir), /missing field "vocab_size"/);
  });
  withConfig({ ...llamaBase, num_key_value_heads: 3 }, (dir) => {
    assert.throws(() => readModelConfig(dir), /not a multiple of num_key_value_heads 3/);
  });
  withConfig([1, 2], (dir) => {
    assert.throws(() => readModelConfig(dir), /must contain a JSON object/);
  });
  withConfig({}, (dir) => {
    assert.throws(() => readModelConfig(join(dir, "nothing")), /config\.json not found/);
  });
});

test("generation config fields", () => {
  assert.deepEqual(readGenerationConfig(fixture("models/stories260K"))?.do_sample, false);
  const tiny = readGenerationConfig(fixture("models/TinyStories-656K"));
  assert.deepEqual(tiny?.eos_token_id, [2]);
  assert.equal(tiny?.bos_token_id, 1);
  const settings = {
    eos_token_id: [1, 7],
    pad_token_id: 0,
    max_new_tokens: 32,
    temperature: 0.6,
    top_k: 40,
    top_p: 0.9,
    repetition_penalty: 1.1,
    do_sample: true,
  };
  withConfig(
    settings,
    (dir) => {
      const config = readGenerationConfig(dir);
      assert.ok(config);
      assert.deepEqual(config.eos_token_id, [1, 7]);
      assert.equal(config.max_new_tokens, 32);
      assert.equal(config.temperature, 0.6);
      assert.equal(config.top_k, 40);
      assert.equal(config.top_p, 0.9);
      assert.equal(config.repetition_penalty, 1.1);
      assert.equal(config.do_sample, true);
      assert.equal(readModelConfigMissing(dir), true);
    },
    "generation_config.json",
  );
  withConfig(
    { top_k: -1 },
    (dir) => {
      assert.throws(() => readGenerationConfig(dir), /"top_k" must be an integer >= 0, got -1/);
    },
    "generation_config.json",
  );
  withConfig({}, (dir) => assert.equal(readGenerationConfig(join(dir, "none")), null));
});

function readModelConfigMissing(dir: string): boolean {
  try {
    readModelConfig(dir);
    return false;
  } catch (err) {
    return /config\.json not found/.test((err as Error).message);
  }
}

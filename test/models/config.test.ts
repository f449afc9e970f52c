// Family configs: RoPE settings in both spellings and every supported scaling type, defaults,
// and the errors for unsupported or inconsistent fields.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseBloomConfig } from "../../src/models/bloom.js";
import { parseGpt2Config } from "../../src/models/gpt2.js";
import { parseLlamaConfig } from "../../src/models/llama.js";
import { ropeInvFreq } from "../../src/models/rope.js";
import { assertClose } from "../helpers/assert.js";
import { tinyConfig } from "../helpers/tiny-models.js";

/** theta^(-2j/dim) for j < dim/2, in float64. */
function plainInvFreq(theta: number, dim: number): number[] {
  return Array.from({ length: dim / 2 }, (_, j) => Math.pow(theta, (-2 * j) / dim));
}

test("rope default from either spelling", () => {
  const expected = plainInvFreq(500000, 16);
  const old = ropeInvFreq({ rope_theta: 500000 }, "llama", 16);
  const v5 = ropeInvFreq(
    { rope_parameters: { rope_theta: 500000, rope_type: "default" } },
    "llama",
    16,
  );
  assertClose(old, expected, { rtol: 1e-7, what: "rope_theta" });
  assertClose(v5, expected, { rtol: 1e-7, what: "rope_parameters" });
  assertClose(ropeInvFreq({}, "llama", 16), plainInvFreq(10000, 16), { rtol: 1e-7 });
});

test("rope linear divides by factor", () => {
  const got = ropeInvFreq({ rope_scaling: { type: "linear", factor: 4 } }, "llama", 8);
  assertClose(
    got,
    plainInvFreq(10000, 8).map((f) => f / 4),
    { rtol: 1e-7 },
  );
});

test("rope llama3 scales by wavelength band", () => {
  const scaling = {
    rope_type: "llama3",
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  };
  const got = ropeInvFreq({ rope_theta: 500000, rope_scaling: scaling }, "llama", 128);
  const base = plainInvFreq(500000, 128);
  let kept = 0;
  let divided = 0;
  let blended = 0;
  base.forEach((f, j) => {
    const wavelength = (2 * Math.PI) / f;
    let expected: number;
    if (wavelength < 8192 / 4) {
      expected = f;
      kept++;
    } else if (wavelength > 8192 / 1) {
      expected = f / 8;
      divided++;
    } else {
      const s = (8192 / wavelength - 1) / (4 - 1);
      expected = (1 - s) * (f / 8) + s * f;
      blended++;
    }
    assert.ok(Math.abs(got[j] - expected) <= 1e-7 * expected, `invFreq[${j}]`);
  });
  assert.ok(kept > 0, "some frequencies are kept");
  assert.ok(divided > 0, "some frequencies are divided by factor");
  assert.ok(blended > 0, "some frequencies are blended");
});

test("rope rejects unsupported types", () => {
  assert.throws(
    () => ropeInvFreq({ rope_scaling: { rope_type: "yarn", factor: 4 } }, "qwen2", 8),
    /rope type "yarn" is not supported yet; supported: default, linear, llama3/,
  );
});

test("llama config defaults", () => {
  const config = parseLlamaConfig({
    model_type: "llama",
    vocab_size: 10,
    hidden_size: 8,
    intermediate_size: 12,
    num_hidden_layers: 1,
    num_attention_heads: 2,
  });
  assert.equal(config.num_key_value_heads, 2);
  assert.equal(config.head_dim, 4);
  assert.equal(config.tie_word_embeddings, false);
  assert.equal(config.rms_norm_eps, 1e-6);
  assert.equal(config.sliding_window, null);
});

test("llama config errors name the field", () => {
  const base = tinyConfig("llama");
  assert.throws(
    () => parseLlamaConfig({ ...base, num_key_value_heads: 3 }),
    /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/,
  );
  assert.throws(
    () => parseLlamaConfig({ ...base, hidden_act: "gelu" }),
    /hidden_act "gelu" is not supported yet/,
  );
  const noVocab = { ...base };
  delete noVocab.vocab_size;
  assert.throws(() => parseLlamaConfig(noVocab), /"vocab_size" is missing/);
  assert.throws(
    () => parseLlamaConfig({ ...base, hidden_size: 32.5 }),
    /"hidden_size" must be a positive whole number, got 32.5/,
  );
});

test("mistral keeps its sliding window", () => {
  assert.equal(parseLlamaConfig(tinyConfig("mistral")).sliding_window, 4096);
  const qwen = parseLlamaConfig({ ...tinyConfig("qwen2"), sliding_window: 4096 });
  assert.equal(qwen.sliding_window, null, "qwen2 without use_sliding_window");
});

test("gpt2 config defaults and errors", () => {
  const config = parseGpt2Config({
    vocab_size: 10,
    n_embd: 8,
    n_layer: 1,
    n_head: 2,
    n_positions: 16,
  });
  assert.equal(config.n_inner, 32);
  assert.equal(config.activation_function, "gelu_new");
  assert.equal(config.tie_word_embeddings, true);
  assert.throws(
    () => parseGpt2Config({ ...tinyConfig("gpt2"), activation_function: "relu" }),
    /activation_function "relu" is not supported yet; supported: gelu_new/,
  );
});

test("bloom config reads n_embed", () => {
  const { hidden_size: width, ...rest } = tinyConfig("bloom");
  const config = parseBloomConfig({ ...rest, n_embed: width });
  assert.equal(config.hidden_size, width);
  assert.equal(config.apply_residual_connection_post_layernorm, false);
});

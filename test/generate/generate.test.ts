// Generation loop on tiny random models: batching with left padding, seeded sampling, EOS and
// stop strings, streaming, and that the KV cache gives the same tokens as recomputing.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad, Tensor } from "../../src/engine/index.js";
import { generate, generateText } from "../../src/generate/index.js";
import { argmax } from "../../src/generate/sampling.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import type { CausalLM } from "../../src/models/types.js";
import { loadModelFromDir } from "../../src/models/weights.js";
import { fixture } from "../helpers/fixtures.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const root = mkdtempSync(join(tmpdir(), "tslora-generate-"));
after(() => rmSync(root, { recursive: true, force: true }));

function tiny(family: "gpt2" | "llama" | "bloom" | "qwen2"): CausalLM {
  const dir = join(root, family);
  writeTinyModel(dir, family, { seed: 11 });
  return loadModelFromDir(dir);
}

const models = {
  gpt2: tiny("gpt2"),
  llama: tiny("llama"),
  bloom: tiny("bloom"),
  qwen2: tiny("qwen2"),
};
const PROMPTS = [[5, 9, 20, 3, 41], [7], [12, 30, 2]];

/** Greedy decoding by recomputing the whole sequence at every step, without a cache. */
function greedyWithoutCache(model: CausalLM, prompt: number[], steps: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < steps; i++) {
    const logits = noGrad(() => {
      const ids = Tensor.from(Int32Array.from(seq), [1, seq.length], "i32");
      return model.logits(model.forward(ids)).toFloat32Array();
    });
    endStep();
    seq.push(argmax(logits.subarray((seq.length - 1) * model.dims.vocabSize)));
  }
  return seq.slice(prompt.length);
}

for (const [family, model] of Object.entries(models)) {
  test(`${family} cached greedy equals recompute`, () => {
    const result = generate(model, [PROMPTS[0]], { maxNewTokens: 10 });
    assert.deepEqual(result.tokens[0], greedyWithoutCache(model, PROMPTS[0], 10));
  });

  test(`${family} batched prompts equal one at a time`, () => {
    const options = { maxNewTokens: 8, temperature: 0 };
    const batched = generate(model, PROMPTS, options);
    PROMPTS.forEach((prompt, i) => {
      assert.deepEqual(batched.tokens[i], generate(model, [prompt], options).tokens[0], `row ${i}`);
    });
  });
}

test("sampling repeats with the same seed", () => {
  const model = models.llama;
  const options = { maxNewTokens: 12, temperature: 1.5, topK: 20, topP: 0.95, seed: 5 };
  const a = generate(model, [PROMPTS[0]], options);
  const b = generate(model, [PROMPTS[0]], options);
  const c = generate(model, [PROMPTS[0]], { ...options, seed: 6 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
});

test("top-k 1 sampling equals greedy", () => {
  const model = models.gpt2;
  const greedy = generate(model, [PROMPTS[2]], { maxNewTokens: 8 });
  const topOne = generate(model, [PROMPTS[2]], {
    maxNewTokens: 8,
    temperature: 2,
    topK: 1,
    seed: 9,
  });
  assert.deepEqual(topOne.tokens, greedy.tokens);
});

test("EOS list stops each row", () => {
  const model = models.llama;
  const free = generate(model, PROMPTS, { maxNewTokens: 6 });
  const stopIds = [free.tokens[0][2], free.tokens[1][0]];
  const result = generate(model, PROMPTS, { maxNewTokens: 6, eosTokenId: stopIds });
  for (let row = 0; row < PROMPTS.length; row++) {
    const end = free.tokens[row].findIndex((id) => stopIds.includes(id));
    const expected = end < 0 ? free.tokens[row] : free.tokens[row].slice(0, end + 1);
    assert.deepEqual(result.tokens[row], expected, `row ${row}`);
    assert.equal(result.finishReasons[row], end < 0 ? "length" : "eos", `row ${row} reason`);
  }
});

test("repetition penalty changes greedy output", () => {
  const model = models.bloom;
  const plain = generate(model, [PROMPTS[1]], { maxNewTokens: 16 });
  const penalised = generate(model, [PROMPTS[1]], { maxNewTokens: 16, repetitionPenalty: 5 });
  assert.notDeepEqual(penalised.tokens, plain.tokens);
  const seen = new Set<number>([PROMPTS[1][0]]);
  let repeats = 0;
  for (const id of penalised.tokens[0]) {
    if (seen.has(id)) repeats++;
    seen.add(id);
  }
  const plainRepeats = plain.tokens[0].length - new Set(plain.tokens[0]).size;
  assert.ok(repeats <= plainRepeats, `penalised repeats ${repeats} > plain ${plainRepeats}`);
});

test("streaming and stop strings on a real model", async () => {
  const dir = fixture("models/TinyStories-656K");
  const model = loadModelFromDir(dir);
  const tokenizer = await loadTokenizer(dir);
  const deltas: string[] = [];
  const full = generateText(model, tokenizer, "Once upon a time,", {
    maxNewTokens: 40,
    onText: (delta) => deltas.push(delta),
  });
  assert.ok(deltas.length > 1, "text arrives in several deltas");
  assert.equal(deltas.join(""), full.texts[0]);

  const stopped = generateText(model, tokenizer, "Once upon a time,", {
    maxNewTokens: 40,
    stopStrings: ["Kitty"],
  });
  assert.equal(stopped.finishReasons[0], "stop");
  // Generation stops at the token that completes the stop string, as in transformers.
  const tokens = stopped.tokens[0];
  assert.ok(stopped.texts[0].includes("Kitty"), stopped.texts[0]);
  assert.ok(!tokenizer.decode(tokens.slice(0, -1), { skipSpecialTokens: true }).includes("Kitty"));
  assert.ok(full.texts[0].startsWith(stopped.texts[0]));
});

test("generate rejects invalid options", () => {
  const model = models.gpt2;
  assert.throws(() => generate(model, [[]]), /prompt 0 is empty/);
  assert.throws(() => generate(model, [[1]], { topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => generate(model, [[1]], { stopStrings: ["x"] }), /need a tokenizer/);
  assert.throws(() => generate(model, [[1]], { maxNewTokens: 0 }), /maxNewTokens/);
  assert.throws(
    () => generate(model, [[1, 2]], { maxNewTokens: 47 }),
    /2 prompt tokens \+ maxNewTokens 47 exceed the 48 positions of gpt2/,
  );
});

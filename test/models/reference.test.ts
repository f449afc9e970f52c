// GPT-2 and Llama against transformers' outputs for the tiny reference checkpoints: logits at
// unpadded positions, the causal-LM loss, and greedy generation with a KV cache.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { endStep, noGrad, Tensor } from "../../src/engine/index.js";
import { generate } from "../../src/generate/index.js";
import { loadModelFromDir } from "../../src/models/weights.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";

interface Inputs {
  input_ids: number[][];
  attention_mask: number[][];
  labels: number[][];
}

interface Base {
  logits: number[][][];
  loss: number;
  generation: {
    prompt: number[];
    new_tokens: number[];
    step_top5_ids: number[][];
    step_top5_logits: number[][];
  };
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(fixture(path), "utf8")) as T;
}

function batchTensor(rows: number[][]): Tensor {
  return Tensor.from(Int32Array.from(rows.flat()), [rows.length, rows[0].length], "i32");
}

for (const arch of ["gpt2", "llama"]) {
  const inputs = readJson<Inputs>(`reference/${arch}/inputs.json`);
  const base = readJson<Base>(`reference/${arch}/base.json`);
  const model = loadModelFromDir(fixture(`reference/${arch}/model`), "f32");

  test(`${arch} logits match transformers`, () => {
    const [batch, tokens] = [inputs.input_ids.length, inputs.input_ids[0].length];
    const logits = noGrad(() => {
      const hidden = model.forward(batchTensor(inputs.input_ids), {
        attentionMask: batchTensor(inputs.attention_mask),
      });
      return model.logits(hidden).toFloat32Array();
    });
    endStep();
    const vocab = model.dims.vocabSize;
    assert.equal(logits.length, batch * tokens * vocab);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < tokens; t++) {
        if (inputs.attention_mask[b][t] === 0) continue;
        const row = logits.subarray((b * tokens + t) * vocab, (b * tokens + t + 1) * vocab);
        assertClose(row, base.logits[b][t], { atol: 1e-4, what: `${arch} logits[${b}][${t}]` });
      }
    }
  });

  test(`${arch} loss matches transformers`, () => {
    const loss = noGrad(() =>
      model
        .loss(batchTensor(inputs.input_ids), batchTensor(inputs.labels), {
          attentionMask: batchTensor(inputs.attention_mask),
        })
        .item(),
    );
    endStep();
    assert.ok(Math.abs(loss - base.loss) <= 1e-5, `${arch} loss ${loss}, expected ${base.loss}`);
  });

  test(`${arch} greedy generation matches transformers`, () => {
    const { prompt, new_tokens, step_top5_ids, step_top5_logits } = base.generation;
    const stepLogits: number[][] = [];
    const result = generate(model, [prompt], {
      maxNewTokens: new_tokens.length,
      onLogits: (logits) => stepLogits.push(Array.from(logits)),
    });
    assert.deepEqual(result.tokens[0], new_tokens);
    assert.deepEqual(result.finishReasons, ["length"]);
    step_top5_ids.forEach((ids, step) => {
      const got = ids.map((id) => stepLogits[step][id]);
      assertClose(got, step_top5_logits[step], { atol: 1e-4, what: `${arch} step ${step} top-5` });
      const order = [...stepLogits[step].keys()].sort(
        (a, b) => stepLogits[step][b] - stepLogits[step][a],
      );
      assert.deepEqual(order.slice(0, 5), ids, `${arch} step ${step} top-5 ids`);
    });
  });
}

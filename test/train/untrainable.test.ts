// fineTune on a model whose adapter cannot learn: the error names the reason and the call that
// fixes it, before any step runs. Also invalid option values, quoted and named as passed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { TokenizedExample } from "../../src/data/tokenize.js";
import {
  applyLora,
  disableAdapters,
  loadAdapter,
  mergeAdapter,
  mergeAndUnload,
  saveAdapter,
  unmergeAdapter,
} from "../../src/lora/index.js";
import { loadModelFromDir, type CausalLM } from "../../src/models/index.js";
import { fineTune, type FineTuneOptions } from "../../src/train/fine-tune.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-untrainable-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const modelDir = join(scratch, "model");
writeTinyModel(modelDir, "llama", { seed: 9 });
const adapterDir = join(scratch, "adapter");
{
  const model = loadModelFromDir(modelDir, "f32");
  applyLora(model, { r: 4 });
  saveAdapter(model, adapterDir);
  model.dispose();
}

const examples: TokenizedExample[] = [0, 1, 2, 3].map((k) => {
  const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 5 + k * 3 + 1) % 64);
  return {
    inputIds: ids,
    labels: ids.slice(),
    promptLength: 0,
    group: `example ${k}`,
    origin: `example ${k}`,
    truncated: false,
  };
});

function options(model: CausalLM): FineTuneOptions {
  return {
    model,
    train: examples,
    padTokenId: 0,
    batchSize: 2,
    steps: 1,
    lr: 1e-3,
    outDir: null,
    seed: 1,
  };
}

function withModel(fn: (model: CausalLM) => Promise<void>): () => Promise<void> {
  return async () => {
    const model = loadModelFromDir(modelDir, "f32");
    try {
      await fn(model);
    } finally {
      model.dispose();
    }
  };
}

test(
  "fineTune rejects a model without adapter",
  withModel(async (model) => {
    await assert.rejects(
      fineTune(options(model)),
      /fineTune: the model has no adapter to train; call applyLora/,
    );
  }),
);

test(
  "fineTune rejects a frozen loaded adapter",
  withModel(async (model) => {
    loadAdapter(model, adapterDir);
    await assert.rejects(
      fineTune(options(model)),
      /fineTune: adapter "default" was added with trainable false.*pass \{ trainable: true \} to loadAdapter/,
    );
  }),
);

test(
  "fineTune rejects a merged adapter",
  withModel(async (model) => {
    applyLora(model, { r: 4 });
    mergeAdapter(model);
    await assert.rejects(
      fineTune(options(model)),
      /fineTune: adapter "default" is merged into the weights.*call unmergeAdapter first/,
    );
    unmergeAdapter(model);
    const result = await fineTune(options(model));
    assert.equal(result.step, 1);
  }),
);

test(
  "fineTune rejects disabled adapters",
  withModel(async (model) => {
    applyLora(model, { r: 4 });
    disableAdapters(model);
    await assert.rejects(
      fineTune(options(model)),
      /fineTune: the adapters are disabled; call enableAdapters first/,
    );
  }),
);

test(
  "fineTune rejects an unloaded model",
  withModel(async (model) => {
    applyLora(model, { r: 4 });
    mergeAndUnload(model);
    await assert.rejects(fineTune(options(model)), /fineTune: the model has no adapter to train/);
  }),
);

test(
  "fineTune quotes a string lr",
  withModel(async (model) => {
    applyLora(model, { r: 4 });
    const lr = "1e-3" as unknown as number;
    await assert.rejects(
      fineTune({ ...options(model), lr }),
      /lr must be a finite number >= 0, got "1e-3"/,
    );
  }),
);

test(
  "fineTune names invalid steps and data",
  withModel(async (model) => {
    applyLora(model, { r: 4 });
    await assert.rejects(
      fineTune({ ...options(model), steps: 0 }),
      /^Error: fineTune: steps must be a whole number >= 1, got 0$/,
    );
    await assert.rejects(
      fineTune({ ...options(model), batchSize: 1.5 }),
      /fineTune: batchSize must be a whole number >= 1, got 1\.5/,
    );
    await assert.rejects(
      fineTune({ ...options(model), train: [] }),
      /fineTune: train has no examples; pass the tokenized training examples/,
    );
  }),
);

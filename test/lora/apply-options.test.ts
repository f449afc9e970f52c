// What applyLora accepts: unknown keys in its arguments are rejected, PEFT files with their many
// extra keys still load, and invalid values are shown with their JSON type.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { AdamW } from "../../src/engine/optim.js";
import { Tensor } from "../../src/engine/index.js";
import { adapterConfigObject } from "../../src/lora/adapter-config.js";
import {
  applyLora,
  getAdapter,
  loadAdapter,
  loraConfig,
  saveAdapter,
  type LoraConfigInput,
} from "../../src/lora/index.js";
import { loadModelFromDir, type CausalLM } from "../../src/models/index.js";
import { validateSchedule } from "../../src/train/schedule.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-apply-options-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const modelDir = join(scratch, "model");
writeTinyModel(modelDir, "llama", { seed: 4 });

function withModel(fn: (model: CausalLM) => void): () => void {
  return () => {
    const model = loadModelFromDir(modelDir, "f32");
    try {
      fn(model);
    } finally {
      model.dispose();
    }
  };
}

test(
  "applyLora rejects unknown config keys",
  withModel((model) => {
    const config = { rank: 8, alpha: 16 } as unknown as LoraConfigInput;
    assert.throws(
      () => applyLora(model, config),
      /applyLora: unknown LoRA config key\(s\) "rank", "alpha"/,
    );
    assert.throws(() => applyLora(model, config), /the known keys are r, lora_alpha, lora_dropout/);
    assert.throws(
      () => applyLora(model, { r: 4 }, { adpterName: "x" } as object),
      /unknown option\(s\) "adpterName"/,
    );
    applyLora(model, { r: 4, task_type: "CAUSAL_LM", inference_mode: false });
    assert.equal(getAdapter(model, "default").config.r, 4);
  }),
);

test(
  "loadAdapter keeps PEFT's extra keys",
  withModel((model) => {
    applyLora(model, { r: 4 });
    const dir = join(scratch, "peft-adapter");
    saveAdapter(model, dir);
    const peftConfig = {
      ...adapterConfigObject(getAdapter(model, "default").config),
      base_model_name_or_path: "some/model",
      revision: "main",
      peft_version: "0.17.1",
      corda_config: null,
      qalora_group_size: 16,
      use_dora: false,
    };
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(peftConfig));
    loadAdapter(model, dir, { adapterName: "from-peft" });
    assert.equal(getAdapter(model, "from-peft").config.base_model_name_or_path, "some/model");

    writeFileSync(
      join(dir, "adapter_config.json"),
      JSON.stringify({ ...peftConfig, use_dora: true }),
    );
    assert.throws(
      () => loadAdapter(model, dir, { adapterName: "dora" }),
      /use_dora = true is not supported yet/,
    );
  }),
);

test("invalid values keep their JSON type", () => {
  const r = "8" as unknown as number;
  assert.throws(() => loraConfig({ r }), /r must be an integer > 0, got "8"/);
  assert.throws(() => loraConfig({ r: Number.NaN }), /r must be an integer > 0, got NaN/);
  const alpha = "16" as unknown as number;
  assert.throws(
    () => loraConfig({ lora_alpha: alpha }),
    /lora_alpha must be a finite number, got "16"/,
  );
  const dropout = "0.1" as unknown as number;
  assert.throws(
    () => loraConfig({ lora_dropout: dropout }),
    /lora_dropout must be in \[0, 1\), got "0.1"/,
  );

  const p = Tensor.from([1], [1], "f32", { persistent: true, requiresGrad: true });
  const lr = "1e-3" as unknown as number;
  assert.throws(() => new AdamW([p], { lr }), /lr must be a finite number >= 0, got "1e-3"/);
  assert.throws(
    () => new AdamW([p], { lr: Infinity }),
    /lr must be a finite number >= 0, got Infinity/,
  );
  p.dispose();
  assert.throws(
    () => validateSchedule({ kind: "cosine", lr, warmupSteps: 0, totalSteps: 10 }),
    /schedule: lr must be a finite number > 0, got "1e-3"/,
  );
  const steps = "10" as unknown as number;
  assert.throws(
    () => validateSchedule({ kind: "cosine", lr: 0.1, warmupSteps: 0, totalSteps: steps }),
    /totalSteps must be a whole number >= 1, got "10"/,
  );
});

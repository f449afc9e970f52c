// The base model's dropout rates: parsed from config.json with transformers' defaults, and
// listed by `tslora train` when any is above 0. Also GPT-2 training without a LoraWarning.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { readModelConfig, type ModelConfig } from "../../src/io/config.js";
import { createModel } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const mainModule = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "tslora-dropout-note-"));
after(() => rmSync(root, { recursive: true, force: true }));

function train(modelDir: string, out: string): string {
  const data = join(root, "text.jsonl");
  writeFileSync(data, '{"text": "Once upon a time there was a cat."}\n'.repeat(12));
  const args = ["train", "--model", modelDir, "--data", data, "--out", out, "--steps", "1"];
  const result = spawnSync(process.execPath, [mainModule, ...args], {
    encoding: "utf8",
    env: { ...process.env, TSLORA_THREADS: "1" },
  });
  assert.equal(result.status, 0, result.stderr);
  // train logs its settings and progress on stderr.
  return result.stderr;
}

/** Returns the config of a tiny GPT-2 with `extra` fields, read as a config.json file. */
function gpt2Config(extra: Record<string, unknown>): ModelConfig {
  const dir = mkdtempSync(join(root, "gpt2-"));
  const sizes = { vocab_size: 8, n_embd: 4, n_layer: 1, n_head: 1, n_positions: 8 };
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({ model_type: "gpt2", ...sizes, ...extra }),
  );
  return readModelConfig(dir);
}

test("dropout rates with defaults", () => {
  const model = createModel(gpt2Config({ resid_pdrop: 0.2 }));
  assert.deepEqual(model.dropoutRates, { embd_pdrop: 0.1, resid_pdrop: 0.2, attn_pdrop: 0.1 });
  model.dispose();
  assert.throws(
    () => createModel(gpt2Config({ attn_pdrop: 1 })),
    /gpt2 config: "attn_pdrop" must be a dropout rate in \[0, 1\), got 1/,
  );
  assert.throws(
    () => createModel(gpt2Config({ embd_pdrop: "0.1" })),
    /"embd_pdrop" must be a number/,
  );
});

test("train lists base dropout", () => {
  const modelDir = join(root, "with-dropout");
  cpSync(fixture("models/stories260K"), modelDir, { recursive: true });
  const configPath = join(modelDir, "config.json");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  writeFileSync(configPath, JSON.stringify({ ...config, attention_dropout: 0.1 }));

  const noted = train(modelDir, join(root, "run-dropout"));
  assert.match(noted, /^base model dropout in training: attention_dropout 0\.1 \(from config/m);
  const quiet = train(fixture("models/stories260K"), join(root, "run-plain"));
  assert.doesNotMatch(quiet, /base model dropout/);
});

test("train on GPT-2 lists its default dropout and no warning", () => {
  const modelDir = join(root, "tiny-gpt2");
  writeTinyModel(modelDir, "gpt2", {
    config: { vocab_size: 512 },
    tokenizerFrom: fixture("models/stories260K"),
  });
  const out = join(root, "run-gpt2");
  const stderr = train(modelDir, out);
  assert.match(
    stderr,
    /^base model dropout in training: embd_pdrop 0\.1, resid_pdrop 0\.1, attn_pdrop 0\.1 /m,
  );
  // fan_in_fan_out comes from the model's Conv1D layers, so applyLora has nothing to warn about.
  assert.doesNotMatch(stderr, /warning|\(node:\d+\)/);
  const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")) as {
    fan_in_fan_out: boolean;
  };
  assert.equal(config.fan_in_fan_out, true);
});

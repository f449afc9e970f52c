// `tslora train` prints a note when config.json sets dropout for the base model itself, which
// training here does not apply, and prints none when the config sets no dropout.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { baseModelDropouts } from "../../src/models/config-fields.js";
import { fixture } from "../helpers/fixtures.js";

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

test("nonzero dropout rates listed", () => {
  const raw = { resid_pdrop: 0.1, embd_pdrop: 0, attn_pdrop: 0.1, attention_dropout: "x" };
  assert.deepEqual(baseModelDropouts(raw), [
    { key: "resid_pdrop", rate: 0.1 },
    { key: "attn_pdrop", rate: 0.1 },
  ]);
  assert.deepEqual(baseModelDropouts({ attention_dropout: 0.0 }), []);
});

test("train notes base dropout", () => {
  const modelDir = join(root, "with-dropout");
  cpSync(fixture("models/stories260K"), modelDir, { recursive: true });
  const configPath = join(modelDir, "config.json");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  writeFileSync(configPath, JSON.stringify({ ...config, attention_dropout: 0.1 }));

  const noted = train(modelDir, join(root, "run-dropout"));
  assert.match(noted, /^note: config\.json sets attention_dropout 0\.1; tslora trains/m);
  const quiet = train(fixture("models/stories260K"), join(root, "run-plain"));
  assert.doesNotMatch(quiet, /base model's own dropout/);
});

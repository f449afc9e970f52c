// Runs the library example of README.md on a real checkpoint and real SQuAD data, so the
// documented API stays correct.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fixture, repoRoot } from "./helpers/fixtures.js";

function readmeExample(): string {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const match = /```ts example\n([\s\S]*?)```/.exec(readme);
  assert.ok(match, "README.md has no ```ts example block");
  return match[1];
}

test("README library example trains and generates", () => {
  const work = mkdtempSync(join(tmpdir(), "tslora-readme-"));
  const entry = new URL("../src/index.js", import.meta.url).href;
  const code = readmeExample().replaceAll('from "tslora"', `from ${JSON.stringify(entry)}`);
  const script = join(work, "example.mjs");
  writeFileSync(script, code);
  const out = join(work, "adapter");

  const result = spawnSync(process.execPath, [script], {
    encoding: "utf8",
    env: {
      ...process.env,
      EXAMPLE_MODEL: fixture("models/TinyStories-656K"),
      EXAMPLE_DATA: fixture("data/squad/squad1.1-style-dev-first5articles.json"),
      EXAMPLE_STEPS: "12",
      EXAMPLE_OUT: out,
    },
    timeout: 300_000,
  });
  assert.equal(result.status, 0, `example failed:\n${result.stderr}`);

  assert.match(result.stdout, /trainable params: [\d,]+ \|\| all params: [\d,]+/);
  const losses = [...result.stdout.matchAll(/validation loss (\d+\.\d+)/g)].map((m) =>
    Number(m[1]),
  );
  assert.ok(losses.length >= 2, `expected validation lines, got:\n${result.stdout}`);
  assert.ok(losses[losses.length - 1] < losses[0], `validation loss did not fall: ${losses}`);
  assert.match(result.stdout, /^step 10\/12: loss \d+\.\d{3}$/m);
  assert.match(result.stdout, /^validation loss \d+\.\d{3}, perplexity \d+\.\d$/m);
  assert.match(result.stdout, /^exact match \d+\.\d, F1 \d+\.\d$/m);
  assert.ok(existsSync(join(out, "adapter_config.json")), "adapter_config.json missing");
  assert.ok(existsSync(join(out, "adapter_model.safetensors")), "adapter weights missing");
});

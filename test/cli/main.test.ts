import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { withoutSourcePrefix } from "../../src/cli/main.js";
import { repoRoot } from "../helpers/fixtures.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

function tslora(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
}

test(
  "--version prints the package version",
  {
    // A build outside the repository (TSLORA_OUT) has no package.json above it.
    skip: !cli.startsWith(repoRoot + "/") && "build is outside the repository",
  },
  () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
    const run = tslora(["--version"]);
    assert.equal(run.status, 0);
    assert.equal(run.stdout.trim(), `tslora ${version}`);
  },
);

test("no command prints usage with status 2", () => {
  const run = tslora([]);
  assert.equal(run.status, 2);
  assert.match(run.stdout, /Usage: tslora <command>/);
  assert.match(run.stdout, /--version/);
});

test("unknown command lists the commands", () => {
  const run = tslora(["tune"]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /unknown command "tune"; commands: train, eval, generate, merge, info/);
});

test("errors drop the raising function's name", () => {
  const cases: [string, string][] = [
    ["readJsonl: data.jsonl:6: invalid JSON", "data.jsonl:6: invalid JSON"],
    ["KVCache.begin: 9 tokens exceed", "9 tokens exceed"],
    ["train: --steps must be >= 1", "--steps must be >= 1"],
    // File names and plain words stay.
    ["model.safetensors: truncated", "model.safetensors: truncated"],
    ["adapter_config.json: invalid JSON", "adapter_config.json: invalid JSON"],
    ["hub: model folder /x not found", "hub: model folder /x not found"],
  ];
  for (const [message, expected] of cases) {
    assert.equal(withoutSourcePrefix(message, "train"), expected, message);
  }
});

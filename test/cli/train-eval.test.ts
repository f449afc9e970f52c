// `tslora eval` end to end on the tiny SQuAD file: loss, exact match and F1, and the side-by-side
// comparison with the base model.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fixture } from "../helpers/fixtures.js";

const mainModule = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

function tslora(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [mainModule, ...args], {
    encoding: "utf8",
    env: { ...process.env, TSLORA_THREADS: "1" },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const common = [
  "--model",
  fixture("models/TinyStories-656K"),
  "--data",
  fixture("data/squad/allennlp-squad.json"),
  "--val-data",
  fixture("data/squad/allennlp-squad.json"),
  "--max-questions",
  "2",
  "--max-new-tokens",
  "4",
];

test("eval prints loss, exact match and F1", () => {
  const { status, stdout, stderr } = tslora(["eval", ...common, "--samples", "1"]);
  assert.equal(status, 0, stderr);
  assert.match(stdout, /\(no adapter\)/);
  assert.match(stdout, /^validation set: 5 examples, \d+ tokens \(\d+ scored\), /m);
  assert.match(stdout, /^loss \d+\.\d{4} \| perplexity \d+\.\d{3} \| \d+ tokens in 5 examples$/m);
  assert.match(stdout, /^SQuAD: exact match \d+\.\d\d% \| F1 \d+\.\d\d% \| 2 questions$/m);
  assert.match(stdout, /^ {2}Q: .+\n {5}predicted: ".*" \| gold: ".+"$/m);
});

test("eval compares base and adapter answers", () => {
  const adapter = fixture("reference/tinystories/adapter-final");
  const { status, stdout, stderr } = tslora([
    "eval",
    ...common,
    "--adapter",
    adapter,
    "--compare-base",
    "2",
  ]);
  assert.equal(status, 0, stderr);
  assert.match(stdout, /^ {2}base model\s+\d+\.\d\d\s+\d+\.\d\d$/m);
  assert.match(stdout, /^ {2}with adapter\s+\d+\.\d\d\s+\d+\.\d\d$/m);
  assert.match(stdout, /^Q2: /m);
});

test("eval compare-base needs an adapter", () => {
  const { status, stderr } = tslora(["eval", ...common, "--compare-base", "1"]);
  assert.equal(status, 2);
  assert.match(stderr, /--compare-base needs --adapter/);
});

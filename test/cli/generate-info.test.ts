// The tslora command, run as a child process: help text, info, greedy generation on a real
// model, and exit statuses for bad command lines.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { GENERATE_OPTIONS } from "../../src/cli/generate.js";
import { INFO_OPTIONS } from "../../src/cli/info.js";
import { fixture } from "../helpers/fixtures.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

function tslora(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, TSLORA_THREADS: "1", HF_HUB_OFFLINE: "1" },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

for (const [verb, specs] of [
  ["generate", GENERATE_OPTIONS],
  ["info", INFO_OPTIONS],
] as const) {
  test(`${verb} --help lists every option`, () => {
    const { status, stdout } = tslora(verb, "--help");
    assert.equal(status, 0);
    for (const spec of specs) assert.match(stdout, new RegExp(`--${spec.name}\\b`), spec.name);
  });
}

test("generate --help shows units and defaults", () => {
  const { stdout } = tslora("generate", "--help");
  assert.match(stdout, /--max-new-tokens <tokens>\n.*Default: 64\./);
  assert.match(stdout, /--temperature <t>\n.*Default: 0\./);
});

test("info prints sizes and parameter count", () => {
  const { status, stdout } = tslora("info", "--model", fixture("models/TinyStories-656K"));
  assert.equal(status, 0);
  assert.match(stdout, /model_type: +llama \(LlamaForCausalLM\)/);
  assert.match(stdout, /attention heads: +8 \(KV heads 4, head size 16\)/);
  assert.match(stdout, /parameters: +656,000 \(656\.0 K\)/);
  assert.match(stdout, /stored dtype: +BF16 \(20 tensors\)/);
});

test("info --json on the f32 resave", () => {
  const { status, stdout } = tslora(
    "info",
    "--model",
    fixture("models/TinyStories-656K/fp32-resave"),
    "--json",
  );
  assert.equal(status, 0);
  const info = JSON.parse(stdout) as Record<string, unknown>;
  assert.equal(info.modelType, "llama");
  assert.equal(info.parameters, 656000);
  assert.deepEqual(info.storedDtypes, { F32: 20 });
  assert.equal(info.weightBytes, 656000 * 4);
  assert.equal(info.kvCacheBytesPerToken, 2 * 2 * 4 * 16 * 4);
});

test("generate streams the greedy golden text", () => {
  const golden = JSON.parse(
    readFileSync(fixture("models/TinyStories-656K/golden.json"), "utf8"),
  ) as {
    greedy_from_prompt: { prompt: string; prompt_ids: number[]; ids: number[]; text: string };
  };
  const run = golden.greedy_from_prompt;
  const { status, stdout, stderr } = tslora(
    "generate",
    "--model",
    fixture("models/TinyStories-656K"),
    "--prompt",
    run.prompt,
    "--max-new-tokens",
    String(run.ids.length - run.prompt_ids.length),
  );
  assert.equal(status, 0, stderr);
  assert.equal(stdout, `${run.text}\n`);
  assert.match(stderr, /stopped by eos/);
});

test("generate counts one token in singular", () => {
  const model = fixture("models/TinyStories-656K");
  const one = tslora("generate", "--model", model, "--prompt", "Once", "--max-new-tokens", "1");
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stderr, /^generated 1 token in /m);
  const two = tslora("generate", "--model", model, "--prompt", "Once", "--max-new-tokens", "2");
  assert.equal(two.status, 0, two.stderr);
  assert.match(two.stderr, /^generated 2 tokens in /m);
});

test("top-k without temperature warns", () => {
  const model = fixture("models/TinyStories-656K");
  const args = ["generate", "--model", model, "--prompt", "Once", "--max-new-tokens", "2"];
  const greedy = tslora(...args);
  const warned = tslora(...args, "--top-k", "5");
  assert.equal(warned.status, 0, warned.stderr);
  assert.match(warned.stderr, /--top-k applies only when sampling; with --temperature 0/);
  assert.doesNotMatch(greedy.stderr, /only when sampling/);
  // The warning changes nothing: decoding stays greedy.
  assert.equal(warned.stdout, greedy.stdout);
});

test("bad command lines exit with status 2", () => {
  const unknown = tslora("fly");
  assert.equal(unknown.status, 2);
  assert.match(
    unknown.stderr,
    /unknown command "fly"; commands: train, eval, generate, merge, info/,
  );
  const missing = tslora("generate", "--model", "x");
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /missing the prompt; give --prompt <text> or --prompt-file <path>/);
  const bad = tslora("generate", "--model", "x", "--prompt", "a", "--top-k", "two");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--top-k must be a number, got "two"/);
});

test("generate reads the prompt from a file or stdin", () => {
  const model = fixture("models/stories260K");
  const dir = mkdtempSync(join(tmpdir(), "tslora-prompt-file-"));
  const file = join(dir, "prompt.txt");
  writeFileSync(file, "Once upon a time\n");
  const args = ["--max-new-tokens", "6"];
  const typed = tslora("generate", "--model", model, "--prompt", "Once upon a time", ...args);
  assert.equal(typed.status, 0, typed.stderr);
  // The editor's final newline is dropped, so the file gives the typed prompt's text.
  const read = tslora("generate", "--model", model, "--prompt-file", file, ...args);
  assert.equal(read.status, 0, read.stderr);
  assert.equal(read.stdout, typed.stdout);
  const piped = spawnSync(
    process.execPath,
    [MAIN, "generate", "--model", model, "--prompt-file", "-", ...args],
    {
      encoding: "utf8",
      input: "Once upon a time",
      env: { ...process.env, TSLORA_THREADS: "1", HF_HUB_OFFLINE: "1" },
    },
  );
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout, typed.stdout);

  const both = tslora("generate", "--model", model, "--prompt", "x", "--prompt-file", file);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /give --prompt or --prompt-file, not both/);
  const missing = tslora("generate", "--model", model, "--prompt-file", join(dir, "none.txt"));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read --prompt-file \S*none\.txt \(ENOENT\)/);
});

test("missing model folder exits with status 1", () => {
  const { status, stderr } = tslora("info", "--model", "/nonexistent/model");
  assert.equal(status, 1);
  assert.match(stderr, /\/nonexistent\/model not found/);
});

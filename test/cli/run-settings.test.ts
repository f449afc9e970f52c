// eval, generate and merge with a `tslora train` run folder as --adapter: the run's
// train_config.json supplies eval's split settings and the quantization to warn about. Also the
// data line of eval with --val-data and the SQuAD-only options on JSONL data.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fixture } from "../helpers/fixtures.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "tslora-run-settings-"));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function tslora(args: string[]): Run {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, TSLORA_THREADS: "1", HF_HUB_OFFLINE: "1" },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

let model: string;
let squad: string;
let run: string;
/** The run's validation loss after its one step, as train printed it. */
let trainedLoss: string;

/** Copies the adapter files of the run (without train_config.json) to a new folder. */
function copyAdapter(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
    cpSync(join(run, file), join(dir, file));
  }
  return dir;
}

/** Returns a copy of the run's adapter with train_config.json replaced by `text`. */
function adapterWithConfig(name: string, text: string): string {
  const dir = copyAdapter(name);
  writeFileSync(join(dir, "train_config.json"), text);
  return dir;
}

function evalSquad(adapter: string, ...extra: string[]): Run {
  return tslora([
    "eval",
    "--model",
    model,
    "--adapter",
    adapter,
    "--data",
    squad,
    "--max-questions",
    "1",
    "--max-new-tokens",
    "4",
    "--samples",
    "0",
    ...extra,
  ]);
}

before(() => {
  model = fixture("models/stories260K");
  squad = fixture("data/squad/squad1.1-style-dev-first5articles.json");
  run = join(work, "run");
  // Not the eval defaults (seed 42, --val-fraction 0.1, --max-length 512), so a test can tell
  // the run's settings from the defaults.
  const train = tslora([
    "train",
    "--model",
    model,
    "--data",
    squad,
    "--out",
    run,
    "--steps",
    "1",
    "--eval-every",
    "0",
    "--seed",
    "7",
    "--val-fraction",
    "0.2",
    "--max-length",
    "96",
  ]);
  assert.equal(train.status, 0, train.stderr);
  const match = /^validation loss \S+ \(step 0\) -> (\d+\.\d{4}) \(step 1\)$/m.exec(train.stderr);
  assert.ok(match, `no final validation loss in: ${train.stderr}`);
  trainedLoss = match[1];
});

describe("eval with a run folder", () => {
  test("uses the run's split settings", () => {
    const result = evalSquad(run);
    assert.equal(result.status, 0, result.stderr);
    const configPath = join(run, "train_config.json");
    assert.ok(
      result.stdout.includes(
        `settings from ${configPath}: --seed 7, --val-fraction 0.2, --mask-prompt, --max-length 96\n`,
      ),
      result.stdout,
    );
    assert.match(result.stdout, /, split validation: 180 samples$/m);
    assert.match(result.stdout, /truncated to 96 tokens/);
    // The same examples and tokens as the run's last validation, so the same loss.
    assert.match(result.stdout, new RegExp(`^loss ${trainedLoss} \\|`, "m"));
    assert.doesNotMatch(result.stderr, /warning/);
  });

  test("checkpoint folder uses the run's file", () => {
    const result = evalSquad(join(run, "checkpoints", "step-000001"));
    assert.equal(result.status, 0, result.stderr);
    const configPath = join(run, "train_config.json");
    assert.ok(result.stdout.includes(`settings from ${configPath}: --seed 7,`), result.stdout);
    assert.match(result.stdout, /, split validation: 180 samples$/m);
    assert.doesNotMatch(result.stderr, /warning/);
  });

  test("warns about options that differ", () => {
    const result = evalSquad(run, "--seed", "42", "--max-length", "128", "--val-fraction", "0.2");
    assert.equal(result.status, 0, result.stderr);
    const warning = /^tslora eval: warning: options differ from the training run's .*$/m.exec(
      result.stderr,
    );
    assert.ok(warning, result.stderr);
    assert.ok(warning[0].includes(join(run, "train_config.json")), warning[0]);
    assert.match(warning[0], /--seed 42 \(run: --seed 7\)/);
    assert.match(warning[0], /--max-length 128 \(run: --max-length 96\)/);
    assert.doesNotMatch(warning[0], /--val-fraction/);
    // The command line wins, and only the options left out come from the run.
    assert.match(result.stdout, /truncated to 128 tokens/);
    assert.match(result.stdout, /^settings from .*: --mask-prompt$/m);
  });

  test("adapter without train_config.json", () => {
    const result = evalSquad(copyAdapter("peft-only"));
    assert.equal(result.status, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /settings from/);
    // The eval defaults: seed 42 holds out another article, and --max-length is 512.
    assert.match(
      result.stdout,
      /, split validation: 124 samples \(the 0\.1 share held out of --data; --split all scores all of it\)$/m,
    );
    assert.match(result.stdout, /truncated to 512 tokens/);
    assert.doesNotMatch(result.stderr, /warning/);
  });

  test("invalid setting value is ignored", () => {
    const settings = JSON.parse(readFileSync(join(run, "train_config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    const dir = adapterWithConfig("bad-seed", JSON.stringify({ ...settings, seed: "seven" }));
    const result = evalSquad(dir);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /train_config\.json: "seed" has the invalid value "seven"/);
    assert.match(result.stdout, /^settings from .*: --val-fraction 0\.2, --mask-prompt/m);
  });
});

describe("invalid train_config.json", () => {
  test("eval, generate and merge warn", () => {
    const dir = adapterWithConfig("broken-config", '{"seed": 7,');
    const configPattern = new RegExp(
      `warning: ${join(dir, "train_config.json").replace(/[.]/g, "\\.")} is not valid JSON`,
    );

    const evaluated = evalSquad(dir, "--max-length", "128");
    assert.equal(evaluated.status, 0, evaluated.stderr);
    assert.match(evaluated.stderr, configPattern);
    assert.doesNotMatch(evaluated.stdout, /settings from/);
    assert.match(
      evaluated.stdout,
      /, split validation: 124 samples \(the 0\.1 share held out of --data; --split all scores all of it\)$/m,
    );

    const generated = tslora(["generate", "--model", model, "--adapter", dir, "--prompt", "Once"]);
    assert.equal(generated.status, 0, generated.stderr);
    assert.match(generated.stderr, configPattern);

    const out = join(work, "merged-broken-config");
    const merged = tslora(["merge", "--model", model, "--adapter", dir, "--out", out]);
    assert.equal(merged.status, 0, merged.stderr);
    assert.match(merged.stderr, configPattern);
  });
});

describe("quantized run", () => {
  let dir: string;
  before(() => {
    const settings = JSON.parse(readFileSync(join(run, "train_config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    dir = adapterWithConfig("nf4-run", JSON.stringify({ ...settings, quantize: "nf4" }));
  });

  test("generate takes --quantize nf4 from the run", () => {
    const plain = tslora(["generate", "--model", model, "--adapter", dir, "--prompt", "Once"]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /warning/);
    assert.match(plain.stderr, /tslora generate: --quantize nf4 from \S*train_config\.json/);

    const none = tslora([
      ...["generate", "--model", model, "--adapter", dir, "--prompt", "Once"],
      ...["--quantize", "none"],
    ]);
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stderr, /warning: the adapter was trained against an nf4 base/);
    assert.match(none.stderr, /--quantize is none/);
    assert.match(none.stderr, /pass --quantize nf4/);

    const int8 = tslora([
      ...["generate", "--model", model, "--adapter", dir, "--prompt", "Once"],
      ...["--quantize", "int8"],
    ]);
    assert.equal(int8.status, 0, int8.stderr);
    assert.match(int8.stderr, /--quantize is int8/);

    const same = tslora([
      ...["generate", "--model", model, "--adapter", dir, "--prompt", "Once"],
      ...["--quantize", "nf4"],
    ]);
    assert.equal(same.status, 0, same.stderr);
    assert.doesNotMatch(same.stderr, /warning/);
  });

  test("eval takes --quantize nf4 from the run", () => {
    const plain = evalSquad(dir);
    assert.equal(plain.status, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /warning/);
    assert.match(plain.stdout, /^--quantize nf4 from \S*train_config\.json: the base the run/m);

    const same = evalSquad(dir, "--quantize", "nf4");
    assert.equal(same.status, 0, same.stderr);
    assert.doesNotMatch(same.stderr, /warning/);
    assert.equal(same.stdout.replace(/^--quantize nf4 from .*\n/m, ""), same.stdout);

    const none = evalSquad(dir, "--quantize", "none");
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stderr, /warning: the adapter was trained against an nf4 base/);
  });

  test("merge takes --quantize nf4 from the run", () => {
    const plain = tslora(["merge", "--model", model, "--adapter", dir, "--out", join(work, "m1")]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /warning/);
    assert.match(plain.stderr, /--quantize nf4 from \S*train_config\.json: the base the run/);

    const same = tslora([
      ...["merge", "--model", model, "--adapter", dir, "--out", join(work, "m2")],
      ...["--quantize", "nf4"],
    ]);
    assert.equal(same.status, 0, same.stderr);
    assert.doesNotMatch(same.stderr, /warning/);
    const weights = (folder: string) => readFileSync(join(work, folder, "model.safetensors"));
    assert.ok(weights("m1").equals(weights("m2")), "the default and nf4 merges differ");

    const none = tslora([
      ...["merge", "--model", model, "--adapter", dir, "--out", join(work, "m4")],
      ...["--quantize", "none"],
    ]);
    assert.equal(none.status, 0, none.stderr);
    assert.match(
      none.stderr,
      /warning: the adapter was trained against an nf4 base .*merging into the full-precision base gives slightly different weights/,
    );
    assert.match(none.stderr, /pass --quantize nf4/);
  });

  test("merge warns about --quantize on a full-precision run", () => {
    const result = tslora([
      ...["merge", "--model", model, "--adapter", run, "--out", join(work, "m3")],
      ...["--quantize", "int8"],
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /warning: the adapter was trained against the full-precision base/);
    assert.match(result.stderr, /leave out --quantize/);
  });

  test("eval and generate warn about --quantize on a full-precision run", () => {
    const evaluated = evalSquad(run, "--quantize", "nf4");
    assert.equal(evaluated.status, 0, evaluated.stderr);
    assert.match(
      evaluated.stderr,
      /warning: the adapter was trained against the full-precision base .*--quantize is nf4/,
    );
    assert.match(evaluated.stderr, /leave out --quantize to load the same base/);

    const generated = tslora([
      ...["generate", "--model", model, "--adapter", run, "--prompt", "Once"],
      ...["--quantize", "int8"],
    ]);
    assert.equal(generated.status, 0, generated.stderr);
    assert.match(generated.stderr, /trained against the full-precision base .*--quantize is int8/);

    const unquantized = evalSquad(run, "--quantize", "none");
    assert.equal(unquantized.status, 0, unquantized.stderr);
    assert.doesNotMatch(unquantized.stderr, /warning/);
  });
});

describe("eval on JSONL data", () => {
  let good: string;
  let valid: string;
  before(() => {
    const lines = (count: number, word: string) =>
      Array.from({ length: count }, (_, i) => JSON.stringify({ text: `Tom saw ${i} ${word}.` }))
        .join("\n")
        .concat("\n");
    good = join(work, "good.jsonl");
    valid = join(work, "valid.jsonl");
    writeFileSync(good, lines(50, "cats"));
    writeFileSync(valid, lines(100, "dogs"));
  });

  test("data line names the --val-data file", () => {
    const args = ["eval", "--model", model, "--data", good, "--val-data", valid];
    const validation = tslora(args);
    assert.equal(validation.status, 0, validation.stderr);
    assert.ok(
      validation.stdout.includes(
        `data: ${valid} (jsonl-text, 100 samples), split validation: 100 samples\n`,
      ),
      validation.stdout,
    );

    const train = tslora([...args, "--split", "train"]);
    assert.equal(train.status, 0, train.stderr);
    assert.ok(
      train.stdout.includes(`data: ${good} (jsonl-text, 50 samples), split train: 50 samples\n`),
      train.stdout,
    );

    const all = tslora([...args, "--split", "all"]);
    assert.equal(all.status, 0, all.stderr);
    assert.ok(
      all.stdout.includes(
        `data: ${good} (jsonl-text, 50 samples) and ${valid} (jsonl-text, 100 samples), ` +
          `split all: 150 samples\n`,
      ),
      all.stdout,
    );
  });

  test("data line names a folder's validation file", () => {
    const folder = join(work, "data-folder");
    mkdirSync(folder);
    cpSync(good, join(folder, "train.jsonl"));
    cpSync(valid, join(folder, "valid.jsonl"));
    const result = tslora(["eval", "--model", model, "--data", folder]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(
      result.stdout,
      /^data: \S*data-folder\/valid\.jsonl \(jsonl-text, 100 samples\), split validation: 100 samples$/m,
    );
  });

  test("rejects SQuAD-only options", () => {
    const base = ["eval", "--model", model, "--adapter", run, "--data", good, "--val-data", valid];
    const result = tslora([
      ...base,
      ...["--compare-base", "3", "--samples", "3", "--max-questions", "2"],
    ]);
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /--max-questions, --compare-base, --samples need SQuAD-style data/);
    assert.ok(
      result.stderr.includes(`the validation split (${valid} (jsonl-text, 100 samples)) has none`),
      result.stderr,
    );

    const maxNewTokens = tslora([...base, "--max-new-tokens", "8"]);
    assert.equal(maxNewTokens.status, 2, maxNewTokens.stderr);
    assert.match(maxNewTokens.stderr, /^tslora eval: --max-new-tokens needs SQuAD-style data/m);
  });

  test("scores SQuAD questions whichever file has them", () => {
    const squad = fixture("data/squad/allennlp-squad.json");
    // SQuAD --data, JSONL validation: the validation split has loss only.
    const jsonlValidation = tslora([
      "eval",
      "--model",
      model,
      "--data",
      squad,
      "--val-data",
      valid,
    ]);
    assert.equal(jsonlValidation.status, 0, jsonlValidation.stderr);
    assert.match(jsonlValidation.stdout, /^loss /m);
    assert.doesNotMatch(jsonlValidation.stdout, /exact match/);
    // JSONL --data, SQuAD validation: its questions get exact match and F1.
    const squadValidation = tslora([
      ...["eval", "--model", model, "--data", good, "--val-data", squad],
      ...["--max-length", "256", "--max-new-tokens", "4", "--max-questions", "2"],
    ]);
    assert.equal(squadValidation.status, 0, squadValidation.stderr);
    assert.match(squadValidation.stdout, /^SQuAD: exact match .* \| 2 questions$/m);
  });

  test("--split all reads a one-line file whole", () => {
    const oneLine = join(work, "one.jsonl");
    writeFileSync(oneLine, JSON.stringify({ text: "Tom saw a cat." }) + "\n");
    const result = tslora(["eval", "--model", model, "--data", oneLine, "--split", "all"]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /split all: 1 sample$/m);
  });
});

describe("a run's --dtype", () => {
  let out: string;
  let data: string;
  const trainArgs = (steps: number) => [
    ...["train", "--model", fixture("models/stories260K"), "--data", data, "--out", out],
    ...["--steps", String(steps), "--max-length", "64", "--eval-every", "0"],
  ];
  before(() => {
    data = join(work, "dtype.jsonl");
    const lines = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ text: `Tom has ${i} cats.` }),
    );
    writeFileSync(data, lines.join("\n") + "\n");
    out = join(work, "dtype-run");
    const trained = tslora([...trainArgs(1), "--dtype", "bf16"]);
    assert.equal(trained.status, 0, trained.stderr);
  });

  test("train records a given --dtype", () => {
    const settings = JSON.parse(readFileSync(join(out, "train_config.json"), "utf8")) as {
      dtype?: string;
    };
    assert.equal(settings.dtype, "bf16");
  });

  test("eval takes --dtype from the run", () => {
    const plain = tslora([
      "eval",
      "--model",
      fixture("models/stories260K"),
      "--data",
      data,
      "--adapter",
      out,
    ]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stdout, /^--dtype bf16 from \S*train_config\.json: the base weights/m);
    const other = tslora([
      ...["eval", "--model", fixture("models/stories260K"), "--data", data, "--adapter", out],
      ...["--dtype", "f32"],
    ]);
    assert.equal(other.status, 0, other.stderr);
    assert.match(other.stderr, /warning: the adapter was trained on bf16 base weights/);
  });

  test("resume keeps the run's --dtype", () => {
    const other = tslora([...trainArgs(2), "--resume", "--dtype", "f32"]);
    assert.notEqual(other.status, 0);
    assert.match(other.stderr, /settings changed since it was saved \(dtype: "bf16" -> "f32"\)/);

    const resumed = tslora([...trainArgs(2), "--resume"]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /--resume takes the options not given from .*--dtype/);
    assert.match(resumed.stderr, /weights bf16\)/);
  });
});

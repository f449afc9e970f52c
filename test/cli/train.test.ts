// `tslora train` on bad input: each case fails with a message that names the file and the line
// or field, and leaves no output folder behind.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runEval } from "../../src/cli/eval.js";
import { runTrain } from "../../src/cli/train.js";
import {
  EVAL_OPTIONS,
  formatHelp,
  parseCommandLine,
  parseOptions,
  TRAIN_OPTIONS,
} from "../../src/cli/train-options.js";
import { fixture } from "../helpers/fixtures.js";

const work = mkdtempSync(join(tmpdir(), "tslora-cli-train-"));

function file(name: string, text: string): string {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
}

function args(data: string, out: string, extra: string[] = []): string[] {
  return ["--model", fixture("models/stories260K"), "--data", data, "--out", out, ...extra];
}

/** Runs `tslora train` in this process and returns its exit status and what it wrote to stderr. */
async function runTrainCapturing(argv: string[]): Promise<{ status: number; stderr: string }> {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const status = await runTrain(argv);
    return { status, stderr: lines.join("") };
  } finally {
    process.stderr.write = write;
  }
}

const cases: { name: string; data: () => string; extra?: string[]; error: RegExp }[] = [
  {
    name: "malformed JSON line",
    data: () => file("bad.jsonl", '{"text": "a"}\n{"text": "b"\n'),
    error: /bad\.jsonl:2: invalid JSON/,
  },
  {
    name: "empty dataset",
    data: () => file("empty.jsonl", "\n\n"),
    error: /empty\.jsonl.*empty/,
  },
  {
    name: "missing field",
    data: () => file("missing.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n'),
    error: /missing\.jsonl:2: the field "completion" is missing/,
  },
  {
    name: "examples all too long",
    data: () => fixture("data/squad/allennlp-squad.json"),
    extra: ["--max-length", "12", "--val-data", fixture("data/squad/allennlp-squad.json")],
    error: /all \d+ samples are longer than maxLength 12.*raise maxLength to at least \d+/,
  },
  {
    name: "template without answer slot",
    data: () => fixture("data/squad/allennlp-squad.json"),
    extra: ["--template", "Question: {question}"],
    error: /no \{answer\} or \{completion\} slot/,
  },
  {
    name: "unknown data file type",
    data: () => file("data.csv", "a,b\n"),
    error: /data\.csv: unknown file type/,
  },
  {
    name: "plain text file",
    data: () => file("story.txt", "Once upon a time.\n"),
    error:
      /story\.txt: unknown file type "\.txt".*For plain text, write one \{"text": "\.\.\."\} JSON object per line into a \.jsonl file/,
  },
];

for (const c of cases) {
  test(`train rejects ${c.name}`, async () => {
    const out = join(work, `out-${c.name.replace(/ /g, "-")}`);
    await assert.rejects(runTrain(args(c.data(), out, c.extra)), c.error);
    assert.equal(existsSync(out), false, "no output folder is created");
  });
}

test("train rejects an output path that is a file", async () => {
  const out = file("out-file", "not a folder");
  await assert.rejects(runTrain(args(fixture("data/wikisql"), out)), /--out .*out-file is a file/);
});

test("train rejects a non-empty output without resume", async () => {
  const out = join(work, "used");
  file("used", "");
  await assert.rejects(
    runTrain(args(fixture("data/wikisql"), work)),
    /is not empty; pass --resume/,
  );
  await assert.rejects(
    runTrain(args(fixture("data/wikisql"), join(work, "fresh"), ["--resume"])),
    /--resume: no checkpoint/,
  );
  assert.ok(existsSync(out));
});

test("resume keeps the run folder and its history", async () => {
  const out = join(work, "resumed");
  const run = (extra: string[], steps = 4) =>
    runTrain(
      args(fixture("data/wikisql"), out, [
        "--steps",
        String(steps),
        "--batch-size",
        "2",
        "--max-length",
        "96",
        "--eval-every",
        "2",
        "--save-every",
        "2",
        ...extra,
      ]),
    );
  assert.equal(await run([]), 0);
  const config = readFileSync(join(out, "train_config.json"), "utf8");
  const metrics = readFileSync(join(out, "metrics.jsonl"), "utf8");

  // A rejected resume changes nothing in the folder.
  await assert.rejects(run(["--resume", "--lr", "0.5"]), /settings changed.*lr: /);
  assert.equal(readFileSync(join(out, "train_config.json"), "utf8"), config);
  assert.equal(readFileSync(join(out, "metrics.jsonl"), "utf8"), metrics);

  // A longer run continues from the last checkpoint and keeps the earlier lines.
  assert.equal(await run(["--resume"], 6), 0);
  const records = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; step: number });
  const trainSteps = records.filter((r) => r.type === "train").map((r) => r.step);
  assert.deepEqual(trainSteps, [1, 2, 3, 4, 5, 6]);
  const validationSteps = records.filter((r) => r.type === "validation").map((r) => r.step);
  assert.deepEqual(validationSteps, [0, 2, 4, 6]);
  const settings = JSON.parse(readFileSync(join(out, "train_config.json"), "utf8")) as {
    steps: number;
  };
  assert.equal(settings.steps, 6);

  // --out and --resume are enough: every other setting comes from train_config.json.
  const short = await runTrainCapturing(["--out", out, "--resume", "--steps", "7"]);
  assert.equal(short.status, 0, short.stderr);
  assert.match(
    short.stderr,
    /--resume takes the options not given from \S*train_config\.json: --model, --data, /,
  );
  assert.doesNotMatch(short.stderr, /--warmup/);
  // The options that leave the results alone are taken too: this run validated every 2 steps.
  assert.match(short.stderr, /--eval-every, --save-every, --keep-checkpoints/);
  const lastStep = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; step: number })
    .filter((r) => r.type === "train")
    .pop();
  assert.equal(lastStep?.step, 7);
});

test("train notes --val-data equal to --data", async () => {
  const data = join(fixture("data/wikisql"), "train.jsonl");
  const out = join(work, "same-val");
  const { status, stderr } = await runTrainCapturing(
    args(data, out, [
      "--val-data",
      data,
      "--steps",
      "1",
      "--max-length",
      "96",
      "--eval-every",
      "0",
    ]),
  );
  assert.equal(status, 0);
  assert.match(stderr, /note: --val-data is the --data file/);
  assert.doesNotMatch(stderr, /--val-fraction has no effect/);

  const withFraction = await runTrainCapturing(
    args(data, join(work, "same-val-fraction"), [
      ...["--val-data", data, "--val-fraction", "0.3", "--steps", "1"],
      ...["--max-length", "96", "--eval-every", "0"],
    ]),
  );
  assert.equal(withFraction.status, 0);
  assert.match(
    withFraction.stderr,
    /note: --val-fraction has no effect because --val-data is the validation data/,
  );
});

test("val-fraction 0 trains on all the data", async () => {
  const data = fixture("data/squad/allennlp-squad.json");
  const out = join(work, "no-validation");
  const { status, stderr: log } = await runTrainCapturing(
    args(data, out, ["--val-fraction", "0", "--steps", "2", "--max-length", "256"]),
  );
  assert.equal(status, 0);
  // Every one of the file's 5 questions is a training example.
  assert.match(log, /^validation: none \(--val-fraction 0\), so no validation loss is computed$/m);
  assert.match(log, /^training set: 5 examples, /m);
  assert.doesNotMatch(log, /^validation set:/m);
  assert.doesNotMatch(log, /validation \| loss/);
  const records = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string });
  assert.equal(records.filter((r) => r.type === "validation").length, 0);
  assert.equal(records.filter((r) => r.type === "train").length, 2);

  // eval adopts the run's --val-fraction 0, so its default validation split is empty.
  const evalArgs = ["--model", fixture("models/stories260K"), "--data", data, "--adapter", out];
  await assert.rejects(
    runEval(evalArgs),
    /the validation split is empty because --val-fraction 0 holds nothing out of --data/,
  );
});

test("train options reject bad values", () => {
  assert.throws(
    () => parseOptions("train", ["--lr", "fast"], TRAIN_OPTIONS),
    /--lr must be a number, got "fast"/,
  );
  assert.throws(
    () => parseOptions("train", ["--r", "0"], TRAIN_OPTIONS),
    /--r must be >= 1, got 0/,
  );
  assert.throws(
    () => parseOptions("train", ["--schedule", "step"], TRAIN_OPTIONS),
    /--schedule must be one of cosine, linear, constant/,
  );
  assert.throws(
    () => parseOptions("train", ["--data", "x"], TRAIN_OPTIONS),
    /missing required options --model, --out/,
  );
  assert.throws(
    () => parseOptions("train", ["--lerning-rate", "1"], TRAIN_OPTIONS),
    /Unknown option '--lerning-rate'.*Did you mean --lr\?/,
  );
});

test("unknown options get a suggestion", () => {
  const cases: [string, string | null][] = [
    ["--learning_rate", "lr"],
    ["--output_dir", "out"],
    ["--max-seq-length", "max-length"],
    ["--gradient-checkpointing", "grad-checkpointing"],
    ["--batch_size", "batch-size"],
    ["--seeed", "seed"],
    ["--colour", null],
  ];
  for (const [flag, expected] of cases) {
    assert.throws(
      () => parseOptions("train", [flag, "1"], TRAIN_OPTIONS),
      (err: Error) => {
        const hint = /Did you mean --([\w-]+)\?/.exec(err.message)?.[1] ?? null;
        assert.equal(hint, expected, `${flag}: ${err.message}`);
        return true;
      },
    );
  }
});

test("train help lists every option with its default", () => {
  const help = formatHelp("tslora train", "summary", TRAIN_OPTIONS);
  for (const spec of TRAIN_OPTIONS) {
    assert.match(help, new RegExp(`--${spec.name}\\b`), spec.name);
    const hasDefault =
      spec.required || spec.default !== undefined || spec.defaultText !== undefined;
    assert.ok(hasDefault, `--${spec.name} states a default or is required`);
  }
  assert.match(help, /--lr <rate>\n\s+Peak learning rate\. 2e-4 .* Default: 0\.0002\./s);
  assert.match(help, /--r <rank>\n\s+LoRA rank\. Default: 8\./);
});

test("eval help lists every option with its default", () => {
  const help = formatHelp("tslora eval", "summary", EVAL_OPTIONS);
  for (const spec of EVAL_OPTIONS) {
    assert.match(help, new RegExp(`--${spec.name}\\b`), spec.name);
    const hasDefault =
      spec.required || spec.default !== undefined || spec.defaultText !== undefined;
    assert.ok(hasDefault, `--${spec.name} states a default or is required`);
  }
});

/** Returns the --help paragraph of option `name` with its lines joined by single spaces. */
function helpParagraph(help: string, name: string): string {
  const paragraphs = help.split(/\n(?= {2}--)/);
  const found = paragraphs.find((p) => new RegExp(`^ {2}--${name}[ \n]`).test(p));
  assert.ok(found !== undefined, `no --${name} in the help`);
  return found.replace(/\s+/g, " ").trim();
}

test("train and eval help describe --data", () => {
  const train = helpParagraph(formatHelp("tslora train", "summary", TRAIN_OPTIONS), "data");
  const evalHelp = helpParagraph(formatHelp("tslora eval", "summary", EVAL_OPTIONS), "data");
  for (const help of [train, evalHelp]) {
    assert.match(help, /SQuAD 2\.0 questions without an answer are skipped/);
    assert.match(help, /a \.parquet file/);
    assert.match(help, /plain text goes in as one \{"text": \.\.\.\} object per line/);
  }
  assert.match(train, /so they are not trained\./);
  assert.match(evalHelp, /so they are not scored\./);
});

test("eval help says --mask-prompt scores", () => {
  const train = helpParagraph(formatHelp("tslora train", "summary", TRAIN_OPTIONS), "mask-prompt");
  const evalHelp = helpParagraph(formatHelp("tslora eval", "summary", EVAL_OPTIONS), "mask-prompt");
  assert.match(train, /Learn only the answer/);
  assert.match(evalHelp, /Score the loss on the answer \(completion\) tokens only/);
  assert.doesNotMatch(evalHelp, /[Ll]earn/);
});

test("eval help names the run's defaults", () => {
  const help = formatHelp("tslora eval", "summary", EVAL_OPTIONS);
  const runDefault = "Default: the training run's value when --adapter has a train_config.json";
  for (const name of ["seed", "val-fraction", "val-data", "template", "mask-prompt"]) {
    assert.ok(helpParagraph(help, name).includes(runDefault), name);
  }
  assert.ok(helpParagraph(help, "max-length").includes(`${runDefault}, else 512`));
  assert.ok(helpParagraph(help, "seed").endsWith(`${runDefault}, else 42.`));
  assert.ok(helpParagraph(help, "samples").includes("SQuAD data only."));
  assert.ok(helpParagraph(help, "adapter").includes("train_config.json"));
});

test("parseCommandLine lists the given options", () => {
  const parsed = parseCommandLine(
    "eval",
    ["--model", "m", "--data", "d", "--seed", "42", "--no-mask-prompt"],
    EVAL_OPTIONS,
  );
  assert.ok(parsed !== null);
  assert.deepEqual([...parsed.given].sort(), ["data", "mask-prompt", "model", "seed"]);
  // Defaults are filled in but not listed as given.
  assert.equal(parsed.values["val-fraction"], 0.1);
  assert.equal(parsed.values["mask-prompt"], false);
});

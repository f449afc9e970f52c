// The tslora command, run as a child process, on bad input: broken data, model and adapter
// folders, invalid option values and unwritable outputs. Each case expects one error message
// that names the file or option at fault, no stack trace, and no output folder left behind.
// Cases marked todo still fail, and their todo text states what is wrong.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fixture } from "../helpers/fixtures.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "tslora-bad-input-"));
const hfHome = join(work, "hf-home");

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI offline on one thread; a run longer than `timeoutMs` is killed. */
function tslora(args: string[], timeoutMs = 60_000): Run {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
    env: { ...process.env, TSLORA_THREADS: "1", HF_HUB_OFFLINE: "1", HF_HOME: hfHome },
  });
  return {
    status: result.status,
    signal: result.signal,
    stdout: result.stdout,
    stderr: result.stderr,
  };
}

/**
 * Checks a failed run: the exit status, no stack trace, nothing on stdout and every pattern in
 * stderr (the file or option at fault, what was expected).
 */
function assertError(run: Run, status: number, ...patterns: RegExp[]): void {
  assert.equal(run.signal, null, `killed by ${run.signal}; stderr: ${run.stderr}`);
  assert.equal(run.status, status, run.stderr);
  assert.doesNotMatch(run.stderr, /\n {4}at /, "stderr has a stack trace");
  assert.equal(run.stdout, "", "stdout is not empty");
  for (const pattern of patterns) assert.match(run.stderr, pattern);
}

/** Returns a fresh path in the work folder that does not exist yet. */
let pathCount = 0;
function freshPath(name: string): string {
  pathCount++;
  return join(work, `${name}-${pathCount}`);
}

function writeText(name: string, text: string): string {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
}

/** Copies a fixture folder to the work folder and makes the copies writable. */
function copyFolder(source: string, name: string): string {
  const target = join(work, name);
  cpSync(source, target, { recursive: true });
  chmodSync(target, 0o755);
  for (const file of readdirSync(target)) chmodSync(join(target, file), 0o755);
  return target;
}

function editJson(path: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  edit(json);
  writeFileSync(path, JSON.stringify(json, null, 2));
}

/** Rewrites a safetensors file without the tensor `drop`. */
function dropTensor(path: string, drop: string): void {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const data = bytes.subarray(8 + headerLength);
  const keptHeader: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      keptHeader[name] = entry;
      continue;
    }
    if (name === drop) continue;
    const [begin, end] = entry.data_offsets;
    parts.push(data.subarray(begin, end));
    keptHeader[name] = { ...entry, data_offsets: [offset, offset + end - begin] };
    offset += end - begin;
  }
  assert.ok(drop in header, `${path} has no tensor ${drop}`);
  const json = Buffer.from(JSON.stringify(keptHeader));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  writeFileSync(path, Buffer.concat([length, padded, ...parts]));
}

/** Returns true when `parent` has no leftover temporary folder of a merge into `name`. */
function noTemporaryFolders(parent: string, name: string): boolean {
  return !readdirSync(parent).some((f) => f.startsWith(`.${name}.`));
}

const textLines = Array.from({ length: 12 }, (_, i) =>
  JSON.stringify({ text: `Tom had ${i} cats.` }),
);

let model: string;
let data: string;
let adapter: string;

before(() => {
  model = fixture("models/stories260K");
  data = writeText("text.jsonl", textLines.join("\n") + "\n");
  // An adapter of stories260K with r 8 on q_proj and v_proj, from one training step.
  adapter = join(work, "adapter");
  const run = tslora([
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    adapter,
    "--steps",
    "1",
    "--max-length",
    "32",
    "--eval-every",
    "0",
    "--val-fraction",
    "0.25",
  ]);
  assert.equal(run.status, 0, run.stderr);
});

/** Returns the arguments of a one-step training run on `dataPath` into a fresh --out folder. */
function trainArgs(dataPath: string, out = freshPath("out"), modelDir = model): string[] {
  return ["train", "--model", modelDir, "--data", dataPath, "--out", out, "--steps", "1"];
}

describe("train data", () => {
  test("malformed JSONL line", () => {
    const path = writeText("bad-line.jsonl", '{"text":"a"}\n{"text": "broken\n{"text":"c"}\n');
    const out = freshPath("out");
    assertError(tslora(trainArgs(path, out)), 1, /bad-line\.jsonl:2: invalid JSON/);
    assert.equal(existsSync(out), false, "--out was created");
  });

  test("empty JSONL dataset", () => {
    const path = writeText("empty.jsonl", "");
    assertError(tslora(trainArgs(path)), 1, /empty\.jsonl: the dataset is empty/);
  });

  test("JSONL line without a known field", () => {
    const path = writeText("no-field.jsonl", '{"text":"a"}\n{"txt":"b"}\n');
    assertError(
      tslora(trainArgs(path)),
      1,
      /no-field\.jsonl:2: unknown line format with keys txt/,
      /expected "text"/,
    );
  });

  test("SQuAD file with wrong types", () => {
    const squad = {
      version: "1.1",
      data: [
        {
          title: "A",
          paragraphs: [
            {
              context: "Tom has a red ball.",
              qas: [
                { id: "1", question: "What color?", answers: [{ text: "red", answer_start: "8" }] },
              ],
            },
          ],
        },
      ],
    };
    const path = writeText("wrong-types.json", JSON.stringify(squad));
    assertError(
      tslora(trainArgs(path)),
      1,
      /wrong-types\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]\.answer_start must be a number, got string/,
    );
  });

  test("every example longer than --max-length", () => {
    const long = "word ".repeat(200);
    const lines = [0, 1, 2].map((i) => JSON.stringify({ prompt: "Q", completion: `${i} ${long}` }));
    const path = writeText("too-long.jsonl", lines.join("\n") + "\n");
    assertError(
      tslora([...trainArgs(path), "--max-length", "16"]),
      1,
      /too-long\.jsonl:1/,
      /raise maxLength to at least \d+ \(--max-length on the command line\)/,
    );
  });

  test("template without an answer slot", () => {
    const path = writeText("fields.jsonl", '{"q":"Who?","a":"me"}\n{"q":"What?","a":"it"}\n');
    assertError(
      tslora([...trainArgs(path), "--template", "Q: {q} A: {a}"]),
      2,
      /--template/,
      /has no \{answer\} or \{completion\} slot/,
    );
  });

  test("SQuAD file with one article", () => {
    assertError(
      tslora(trainArgs(fixture("data/squad/allennlp-squad.json"))),
      1,
      /needs at least 2/,
      /--val-data/,
    );
  });

  test("missing --val-data file", () => {
    assertError(
      tslora([...trainArgs(data), "--val-data", join(work, "absent.jsonl")]),
      1,
      /absent\.jsonl" is neither an existing file or folder nor a Hub dataset id/,
    );
  });
});

describe("model folders", () => {
  const verbs = ["info", "generate", "merge", "train", "eval"] as const;

  /** Returns the arguments that run `verb` on the model folder `dir`. */
  function argsFor(verb: (typeof verbs)[number], dir: string): string[] {
    switch (verb) {
      case "info":
        return ["info", "--model", dir];
      case "generate":
        return ["generate", "--model", dir, "--prompt", "Once", "--max-new-tokens", "2"];
      case "merge":
        return ["merge", "--model", dir, "--adapter", adapter, "--out", freshPath("merged")];
      case "train":
        return trainArgs(data, freshPath("out"), dir);
      case "eval":
        return ["eval", "--model", dir, "--data", data, "--val-fraction", "0.25"];
    }
  }

  for (const verb of verbs) {
    test(`${verb}: model folder not found`, () => {
      assertError(tslora(argsFor(verb, join(work, "no-such-model"))), 1, /no-such-model not found/);
    });

    test(`${verb}: folder without config.json`, () => {
      const dir = copyFolder(model, `no-config-${verb}`);
      rmSync(join(dir, "config.json"));
      assertError(tslora(argsFor(verb, dir)), 1, /no-config-\w+\/config\.json not found/);
    });

    test(`${verb}: truncated model.safetensors`, () => {
      const dir = copyFolder(model, `truncated-${verb}`);
      truncateSync(join(dir, "model.safetensors"), 600_000);
      assertError(tslora(argsFor(verb, dir)), 1, /model\.safetensors: .*the file is truncated/);
    });

    test(`${verb}: unknown model_type`, () => {
      const dir = copyFolder(model, `falcon-${verb}`);
      editJson(join(dir, "config.json"), (c) => (c.model_type = "falcon"));
      assertError(
        tslora(argsFor(verb, dir)),
        1,
        /unknown model_type "falcon" in .*config\.json; known model types: gpt2, llama/,
      );
    });

    test(`${verb}: hidden size disagrees with tensors`, () => {
      const dir = copyFolder(model, `hidden-${verb}`);
      editJson(join(dir, "config.json"), (c) => (c.hidden_size = 128));
      assertError(tslora(argsFor(verb, dir)), 1, /does not match/, /config/);
    });
  }

  test("config.json without model_type field", () => {
    const dir = copyFolder(model, "no-model-type");
    editJson(join(dir, "config.json"), (c) => delete c.model_type);
    assertError(tslora(argsFor("generate", dir)), 1, /config\.json/, /model_type/);
  });

  test("info: hidden size names the embedding", () => {
    const dir = copyFolder(model, "hidden-info-detail");
    editJson(join(dir, "config.json"), (c) => (c.hidden_size = 128));
    assertError(
      tslora(["info", "--model", dir]),
      1,
      /model\.embed_tokens\.weight has shape \[512, 64\]/,
      /hidden size 128, so \[512, 128\]/,
    );
  });

  test("info: layer count disagrees with tensors", () => {
    const dir = copyFolder(model, "layers-info");
    editJson(join(dir, "config.json"), (c) => (c.num_hidden_layers = 7));
    assertError(tslora(["info", "--model", dir]), 1, /stores 5 transformer blocks, .*gives 7/);
  });

  test("generate: config.json is invalid JSON", () => {
    const dir = copyFolder(model, "bad-config-json");
    writeFileSync(join(dir, "config.json"), '{"model_type": "llama",');
    const run = tslora(argsFor("generate", dir));
    assertError(run, 1, /config: .*bad-config-json\/config\.json is not valid JSON/);
    assert.doesNotMatch(run.stderr, /loadTokenizer/);
  });

  test("generate: missing tokenizer.json", () => {
    const dir = copyFolder(model, "no-tokenizer");
    rmSync(join(dir, "tokenizer.json"));
    assertError(tslora(argsFor("generate", dir)), 1, /no-tokenizer\/tokenizer\.json not found/);
  });

  test("merge: model without tokenizer.json warns", () => {
    const dir = join(work, "merge-no-tokenizer");
    mkdirSync(dir);
    for (const name of ["config.json", "model.safetensors", "generation_config.json"]) {
      cpSync(join(model, name), join(dir, name));
    }
    const out = freshPath("merged");
    const run = tslora(["merge", "--model", dir, "--adapter", adapter, "--out", out]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /merge-no-tokenizer has no tokenizer\.json/);
    assert.ok(existsSync(join(out, "model.safetensors")));
  });
});

describe("adapter folders", () => {
  const loraA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

  /** Runs generate, merge and eval with `dir` as --adapter and checks each error. */
  function assertAdapterError(dir: string, ...patterns: RegExp[]): void {
    assertError(
      tslora(["generate", "--model", model, "--adapter", dir, "--prompt", "Once"]),
      1,
      ...patterns,
    );
    const out = freshPath("merged");
    assertError(
      tslora(["merge", "--model", model, "--adapter", dir, "--out", out]),
      1,
      ...patterns,
    );
    assert.equal(existsSync(out), false, "merge left its --out folder");
    assert.ok(
      noTemporaryFolders(work, out.slice(work.length + 1)),
      "merge left a temporary folder",
    );
    assertError(
      tslora([
        "eval",
        "--model",
        model,
        "--adapter",
        dir,
        "--data",
        data,
        "--val-fraction",
        "0.25",
      ]),
      1,
      ...patterns,
    );
  }

  test("r disagrees with the tensors", () => {
    const dir = copyFolder(adapter, "adapter-r4");
    editJson(join(dir, "adapter_config.json"), (c) => (c.r = 4));
    assertAdapterError(
      dir,
      /adapter-r4 does not fit the model \(20 problems\)/,
      /has shape \[8, 64\], expected \[4, 64\] = \[r, in_features\] \(r = 4 from adapter_config\.json\)/,
      /Every lora_A tensor has rank 8, but adapter_config\.json sets "r": 4/,
    );
  });

  test("r is not a number", () => {
    const dir = copyFolder(adapter, "adapter-r-text");
    editJson(join(dir, "adapter_config.json"), (c) => (c.r = "eight"));
    assertAdapterError(dir, /adapter-r-text\/adapter_config\.json/, /r must be an integer > 0/);
  });

  test("tensor missing from the file", () => {
    const dir = copyFolder(adapter, "adapter-missing-key");
    dropTensor(join(dir, "adapter_model.safetensors"), loraA);
    assertAdapterError(
      dir,
      /\(1 problem\)/,
      new RegExp(`missing key "${loraA.replace(/\./g, "\\.")}"`),
    );
  });

  test("adapter_config.json missing", () => {
    const dir = join(work, "adapter-no-config");
    mkdirSync(dir);
    cpSync(join(adapter, "adapter_model.safetensors"), join(dir, "adapter_model.safetensors"));
    assertAdapterError(dir, /adapter-no-config\/adapter_config\.json not found/);
  });

  test("truncated adapter_model.safetensors", () => {
    const dir = copyFolder(adapter, "adapter-truncated");
    truncateSync(join(dir, "adapter_model.safetensors"), 2_000);
    assertAdapterError(dir, /adapter_model\.safetensors: .*truncated/);
  });

  test("adapter of another model names its base first", () => {
    const other = fixture("models/TinyStories-656K");
    const run = tslora(["generate", "--model", other, "--adapter", adapter, "--prompt", "Once"]);
    assertError(run, 1, /\(20 problems\)/);
    const firstLine = run.stderr.split("\n")[0];
    assert.match(firstLine, /names the base model ".*stories260K"/);
  });

  test("adapter weights file instead of the folder", () => {
    const file = join(adapter, "adapter_model.safetensors");
    assertAdapterError(
      file,
      /adapter_model\.safetensors is a file/,
      new RegExp(`pass its folder ${adapter.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} as`),
      /--adapter on the command line/,
    );
  });

  test("target module the model lacks", () => {
    const dir = copyFolder(adapter, "adapter-o-proj");
    editJson(join(dir, "adapter_config.json"), (c) => (c.target_modules = ["q_proj", "o_proj"]));
    assertAdapterError(dir, /unexpected key .*v_proj\.lora_A\.weight/, /missing key .*o_proj/);
  });
});

describe("option values", () => {
  // A todo case may run for a long time, so every run here is killed after 10 s.
  const cases: { name: string; args: string[]; error: RegExp; todo?: string }[] = [
    { name: "--lr abc", args: ["--lr", "abc"], error: /--lr must be a number, got "abc"/ },
    { name: "--steps=-1", args: ["--steps=-1"], error: /--steps must be >= 1, got -1/ },
    { name: "--steps 1.5", args: ["--steps", "1.5"], error: /--steps must be a whole number/ },
    {
      name: "--threads 0",
      args: ["--threads", "0"],
      error: /--threads must be >= 1 and at most 256, got 0/,
    },
    { name: "--threads abc", args: ["--threads", "abc"], error: /--threads must be a number/ },
    { name: "--r 0", args: ["--r", "0"], error: /--r must be >= 1, got 0/ },
    { name: "--schedule", args: ["--schedule", "x"], error: /--schedule must be one of cosine/ },
    { name: "unknown option", args: ["--bogus"], error: /Unknown option '--bogus'/ },
    { name: "missing value", args: ["--lr"], error: /Option '--lr <value>' argument missing/ },
    {
      name: "--steps -1",
      args: ["--steps", "-1"],
      error: /--steps must be >= 1, got -1/,
    },
    {
      name: "--steps 0x10",
      args: ["--steps", "0x10"],
      error: /--steps must be a whole number, got "0x10"/,
    },
    {
      name: "--threads 1000",
      args: ["--threads", "1000"],
      error: /--threads must be >= 1 and at most 256, got 1000/,
    },
    {
      name: "--val-fraction 1.5",
      args: ["--val-fraction", "1.5"],
      error: /--val-fraction must be/,
    },
    { name: "--alpha 0", args: ["--alpha", "0"], error: /--alpha must be above 0, got 0/ },
    { name: "--alpha -2", args: ["--alpha", "-2"], error: /--alpha must be above 0, got -2/ },
    { name: "--lr 0", args: ["--lr", "0"], error: /^tslora train: --lr must be above 0, got 0$/m },
    { name: "--epochs 0", args: ["--epochs", "0"], error: /--epochs must be above 0, got 0/ },
    {
      name: "--dropout 1",
      args: ["--dropout", "1"],
      error: /--dropout must be >= 0 and below 1, got 1/,
    },
    {
      name: "--dropout -0.1",
      args: ["--dropout", "-0.1"],
      error: /--dropout must be >= 0 and below 1, got -0.1/,
    },
    {
      name: "--weight-decay -0.01",
      args: ["--weight-decay", "-0.01"],
      error: /--weight-decay must be >= 0, got -0.01/,
    },
    { name: "--warmup -1", args: ["--warmup", "-1"], error: /--warmup must be >= 0, got -1/ },
    {
      name: "--warmup above --steps",
      args: ["--warmup", "5"],
      error: /--warmup 5 is more than the 1 training steps \(--steps\); lower --warmup/,
    },
    {
      name: "--max-grad-norm -1",
      args: ["--max-grad-norm", "-1"],
      error: /--max-grad-norm must be >= 0, got -1/,
    },
    {
      name: "--min-lr-ratio 2",
      args: ["--min-lr-ratio", "2"],
      error: /--min-lr-ratio must be >= 0 and at most 1, got 2/,
    },
    {
      name: "empty --target-modules name",
      args: ["--target-modules", "q_proj,,v_proj"],
      error: /--target-modules must be comma-separated module names/,
    },
  ];
  for (const c of cases) {
    test(`train ${c.name}`, { todo: c.todo }, () => {
      const out = freshPath("out");
      const run = tslora([...withoutOptionsOf(trainArgs(data, out), c.args), ...c.args], 10_000);
      assertError(run, 2, c.error);
      assert.equal(existsSync(out), false, "--out was created");
    });
  }

  test("train option given twice", () => {
    const out = freshPath("out");
    const run = tslora([...trainArgs(data, out), "--steps", "3"], 10_000);
    assertError(run, 2, /option given more than once: --steps \(--steps 1, --steps 3\)/);
    assert.equal(existsSync(out), false, "--out was created");
  });

  for (const verb of ["eval", "generate", "merge", "info"]) {
    test(`${verb} unknown option`, () => {
      assertError(tslora([verb, "--model", model, "--bogus"]), 2, /Unknown option '--bogus'/);
    });
  }

  const generateCases: { name: string; args: string[]; error: RegExp }[] = [
    { name: "--top-p 2", args: ["--top-p", "2"], error: /--top-p must be above 0 and at most 1/ },
    {
      name: "--repetition-penalty 0",
      args: ["--repetition-penalty", "0"],
      error: /--repetition-penalty must be above 0/,
    },
    { name: "empty --stop", args: ["--stop", ""], error: /--stop must not be empty/ },
    { name: "--threads 1000", args: ["--threads", "1000"], error: /--threads must be at most 256/ },
    {
      name: "--max-new-tokens abc",
      args: ["--max-new-tokens", "abc"],
      error: /--max-new-tokens must be a number/,
    },
    {
      name: "--temperature=-1",
      args: ["--temperature=-1"],
      error: /--temperature must be >= 0, got -1/,
    },
  ];
  for (const c of generateCases) {
    test(`generate ${c.name}`, () => {
      const run = tslora(["generate", "--model", model, "--prompt", "Once", ...c.args], 30_000);
      assertError(run, 2, c.error);
    });
  }

  test("train --max-length above the context", () => {
    const out = freshPath("out");
    const run = tslora([...trainArgs(data, out), "--max-length", "2048"]);
    assertError(
      run,
      2,
      /--max-length 2048 is above the context length of the model \(512 tokens/,
      /stories260K\/config\.json\); pass --max-length 512 or less/,
    );
    assert.equal(existsSync(out), false, "--out was left behind");
  });

  test("eval --max-length above the context", () => {
    const run = tslora([
      "eval",
      "--model",
      model,
      "--data",
      data,
      "--val-fraction",
      "0.25",
      "--max-length",
      "513",
    ]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /--max-length 513 is above the context length of the model/);
    assert.match(run.stderr, /pass --max-length 512 or less/);
  });

  test("train default --max-length follows a short context", () => {
    const dir = copyFolder(model, "context-64");
    editJson(join(dir, "config.json"), (c) => (c.max_position_embeddings = 64));
    const out = freshPath("out");
    const run = tslora([...trainArgs(data, out, dir), "--eval-every", "0"]);
    assert.equal(run.status, 0, run.stderr);
    const config = JSON.parse(readFileSync(join(out, "train_config.json"), "utf8")) as {
      maxLength: number;
    };
    assert.equal(config.maxLength, 64);
  });

  test("generate warns about a prompt past the context", () => {
    const prompt = "Once upon a time ".repeat(150);
    const run = tslora(
      ["generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "2"],
      30_000,
    );
    assert.equal(run.status, 0, run.stderr);
    const warnings = run.stderr.split("\n").filter((line) => line.includes("warning"));
    assert.equal(warnings.length, 1, run.stderr);
    assert.match(
      warnings[0],
      /the prompt \(\d+ tokens\) plus --max-new-tokens 2 exceed the model's context length of 512 tokens/,
    );
  });

  test("generate within the context does not warn", () => {
    const run = tslora(["generate", "--model", model, "--prompt", "Once", "--max-new-tokens", "2"]);
    assert.equal(run.status, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /warning/);
  });

  test("eval --max-new-tokens above --max-length", () => {
    const squad = fixture("data/squad/squad1.1-style-dev-first5articles.json");
    const run = tslora([
      "eval",
      "--model",
      model,
      "--data",
      squad,
      "--max-questions",
      "1",
      "--max-new-tokens",
      "600",
    ]);
    assertError(run, 2, /--max-new-tokens 600/, /--max-length 512/);
  });
});

describe("output folders", () => {
  test("train --out is a file", () => {
    const file = writeText("out-file", "x");
    assertError(tslora(trainArgs(data, file)), 2, /--out .*out-file is a file/);
  });

  test("merge --out is a file", () => {
    const file = writeText("merge-out-file", "x");
    const run = tslora(["merge", "--model", model, "--adapter", adapter, "--out", file]);
    assertError(
      run,
      1,
      /merge-out-file exists and is not a folder; choose another output folder \(--out\)/,
    );
    assert.doesNotMatch(run.stderr, /merge: merge:/);
  });

  test("merge --out is not empty", () => {
    const out = freshPath("full");
    mkdirSync(out);
    writeFileSync(join(out, "keep.txt"), "x");
    const run = tslora(["merge", "--model", model, "--adapter", adapter, "--out", out]);
    assertError(run, 1, /is not empty; choose another output folder \(--out\) or pass --force/);
    assert.deepEqual(readdirSync(out), ["keep.txt"]);
  });

  const linux = existsSync("/proc/self");

  test("merge --out under /proc", { skip: !linux && "needs Linux procfs" }, () => {
    const run = tslora(
      ["merge", "--model", model, "--adapter", adapter, "--out", "/proc/tslora-test/merged"],
      20_000,
    );
    assertError(run, 1, /cannot create folder \/proc\/tslora-test \(ENOENT\)/);
  });

  test(
    "train --out under /proc",
    {
      skip: !linux && "needs Linux procfs",
    },
    () => {
      const run = tslora(trainArgs(data, "/proc/tslora-test/run"), 15_000);
      assertError(run, 1, /\/proc\/tslora-test/);
    },
  );

  test("train checks --out before the model", { skip: !linux && "needs Linux procfs" }, () => {
    const missingModel = join(work, "no-such-model-for-out");
    const run = tslora(trainArgs(data, "/proc/tslora-test/run", missingModel), 15_000);
    assertError(run, 1, /--out \/proc\/tslora-test\/run: cannot create folder \/proc\/tslora-test/);
    assert.doesNotMatch(run.stderr, /no-such-model-for-out/);
  });

  test("train removes --out after a late failure", () => {
    const chat = writeText(
      "chat.jsonl",
      Array.from({ length: 8 }, () =>
        JSON.stringify({
          messages: [
            { role: "user", content: "Hi" },
            { role: "assistant", content: "Hello" },
          ],
        }),
      ).join("\n") + "\n",
    );
    const parent = freshPath("late-failure");
    const run = tslora(trainArgs(chat, join(parent, "run")));
    assertError(run, 1, /no chat template/);
    assert.equal(existsSync(parent), false, "the created parent of --out was left behind");
  });

  test("train --resume without a run", () => {
    const missing = freshPath("no-run");
    assertError(
      tslora(["train", "--out", missing, "--resume"]),
      2,
      /--resume: \S*no-run-\d+ does not exist, so there is no run to resume/,
    );

    const empty = freshPath("empty-run");
    mkdirSync(empty);
    assertError(
      tslora(["train", "--out", empty, "--resume"]),
      2,
      /--resume: \S*empty-run-\d+ has no train_config\.json, so the run's options are unknown/,
    );

    const broken = freshPath("broken-run");
    mkdirSync(broken);
    writeFileSync(join(broken, "train_config.json"), '{"model": ');
    assertError(
      tslora(["train", "--out", broken, "--resume"]),
      2,
      /--resume: \S*train_config\.json is invalid \(.*JSON.*\), so the run's options are unknown/,
    );
  });

  test("train --resume names a bad value of train_config.json", () => {
    const out = freshPath("bad-value");
    mkdirSync(out);
    writeFileSync(join(out, "train_config.json"), JSON.stringify({ model, data, steps: "many" }));
    assertError(
      tslora(["train", "--out", out, "--resume"]),
      2,
      /--steps must be a number, got "many" \(the value comes from \S*train_config\.json; correct it there/,
    );
  });

  test("train restarts a run with no checkpoint", {}, () => {
    const out = freshPath("no-checkpoint");
    mkdirSync(out);
    writeFileSync(join(out, "train_config.json"), "{}\n");
    const plain = tslora([...trainArgs(data, out), "--eval-every", "0"]);
    const resumed = tslora([...trainArgs(data, out), "--eval-every", "0", "--resume"]);
    const started = plain.status === 0 || resumed.status === 0;
    assert.ok(started, `without --resume: ${plain.stderr}\nwith --resume: ${resumed.stderr}`);
  });
});

describe("interrupt", () => {
  /** Runs the CLI and sends SIGINT once stderr matches `when`. */
  function runAndInterrupt(args: string[], when: RegExp): Promise<Run> {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, TSLORA_THREADS: "1", HF_HUB_OFFLINE: "1", HF_HOME: hfHome },
    });
    let stdout = "";
    let stderr = "";
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!sent && when.test(stderr)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    return new Promise((resolve) =>
      child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
    );
  }

  test("SIGINT saves a checkpoint and --resume finishes", async () => {
    const out = freshPath("interrupted");
    const args = [
      "train",
      "--model",
      model,
      "--data",
      data,
      "--out",
      out,
      "--steps",
      "60",
      "--max-length",
      "32",
      "--batch-size",
      "2",
      "--val-fraction",
      "0.25",
      "--eval-every",
      "0",
      "--save-every",
      "0",
    ];
    const first = await runAndInterrupt(args, /step {1,2}2\/60/);
    assert.equal(first.status, 130, first.stderr);
    assert.doesNotMatch(first.stderr, /\n {4}at /);
    assert.match(first.stderr, /saved checkpoint .*step-0000\d\d \(abort\)/);
    assert.match(first.stderr, /continue with the same command and --resume/);
    assert.equal(existsSync(join(out, "adapter_model.safetensors")), false);

    const second = tslora([...args, "--resume"]);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /resumed from .*step-0000\d\d at step \d+/);
    assert.ok(existsSync(join(out, "adapter_model.safetensors")));
  });
});

/** Drops from `args` the options (with their values) that `replacing` gives again. */
function withoutOptionsOf(args: string[], replacing: string[]): string[] {
  const names = new Set(replacing.filter((a) => a.startsWith("--")).map((a) => a.split("=")[0]));
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (!names.has(args[i])) {
      kept.push(args[i]);
      continue;
    }
    if (i + 1 < args.length && !args[i + 1].startsWith("--")) i++;
  }
  return kept;
}

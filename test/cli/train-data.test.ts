// Reading --data and --val-data for train and eval.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  exampleLine,
  readDataSource,
  readSplits,
  resolveTemplate,
  tokenizeSplit,
  unescapeTemplate,
} from "../../src/cli/train-data.js";
import { applyRunSplitSettings } from "../../src/cli/run-config.js";
import type { OptionValues } from "../../src/cli/train-options.js";
import type { Sample } from "../../src/data/types.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { fixture } from "../helpers/fixtures.js";

const work = mkdtempSync(join(tmpdir(), "tslora-train-data-"));

function textLines(word: string, count: number): string {
  return Array.from({ length: count }, (_, i) => JSON.stringify({ text: `${word} ${i}` }))
    .join("\n")
    .concat("\n");
}

test("--val-data folder reads its validation file", async () => {
  const folder = join(work, "folder");
  mkdirSync(folder);
  writeFileSync(join(folder, "train.jsonl"), textLines("train", 6));
  writeFileSync(join(folder, "valid.jsonl"), textLines("valid", 3));
  const data = join(work, "data.jsonl");
  writeFileSync(data, textLines("data", 4));

  const splits = await readSplits({
    data,
    valData: folder,
    valFraction: 0.1,
    seed: 1,
    template: undefined,
  });
  assert.equal(splits.train.length, 4);
  assert.equal(splits.validation.length, 3);
  assert.match(splits.validationSource, /valid\.jsonl/);
});

test("question ids shared by --data and --val-data must agree", async () => {
  const squad = (answer: string) => ({
    data: [
      {
        title: "T",
        paragraphs: [
          {
            context: "Paris in 1889",
            qas: [
              {
                id: "g1",
                question: "q?",
                answers: [{ text: answer, answer_start: "Paris in 1889".indexOf(answer) }],
              },
              { id: "g2", question: "q2?", answers: [{ text: "in", answer_start: 6 }] },
            ],
          },
        ],
      },
    ],
  });
  const train = join(work, "train.json");
  const valid = join(work, "valid.json");
  writeFileSync(train, JSON.stringify(squad("Paris")));
  writeFileSync(valid, JSON.stringify(squad("1889")));
  await assert.rejects(
    readSplits({ data: train, valData: valid, valFraction: 0.1, seed: 1, template: undefined }),
    /question id "g1" is in .*train\.json and in .*valid\.json with different answers/,
  );
});

test("--template escapes become characters", () => {
  assert.equal(unescapeTemplate("Q: {q}\\nA:\\t{answer}"), "Q: {q}\nA:\t{answer}");
  assert.equal(unescapeTemplate("a\\\\nb"), "a\\nb");
  assert.equal(unescapeTemplate("no escapes"), "no escapes");
});

test("a SQuAD file of unanswerable questions is named", async () => {
  const path = join(work, "impossible.json");
  const qa = (id: string) => ({ id, question: "q?", answers: [], is_impossible: true });
  writeFileSync(
    path,
    JSON.stringify({
      data: [{ title: "T", paragraphs: [{ context: "c", qas: [qa("a"), qa("b")] }] }],
    }),
  );
  await assert.rejects(
    readDataSource(path, undefined),
    /impossible\.json: all 2 questions are unanswerable/,
  );
});

test("data folders: a folder split, two files and JSON Lines named .json", async () => {
  const both = join(work, "both");
  mkdirSync(both);
  writeFileSync(join(both, "train.jsonl"), textLines("jsonl", 2));
  writeFileSync(join(both, "train.json"), "{}");
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (message: string) => warnings.push(message);
  try {
    const source = await readDataSource(both, undefined);
    assert.equal(source.samples.length, 2);
  } finally {
    console.warn = warn;
  }
  assert.match(warnings.join("\n"), /has train\.jsonl and train\.json .*reading train\.jsonl/);

  const nested = join(work, "nested");
  mkdirSync(join(nested, "train.jsonl"), { recursive: true });
  await assert.rejects(readDataSource(nested, undefined), /nested\/train\.jsonl is a folder/);

  const misnamed = join(work, "lines.json");
  writeFileSync(misnamed, textLines("line", 3));
  await assert.rejects(
    readDataSource(misnamed, undefined),
    /lines\.json: invalid JSON .*one JSON object per line.*named \.jsonl, so rename it/,
  );
});

test("the set line counts unknown tokens", async () => {
  const tokenizer = await loadTokenizer(fixture("models/TinyStories-656K"));
  const samples: Sample[] = [
    { kind: "text", text: "Tom saw a cat.", group: "a", origin: "a" },
    { kind: "text", text: "\u732b\u3068\u72ac", group: "b", origin: "b" },
  ];
  const options = { maxLength: 64, maskPrompt: false, template: undefined };
  const { line } = tokenizeSplit("train", samples, tokenizer, options);
  assert.match(
    line,
    /^train set: 2 examples, \d+ tokens .*; 1 token \([\d.]+%\) is <unk>, text the/,
  );
  const plain = tokenizeSplit("train", samples.slice(0, 1), tokenizer, options).line;
  assert.match(plain, /^train set: 1 example, /);
  assert.doesNotMatch(plain, /<unk>/);
});

test("template learns {completion} without {answer}", () => {
  const template = resolveTemplate("Q: {prompt}\\nA:{completion}");
  assert.ok(template !== undefined);
  assert.equal(template.answerField, "completion");
  assert.equal(resolveTemplate("Q: {question}\\nA: {answer}")?.answerField, "answer");
  assert.throws(
    () => resolveTemplate("{completion}{prompt}"),
    /has the slot \{prompt\} after \{completion\}, so the model would learn that field too/,
  );
  assert.throws(
    () => resolveTemplate("{prompt}{completion}{completion}"),
    /^UsageError: --template: template .* has 2 \{completion\} slots/,
  );
  assert.equal(resolveTemplate("{question} {answer} {{done}}")?.answerField, "answer");
  assert.throws(
    () => resolveTemplate("Q: {prompt}"),
    /--template "Q: \{prompt\}" has no \{answer\} or \{completion\} slot/,
  );
});

test("the set line counts no GPT-2 end-of-text marker as unknown", async () => {
  const tokenizer = await loadTokenizer(fixture("tokenizers/gpt2"));
  assert.equal(tokenizer.unkTokenId, tokenizer.eosTokenId);
  const samples: Sample[] = [{ kind: "text", text: "Tom saw a cat.", group: "a", origin: "a" }];
  const options = { maxLength: 64, maskPrompt: false, template: undefined };
  const { line } = tokenizeSplit("train", samples, tokenizer, options);
  assert.match(line, /^train set: 1 example, /);
  assert.doesNotMatch(line, /<\|endoftext\|>/);
});

test("a run's relative --data resolves against its working folder", () => {
  const runFolder = join(work, "started-here");
  mkdirSync(join(runFolder, "d"), { recursive: true });
  writeFileSync(join(runFolder, "d", "train.jsonl"), textLines("x", 2));
  const config = {
    path: join(runFolder, "out", "train_config.json"),
    settings: { data: "d/train.jsonl", valData: null, workingDirectory: runFolder },
  };
  const values: OptionValues = {};
  const warnings: string[] = [];
  const { takenOptions } = applyRunSplitSettings(config, values, new Set(), (m) =>
    warnings.push(m),
  );
  assert.ok(takenOptions.has("data"));
  assert.equal(values.data, join(runFolder, "d", "train.jsonl"));
  assert.deepEqual(warnings, []);

  // The same path typed on the command line from the run's folder is not a difference.
  const given: OptionValues = { data: join(runFolder, "d", "train.jsonl") };
  const differences: string[] = [];
  applyRunSplitSettings(config, given, new Set(["data"]), (m) => differences.push(m));
  assert.deepEqual(differences, []);
});

test("the example line marks the learned tokens", async () => {
  const tokenizer = await loadTokenizer(fixture("models/stories260K"));
  const template = resolveTemplate("Q: {q}\\nA: {answer}");
  const samples: Sample[] = [
    { kind: "fields", fields: { q: "Sky?", answer: "blue" }, group: "a", origin: "a:1" },
  ];
  const masked = tokenizeSplit("train", samples, tokenizer, {
    maxLength: 64,
    maskPrompt: true,
    template,
  });
  const line = exampleLine(masked.examples[0], tokenizer);
  assert.match(
    line ?? "",
    /^first example \(a:1\), decoded, "\|" where the learned tokens start: "/,
  );
  // The newline of the template is a real one, shown escaped inside the JSON string.
  assert.match(line ?? "", /Q: Sky\?\\nA.*\|.*blue/);

  const unmasked = tokenizeSplit("train", samples, tokenizer, {
    maxLength: 64,
    maskPrompt: false,
    template,
  });
  // Unmasked, every token after BOS is learned, because BOS itself is never a target. The
  // space that the first word's token starts with stays on the learned side.
  assert.match(exampleLine(unmasked.examples[0], tokenizer) ?? "", /start: "<s>\| Q: Sky/);
  assert.equal(exampleLine(undefined, tokenizer), null);

  // A completion's leading space shows after the marker, so " a boy" and "a boy" differ.
  const lines = [" a boy", "a boy"].map((completion) => {
    const pair: Sample = {
      kind: "fields",
      fields: { prompt: "There was", completion },
      group: "b",
      origin: "b:1",
    };
    const { examples } = tokenizeSplit("train", [pair], tokenizer, {
      maxLength: 64,
      maskPrompt: true,
      template: undefined,
    });
    return exampleLine(examples[0], tokenizer) ?? "";
  });
  assert.match(lines[0], /There was\| a boy/);
  assert.match(lines[1], /There was\|a boy/);
});

test("run settings line shows a template as typed", () => {
  const config = {
    path: join(work, "typed", "train_config.json"),
    settings: { template: "Q: {prompt}\\nA:{completion}" },
  };
  const { line } = applyRunSplitSettings(config, {}, new Set(), () => undefined);
  assert.ok(line !== null);
  assert.ok(line.endsWith('--template "Q: {prompt}\\nA:{completion}"'), line);
});

test("the set line counts empty completions", async () => {
  const tokenizer = await loadTokenizer(fixture("models/stories260K"));
  const pair = (completion: string, origin: string): Sample => ({
    kind: "fields",
    fields: { prompt: "What is blue?", completion },
    group: origin,
    origin,
  });
  const options = { maxLength: 64, maskPrompt: true, template: undefined };
  const samples = [pair(" The sky.", "a"), pair("", "b"), pair("  ", "c")];
  const { line, report } = tokenizeSplit("train", samples, tokenizer, options);
  assert.equal(report.blankAnswers, 2);
  assert.match(line, /; 2 examples have an empty completion or assistant reply and learn only/);
  const full = tokenizeSplit("train", samples.slice(0, 1), tokenizer, options);
  assert.equal(full.report.blankAnswers, 0);
  assert.doesNotMatch(full.line, /empty completion/);
});

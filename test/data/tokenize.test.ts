import assert from "node:assert/strict";
import { test } from "node:test";
import { readJsonl } from "../../src/data/jsonl.js";
import { readSquad, squadSamples } from "../../src/data/squad.js";
import { parseTemplate, renderTemplate, SQUAD_TEMPLATE } from "../../src/data/template.js";
import { IGNORE_INDEX, tokenizeSamples } from "../../src/data/tokenize.js";
import type { FieldsSample, Sample } from "../../src/data/types.js";
import { loadTokenizer, type TextTokenizer } from "../../src/io/tokenizer.js";
import { fixture } from "../helpers/fixtures.js";

const tinyStories = await loadTokenizer(fixture("models/TinyStories-656K"));
const stories260K = await loadTokenizer(fixture("models/stories260K"));
const gpt2 = await loadTokenizer(fixture("tokenizers/gpt2"));
const tokenizers: [string, TextTokenizer][] = [
  ["TinyStories-656K", tinyStories],
  ["stories260K", stories260K],
  ["gpt2", gpt2],
];

const squadTemplate = parseTemplate(SQUAD_TEMPLATE);

function squadSubset(count: number): FieldsSample[] {
  const questions = readSquad(fixture("data/squad/squad1.1-style-dev-first5articles.json"));
  return squadSamples(questions).samples.slice(0, count);
}

/** Returns a text as the tokenizer reproduces it (TinyStories-656K maps "è" to <unk>). */
function roundTrip(tokenizer: TextTokenizer, text: string): string {
  return tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false })).trim();
}

/** Returns the learned tokens of an example without its final EOS. */
function learnedIds(labels: Int32Array): number[] {
  return [...labels.subarray(0, labels.length - 1)].filter((label) => label !== IGNORE_INDEX);
}

test("SQuAD examples mask the prompt", () => {
  const samples = squadSubset(25);
  for (const [name, tokenizer] of tokenizers) {
    const { examples, report } = tokenizeSamples(samples, tokenizer, { maxLength: 4096 });
    assert.equal(report.examples, 25, name);
    assert.equal(report.truncated, 0, name);
    assert.equal(report.dropped, 0, name);

    examples.forEach((example, i) => {
      const { prompt, completion } = renderTemplate(squadTemplate, samples[i].fields, "test");
      const expectedIds = [...tokenizer.encode(prompt + completion), tokenizer.eosTokenId];
      assert.deepEqual([...example.inputIds], expectedIds, `${name} #${i} ids`);

      // The masked tokens are the prompt's own tokens. TinyStories-656K can merge ":" and the
      // answer's leading space into one token ":▁", which is learned; the others split cleanly.
      const promptIds = tokenizer.encode(prompt);
      const first = example.labels.findIndex((label) => label !== IGNORE_INDEX);
      assert.equal(first, example.promptLength, `${name} #${i} promptLength`);
      const straddle = first === promptIds.length - 1 && name === "TinyStories-656K";
      assert.ok(first === promptIds.length || straddle, `${name} #${i} first learned position`);
      assert.deepEqual(
        [...example.inputIds.subarray(0, first)],
        promptIds.slice(0, first),
        `${name} #${i} masked tokens`,
      );
      assert.deepEqual(
        [...example.labels.subarray(first)],
        [...example.inputIds.subarray(first)],
        `${name} #${i} learned labels equal the ids`,
      );
      assert.equal(example.labels[example.labels.length - 1], tokenizer.eosTokenId, `${name} EOS`);
      const learnedText = tokenizer.decode(learnedIds(example.labels));
      const answer = straddle ? learnedText.replace(/^:/, "").trim() : learnedText.trim();
      assert.equal(answer, roundTrip(tokenizer, samples[i].fields.answer), `${name} #${i} answer`);
    });
  }
});

test("maskPrompt false learns every token", () => {
  const samples = squadSubset(5);
  const { examples, report } = tokenizeSamples(samples, gpt2, {
    maxLength: 4096,
    maskPrompt: false,
  });
  for (const example of examples) assert.deepEqual(example.labels, example.inputIds);
  // Every token but the first of each example is predicted and scored.
  assert.equal(report.learnedTokens, report.tokens - report.examples);
});

test("truncation shortens the context only", () => {
  const samples = squadSubset(60);
  const byOrigin = new Map(samples.map((sample) => [sample.origin, sample]));
  // Small vocabularies need more tokens for the same text.
  const maxLengths: Record<string, number> = { gpt2: 64, "TinyStories-656K": 96, stories260K: 160 };
  for (const [name, tokenizer] of tokenizers) {
    const maxLength = maxLengths[name];
    const { examples, report } = tokenizeSamples(samples, tokenizer, { maxLength });
    assert.ok(report.truncated > 20, `${name}: ${report.truncated} truncated`);
    assert.equal(report.examples + report.dropped, 60, name);
    assert.equal(report.examples, examples.length, name);

    let windows = 0;
    examples.forEach((example, i) => {
      const sample = byOrigin.get(example.origin);
      assert.ok(sample !== undefined, example.origin);
      assert.ok(example.inputIds.length <= maxLength, `${name} #${i} length`);
      assert.equal(example.inputIds[example.inputIds.length - 1], tokenizer.eosTokenId);
      assert.equal(example.labels[example.labels.length - 1], tokenizer.eosTokenId);
      const answer = tokenizer.decode(learnedIds(example.labels)).replace(/^:/, "").trim();
      assert.equal(answer, roundTrip(tokenizer, sample.fields.answer), `${name} #${i} answer`);

      const text = tokenizer.decode([...example.inputIds], { skipSpecialTokens: true });
      assert.ok(text.includes(`Question: ${sample.fields.question}`), `${name} #${i} question`);
      // The kept window of the context contains the answer whenever it has room for it and
      // the one-token margins on both sides.
      const context = text.slice(text.indexOf("Context:") + 9, text.indexOf("\nQuestion:"));
      const room = tokenizer.encode(context, { addSpecialTokens: false }).length;
      const needed = tokenizer.encode(sample.fields.answer, { addSpecialTokens: false }).length + 2;
      if (example.truncated && room >= needed) {
        windows++;
        const expected = roundTrip(tokenizer, sample.fields.answer);
        assert.ok(context.includes(expected), `${name} #${i}: ${context}`);
      }
    });
    assert.ok(windows >= 10, `${name}: ${windows} truncated contexts with room for the answer`);
  }
});

test("truncation drops when the answer cannot fit", () => {
  const long: Sample = {
    kind: "fields",
    fields: { context: "Some context.", question: "Which?", answer: "word ".repeat(80).trim() },
    group: "g",
    origin: "long.json: data[0]",
  };
  const samples = [...squadSubset(3), long];
  const { examples, report } = tokenizeSamples(samples, gpt2, { maxLength: 64 });
  assert.equal(report.dropped, 1);
  assert.deepEqual(report.droppedOrigins, ["long.json: data[0]"]);
  assert.equal(examples.length, 3);

  assert.throws(
    () => tokenizeSamples([long], gpt2, { maxLength: 64 }),
    /all 1 samples are longer than maxLength 64 .*long\.json: data\[0\].*raise maxLength to at least 9\d/,
  );
});

test("text examples truncate without an EOS", () => {
  const { samples } = readJsonl(fixture("data/wikisql/valid.jsonl"));
  const maxLength = 48;
  const { examples, report } = tokenizeSamples(samples, gpt2, { maxLength });
  let expectedTruncated = 0;
  examples.forEach((example, i) => {
    const text = samples[i].kind === "text" ? samples[i].text : "";
    const full = [...gpt2.encode(text), gpt2.eosTokenId];
    if (full.length > maxLength) {
      expectedTruncated++;
      // The text goes on past the cut, so the example does not teach the model to stop there.
      assert.deepEqual([...example.inputIds], full.slice(0, maxLength));
      assert.notEqual(example.inputIds[maxLength - 1], gpt2.eosTokenId);
    } else {
      assert.deepEqual([...example.inputIds], full);
    }
    assert.deepEqual(example.labels, example.inputIds, "text tokens are all learned");
  });
  assert.ok(expectedTruncated > 0);
  assert.equal(report.truncated, expectedTruncated);
  assert.equal(report.dropped, 0);
});

test("prompt/completion truncates the prompt start", () => {
  const prompt = Array.from({ length: 60 }, (_, i) => `w${i}`).join(" ") + "\nQ: total?\nA:";
  const sample: Sample = {
    kind: "fields",
    fields: { prompt, completion: " 42" },
    group: "line 1",
    origin: "pc.jsonl:1",
  };
  for (const [name, tokenizer] of tokenizers) {
    const { examples, report } = tokenizeSamples([sample], tokenizer, { maxLength: 40 });
    assert.equal(report.truncated, 1, name);
    const example = examples[0];
    assert.ok(example.inputIds.length <= 40, name);
    const text = tokenizer.decode([...example.inputIds], { skipSpecialTokens: true });
    assert.ok(text.endsWith("w59\nQ: total?\nA: 42"), `${name}: ${JSON.stringify(text)}`);
    assert.ok(!text.includes("w0 "), name);
    const learnedText = tokenizer.decode(learnedIds(example.labels));
    assert.equal(learnedText.replace(/^:/, "").trim(), "42", name);
  }
});

test("tokenizeSamples rejects empty data", () => {
  assert.throws(() => tokenizeSamples([], gpt2, { maxLength: 8 }), /the dataset is empty/);
  assert.throws(() => tokenizeSamples(squadSubset(1), gpt2, { maxLength: 1 }), /maxLength must be/);
});

test("keepAnswerInContext false cuts the context end", () => {
  const samples = squadSubset(60);
  const { examples } = tokenizeSamples(samples, gpt2, {
    maxLength: 64,
    keepAnswerInContext: false,
  });
  const byOrigin = new Map(samples.map((sample) => [sample.origin, sample]));
  let checked = 0;
  for (const example of examples) {
    if (!example.truncated) continue;
    const sample = byOrigin.get(example.origin);
    assert.ok(sample !== undefined);
    const text = gpt2.decode([...example.inputIds]);
    const context = text.slice("Context: ".length, text.indexOf("\nQuestion:"));
    assert.ok(sample.fields.context.startsWith(context), `${example.origin}: ${context}`);
    checked++;
  }
  assert.ok(checked > 20, `${checked} truncated examples`);
});

test("a context too short for the answer is dropped", () => {
  const samples = squadSubset(80);
  const byOrigin = new Map(samples.map((sample) => [sample.origin, sample]));
  // At 32 tokens the contexts keep a few words around the answer, and some cannot hold it.
  const { examples, report } = tokenizeSamples(samples, gpt2, { maxLength: 32 });
  assert.ok(report.dropped > 0, "no sample was dropped");
  let truncated = 0;
  for (const example of examples) {
    if (!example.truncated) continue;
    truncated++;
    const sample = byOrigin.get(example.origin);
    assert.ok(sample !== undefined);
    const text = gpt2.decode([...example.inputIds]);
    const context = text.slice("Context: ".length, text.indexOf("\nQuestion:"));
    const answer = sample.fields.answer ?? "";
    assert.ok(context.includes(answer), `${example.origin}: "${answer}" not in "${context}"`);
  }
  assert.ok(truncated > 10, `${truncated} truncated examples`);
});

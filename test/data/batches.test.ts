import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchIterator, collate, type Batch } from "../../src/data/batches.js";
import { readJsonl } from "../../src/data/jsonl.js";
import { IGNORE_INDEX, tokenizeSamples, type TokenizedExample } from "../../src/data/tokenize.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { makeRandom } from "../helpers/random.js";
import { fixture } from "../helpers/fixtures.js";

const gpt2 = await loadTokenizer(fixture("tokenizers/gpt2"));
const wikisql = tokenizeSamples(readJsonl(fixture("data/wikisql/valid.jsonl")).samples, gpt2, {
  maxLength: 256,
}).examples;
const PAD = 50256;

/** Examples of random lengths 2..40, with the first half of each masked. */
function syntheticExamples(count: number, seed: number): TokenizedExample[] {
  const random = makeRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const n = 2 + Math.floor(random() * 39);
    const inputIds = Int32Array.from({ length: n }, (_, t) => 1000 * i + t);
    const labels = inputIds.map((id, t) => (t < n / 2 ? IGNORE_INDEX : id));
    return { inputIds, labels, group: `g${i}`, origin: `#${i}`, truncated: false };
  });
}

function padding(batches: Batch[]): number {
  return batches.reduce((sum, b) => sum + b.batchSize * b.seqLen - b.tokens, 0);
}

function epoch(iterator: BatchIterator): Batch[] {
  return Array.from({ length: iterator.batchesPerEpoch }, () => iterator.next());
}

test("collate pads on the right", () => {
  const examples = syntheticExamples(3, 1);
  const batch = collate(examples, [2, 0], PAD, 8);
  const longest = Math.max(examples[2].inputIds.length, examples[0].inputIds.length);
  assert.equal(batch.seqLen, Math.ceil(longest / 8) * 8);
  assert.equal(batch.batchSize, 2);
  assert.deepEqual(batch.exampleIndices, [2, 0]);
  const T = batch.seqLen;
  [2, 0].forEach((index, row) => {
    const { inputIds, labels } = examples[index];
    const n = inputIds.length;
    assert.deepEqual(batch.inputIds.subarray(row * T, row * T + n), inputIds);
    assert.deepEqual(batch.labels.subarray(row * T, row * T + n), labels);
    assert.ok(batch.inputIds.subarray(row * T + n, (row + 1) * T).every((id) => id === PAD));
    assert.ok(batch.labels.subarray(row * T + n, (row + 1) * T).every((l) => l === IGNORE_INDEX));
    assert.ok(batch.attentionMask.subarray(row * T, row * T + n).every((m) => m === 1));
    assert.ok(batch.attentionMask.subarray(row * T + n, (row + 1) * T).every((m) => m === 0));
  });
  assert.equal(batch.tokens, examples[2].inputIds.length + examples[0].inputIds.length);
  // The loss scores labels after the first position of each row.
  const learned = [examples[2], examples[0]]
    .flatMap((e) => [...e.labels].slice(1))
    .filter((l) => l !== IGNORE_INDEX);
  assert.equal(batch.learnedTokens, learned.length);
});

test("an epoch visits every example once", () => {
  const iterator = new BatchIterator(wikisql, { batchSize: 8, padTokenId: PAD, seed: 5 });
  assert.equal(iterator.batchesPerEpoch, 13);
  const batches = epoch(iterator);
  const seen = batches.flatMap((b) => b.exampleIndices).sort((a, b) => a - b);
  assert.deepEqual(
    seen,
    wikisql.map((_, i) => i),
  );
  assert.equal(batches.filter((b) => b.batchSize !== 8).length, 1);
  assert.deepEqual(iterator.position, { epoch: 0, index: 13 });
  iterator.next();
  assert.deepEqual(iterator.position, { epoch: 1, index: 1 });
});

test("bucketing reduces padding", () => {
  const examples = syntheticExamples(400, 2);
  const options = { batchSize: 8, padTokenId: PAD, seed: 3 };
  const bucketed = padding(epoch(new BatchIterator(examples, options)));
  const plain = padding(epoch(new BatchIterator(examples, { ...options, bucketBatches: 1 })));
  assert.ok(bucketed < plain / 4, `padding ${bucketed} with buckets, ${plain} without`);
  const real = padding(
    epoch(new BatchIterator(wikisql, { batchSize: 8, padTokenId: PAD, seed: 1 })),
  );
  const realPlain = padding(
    epoch(new BatchIterator(wikisql, { batchSize: 8, padTokenId: PAD, seed: 1, bucketBatches: 1 })),
  );
  assert.ok(real < realPlain, `wikisql padding ${real} with buckets, ${realPlain} without`);
});

test("order depends on seed and epoch only", () => {
  const examples = syntheticExamples(100, 4);
  const options = { batchSize: 4, padTokenId: PAD, seed: 9, bucketBatches: 4 };
  const a = new BatchIterator(examples, options);
  const b = new BatchIterator(examples, options);
  const indices = (batches: Batch[]) => batches.map((batch) => batch.exampleIndices);
  const epochA0 = indices(epoch(a));
  assert.deepEqual(indices(epoch(b)), epochA0);
  const epochA1 = indices(epoch(a));
  assert.notDeepEqual(epochA1, epochA0);
  const other = indices(epoch(new BatchIterator(examples, { ...options, seed: 10 })));
  assert.notDeepEqual(other, epochA0);
});

test("seek resumes the exact stream", () => {
  const examples = syntheticExamples(50, 6);
  const options = { batchSize: 4, padTokenId: PAD, seed: 11, bucketBatches: 2 };
  const original = new BatchIterator(examples, options);
  for (let i = 0; i < 17; i++) original.next();
  const saved = JSON.parse(JSON.stringify(original.position));
  assert.deepEqual(saved, { epoch: 1, index: 4 });
  const expected = Array.from({ length: 20 }, () => original.next());

  const resumed = new BatchIterator(examples, options);
  resumed.seek(saved);
  const actual = Array.from({ length: 20 }, () => resumed.next());
  assert.deepEqual(actual, expected);
});

test("seek at an epoch end continues with the next epoch", () => {
  const examples = syntheticExamples(12, 7);
  const options = { batchSize: 4, padTokenId: PAD, seed: 2 };
  const original = new BatchIterator(examples, options);
  epoch(original);
  const position = original.position;
  const expected = original.next();
  const resumed = new BatchIterator(examples, options);
  resumed.seek(position);
  assert.deepEqual(resumed.next(), expected);
});

test("shuffle false keeps the order", () => {
  const examples = syntheticExamples(10, 8);
  const iterator = new BatchIterator(examples, { batchSize: 4, padTokenId: PAD, shuffle: false });
  assert.deepEqual(
    epoch(iterator).map((b) => b.exampleIndices),
    [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ],
  );
});

test("dropLast drops the short batch", () => {
  const examples = syntheticExamples(10, 9);
  const iterator = new BatchIterator(examples, {
    batchSize: 4,
    padTokenId: PAD,
    dropLast: true,
    seed: 1,
  });
  assert.equal(iterator.batchesPerEpoch, 2);
  const batches = epoch(iterator);
  assert.ok(batches.every((b) => b.batchSize === 4));
  assert.equal(new Set(batches.flatMap((b) => b.exampleIndices)).size, 8);
});

test("BatchIterator rejects bad options", () => {
  const examples = syntheticExamples(5, 10);
  assert.throws(() => new BatchIterator([], { batchSize: 2, padTokenId: 0 }), /no examples/);
  assert.throws(
    () => new BatchIterator(examples, { batchSize: 0, padTokenId: 0 }),
    /batchSize must be a positive integer, got 0/,
  );
  assert.throws(
    () => new BatchIterator(examples, { batchSize: 8, padTokenId: 0, dropLast: true }),
    /leaves no batch/,
  );
  const iterator = new BatchIterator(examples, { batchSize: 2, padTokenId: 0 });
  assert.throws(() => iterator.seek({ epoch: 0, index: 4 }), /index 4 is past the 3 batches/);
  assert.throws(() => iterator.seek({ epoch: -1, index: 0 }), /invalid position/);
});

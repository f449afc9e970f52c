// Logit processors against transformers' semantics, on hand-computed cases.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  applyRepetitionPenalty,
  applyTopK,
  applyTopP,
  argmax,
  chooseToken,
  sampleIndex,
  seededUniform,
  softmax,
} from "../../src/generate/sampling.js";

test("repetition penalty divides positives, multiplies negatives", () => {
  const logits = Float32Array.from([2, -2, 4, -1]);
  applyRepetitionPenalty(logits, [0, 1, 1], 2);
  assert.deepEqual(Array.from(logits), [1, -4, 4, -1]);
});

test("top-k keeps ties with the k-th value", () => {
  const logits = Float32Array.from([1, 3, 2, 3, 0]);
  applyTopK(logits, 2);
  assert.deepEqual(Array.from(logits), [-Infinity, 3, -Infinity, 3, -Infinity]);
  const ties = Float32Array.from([1, 2, 2, 0]);
  applyTopK(ties, 2);
  assert.deepEqual(Array.from(ties), [-Infinity, 2, 2, -Infinity]);
});

test("top-p keeps the smallest nucleus", () => {
  // Probabilities 0.5, 0.25, 0.125, 0.125.
  const logits = Float32Array.from([Math.log(4), Math.log(2), 0, 0]);
  applyTopP(logits, 0.7);
  assert.deepEqual(
    Array.from(logits, (v) => v === -Infinity),
    [false, false, true, true],
  );
  const single = Float32Array.from([10, 0, 0]);
  applyTopP(single, 0.01);
  assert.equal(single[0], 10);
  assert.equal(single[1], -Infinity);
});

test("argmax takes the first maximum", () => {
  assert.equal(argmax(Float32Array.from([1, 5, 5, 2])), 1);
});

test("sampleIndex inverts the cumulative distribution", () => {
  const logits = Float32Array.from([0, Math.log(3)]); // probabilities 0.25, 0.75
  assert.equal(sampleIndex(logits, 0.2), 0);
  assert.equal(sampleIndex(logits, 0.3), 1);
  assert.equal(sampleIndex(logits, 0.999), 1);
});

test("seeded uniform repeats and covers the interval", () => {
  const a = seededUniform(42);
  const b = seededUniform(42);
  const c = seededUniform(43);
  const first = Array.from({ length: 1000 }, a);
  assert.deepEqual(Array.from({ length: 1000 }, b), first);
  assert.notDeepEqual(Array.from({ length: 1000 }, c), first);
  assert.ok(first.every((u) => u >= 0 && u < 1));
  const mean = first.reduce((s, u) => s + u, 0) / first.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
});

test("sampling frequencies follow softmax", () => {
  const logits = Float32Array.from([0, 1, 2]);
  const probs = softmax(logits);
  const uniform = seededUniform(3);
  const counts = [0, 0, 0];
  const n = 20000;
  for (let i = 0; i < n; i++)
    counts[chooseToken(logits.slice(), [], { temperature: 1 }, uniform)]++;
  counts.forEach((c, i) => assert.ok(Math.abs(c / n - probs[i]) < 0.015, `token ${i}: ${c / n}`));
});

test("temperature zero is greedy", () => {
  const logits = Float32Array.from([0.5, 2, 1]);
  assert.equal(
    chooseToken(logits, [], { temperature: 0 }, () => 0),
    1,
  );
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { readJsonl } from "../../src/data/jsonl.js";
import { createRandom, shuffleInPlace } from "../../src/data/random.js";
import { splitByGroup } from "../../src/data/split.js";
import { readSquad, squadSamples } from "../../src/data/squad.js";
import { fixture } from "../helpers/fixtures.js";

const squad = squadSamples(readSquad(fixture("data/squad/squad2-dev-first5articles.json"))).samples;

test("split keeps SQuAD articles apart", () => {
  const { train, validation } = splitByGroup(squad, { validationFraction: 0.2, seed: 1 });
  assert.equal(train.length + validation.length, squad.length);
  assert.ok(validation.length >= 0.2 * squad.length, `${validation.length} validation samples`);
  assert.ok(train.length > 0);
  const trainGroups = new Set(train.map((s) => s.group));
  for (const sample of validation) assert.ok(!trainGroups.has(sample.group), sample.group);
  const origins = new Set([...train, ...validation].map((s) => s.origin));
  assert.equal(origins.size, squad.length, "every sample exactly once");
  // Each side keeps file order.
  const order = new Map(squad.map((s, i) => [s.origin, i]));
  const trainOrder = train.map((s) => order.get(s.origin) ?? -1);
  assert.deepEqual(
    trainOrder,
    [...trainOrder].sort((a, b) => a - b),
  );
});

test("split is reproducible from the seed", () => {
  const first = splitByGroup(squad, { validationFraction: 0.2, seed: 7 });
  const again = splitByGroup(squad, { validationFraction: 0.2, seed: 7 });
  assert.deepEqual(
    again.validation.map((s) => s.origin),
    first.validation.map((s) => s.origin),
  );
  const groupsBySeed = new Set(
    [1, 2, 3, 4, 5, 6].map((seed) =>
      [
        ...new Set(
          splitByGroup(squad, { validationFraction: 0.2, seed }).validation.map((s) => s.group),
        ),
      ].join("|"),
    ),
  );
  assert.ok(groupsBySeed.size > 1, "different seeds choose different articles");
});

test("split by JSONL line", () => {
  const { samples } = readJsonl(fixture("data/wikisql/train.jsonl"));
  const { train, validation } = splitByGroup(samples, { validationFraction: 0.1, seed: 3 });
  assert.equal(validation.length, 100);
  assert.equal(train.length, 900);
  assert.ok(validation.some((s) => s.origin !== samples[0].origin));
});

test("split never empties training", () => {
  const items = [
    { group: "a", i: 0 },
    { group: "b", i: 1 },
  ];
  const { train, validation } = splitByGroup(items, { validationFraction: 0.9, seed: 0 });
  assert.equal(train.length, 1);
  assert.equal(validation.length, 1);
});

test("split rejects bad input", () => {
  assert.throws(
    () => splitByGroup([{ group: "a" }, { group: "a" }], { validationFraction: 0.5, seed: 0 }),
    /2 samples in 1 group\(s\); a split that keeps groups apart needs at least 2/,
  );
  for (const fraction of [0, 1, -0.1, Number.NaN]) {
    assert.throws(
      () => splitByGroup(squad, { validationFraction: fraction, seed: 0 }),
      /validationFraction must be between 0 and 1/,
    );
  }
});

test("createRandom is seeded and uniform", () => {
  const a = createRandom(42, 3);
  const b = createRandom(42, 3);
  const c = createRandom(42, 4);
  const xs = Array.from({ length: 10000 }, () => a());
  assert.deepEqual(
    Array.from({ length: 10000 }, () => b()),
    xs,
  );
  assert.notDeepEqual(
    Array.from({ length: 10000 }, () => c()),
    xs,
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  // The mean of 10,000 uniform draws has a standard deviation of 0.0029.
  assert.ok(Math.abs(mean - 0.5) < 0.015, `mean ${mean}`);
  const shuffled = shuffleInPlace(
    Array.from({ length: 100 }, (_, i) => i),
    createRandom(1),
  );
  assert.deepEqual(
    [...shuffled].sort((p, q) => p - q),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.notDeepEqual(
    shuffled,
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.throws(() => createRandom(1.5), /seed and stream must be integers/);
});

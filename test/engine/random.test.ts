import assert from "node:assert/strict";
import { test } from "node:test";
import { philox4x32, Rng } from "../../src/engine/random.js";

test("philox matches Random123 known answers", () => {
  // Random123's tests/kat_vectors, the three philox4x32 10 lines: counter, key, expected.
  const cases: [[number, number, number, number], [number, number], number[]][] = [
    [
      [0, 0, 0, 0],
      [0, 0],
      [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
    ],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  const out = new Uint32Array(4);
  for (const [counter, key, expected] of cases) {
    philox4x32(counter, key, out);
    assert.deepEqual(Array.from(out), expected);
  }
});

test("rng state round trip continues the stream", () => {
  const rng = new Rng(1234);
  rng.uniform([5]);
  const saved = JSON.parse(JSON.stringify(rng.state())) as ReturnType<Rng["state"]>;
  const next = rng.normal([7]).toArray();
  const restored = Rng.fromState(saved);
  assert.deepEqual(restored.normal([7]).toArray(), next);
  assert.deepEqual(restored.state(), rng.state());
});

test("rng seeds give different streams", () => {
  const a = new Rng(1).uniform([8]).toArray();
  const b = new Rng(2).uniform([8]).toArray();
  const big = new Rng(2 ** 40 + 1).uniform([8]).toArray();
  assert.notDeepEqual(a, b);
  assert.notDeepEqual(a, big);
  assert.deepEqual(new Rng(1).uniform([8]).toArray(), a);
});

test("rng rejects invalid seeds and states", () => {
  assert.throws(() => new Rng(-1), /Rng: seed must be a whole number/);
  assert.throws(() => new Rng(1.5), /Rng: seed must be a whole number/);
  assert.throws(
    () => Rng.fromState({ seed: 1, counter: Number.NaN }),
    /Rng.fromState: counter must be a whole number/,
  );
});

function moments(values: Float32Array): { mean: number; std: number; min: number; max: number } {
  let sum = 0;
  let sq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    sq += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(sq / values.length - mean * mean), min, max };
}

test("uniform fill has the expected range and moments", () => {
  const n = 100000;
  const s = moments(new Rng(5).uniform([n], -2, 3).f32());
  // U(-2, 3): mean 0.5, std 5 / sqrt(12); bounds are 5 standard errors.
  assert.ok(Math.abs(s.mean - 0.5) < (5 * 1.443) / Math.sqrt(n), `mean ${s.mean}`);
  assert.ok(Math.abs(s.std - 5 / Math.sqrt(12)) < 0.01, `std ${s.std}`);
  assert.ok(s.min >= -2, `min ${s.min}`);
  assert.ok(s.max < 3, `max ${s.max}`);
});

test("normal fill has the expected moments", () => {
  const n = 100001;
  const s = moments(new Rng(6).normal([n], 1.5, 0.25).f32());
  assert.ok(Math.abs(s.mean - 1.5) < (5 * 0.25) / Math.sqrt(n), `mean ${s.mean}`);
  assert.ok(Math.abs(s.std - 0.25) < 0.003, `std ${s.std}`);
});

test("kaimingUniform uses torch's bound", () => {
  // torch.nn.init.kaiming_uniform_(w, a=sqrt(5)) on [out, in] gives U(-1/sqrt(in), 1/sqrt(in)).
  const [out, inFeatures] = [64, 100];
  const s = moments(new Rng(7).kaimingUniform([out, inFeatures]).f32());
  const bound = 1 / Math.sqrt(inFeatures);
  assert.ok(s.max <= bound, `max ${s.max} above bound ${bound}`);
  assert.ok(s.min >= -bound, `min ${s.min} below -${bound}`);
  assert.ok(s.max > 0.98 * bound, `max ${s.max} far from bound ${bound}`);
  assert.ok(s.min < -0.98 * bound, `min ${s.min} far from -${bound}`);
  // a = 0 (ReLU gain sqrt 2): bound sqrt(6 / fan_in), fan_in = 3 * 5 for a [2, 3, 5] weight.
  const relu = moments(new Rng(8).kaimingUniform([40, 3, 5], 0).f32());
  const reluBound = Math.sqrt(6 / 15);
  assert.ok(relu.max <= reluBound, `max ${relu.max} above bound ${reluBound}`);
  assert.ok(relu.max > 0.9 * reluBound, `max ${relu.max} far from bound ${reluBound}`);
  assert.throws(() => new Rng(1).kaimingUniform([5]), /needs at least 2 dimensions/);
});

test("persistent option keeps fills across steps", () => {
  const t = new Rng(9).uniform([3], 0, 1, { persistent: true, name: "w" });
  assert.equal(t.persistent, true);
  t.dispose();
});

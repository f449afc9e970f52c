import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, dropout, Rng, Tensor } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import { dropoutRef } from "../../src/kernels/reference/dropout.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

test("dropout matches reference on odd sizes", () => {
  for (const n of [1, 3, 17, 127, 5003]) {
    for (const p of [0.1, 0.5, 0.9]) {
      const x = randomArray(n, n);
      const rng = new Rng(n);
      const stream = Rng.fromState(rng.state()).reserve(n);
      const expected = new Float32Array(n);
      dropoutRef(x, p, stream, expected);
      const out = dropout(Tensor.from(x, [n]), p, rng, true);
      assert.deepEqual(out.f32(), expected, `n=${n} p=${p}`);
      assert.equal(rng.counter, Math.ceil(n / 4));
    }
  }
});

test("dropout matches reference across a 2^32 counter", () => {
  // The kernel draws four blocks at a time; their counters carry into the high word here.
  const n = 96;
  const x = randomArray(n, 5);
  const state = { seed: 2 ** 40 + 7, counter: 2 ** 32 - 6 };
  const expected = new Float32Array(n);
  dropoutRef(x, 0.5, Rng.fromState(state).reserve(n), expected);
  const out = dropout(Tensor.from(x, [n]), 0.5, Rng.fromState(state), true);
  assert.deepEqual(out.f32(), expected);
});

test("dropout keeps the expected fraction", () => {
  const n = 200000;
  const out = dropout(Tensor.full([n], 1), 0.3, new Rng(3), true).f32();
  let kept = 0;
  for (const v of out) {
    if (v !== 0) {
      kept++;
      assert.equal(v, Math.fround(1 / 0.7));
    }
  }
  const fraction = kept / n;
  // Binomial standard error sqrt(0.21 / n) ~ 0.001.
  assert.ok(Math.abs(fraction - 0.7) < 0.005, `kept fraction ${fraction}`);
});

test("dropout gradient uses the same mask", () => {
  const n = 51;
  const rng = new Rng(11);
  const stream = Rng.fromState(rng.state()).reserve(n);
  gradcheck(
    ([x]) => dropout(x, 0.4, rng, true),
    ([x]) => {
      const out = new Float64Array(n);
      dropoutRef(x, 0.4, stream, out);
      return out;
    },
    [{ data: randomArray(n, 4), shape: [3, 17] }],
  );
});

test("dropout is identity when not training", () => {
  const x = Tensor.from([1, 2, 3], [3]);
  const rng = new Rng(1);
  assert.equal(dropout(x, 0.5, rng, false), x);
  assert.equal(dropout(x, 0, rng, true), x);
  assert.equal(rng.counter, 0);
});

test("dropout with p 1 gives zeros", () => {
  const x = Tensor.from([1, -2, 3], [3], "f32", { persistent: true, requiresGrad: true });
  const out = dropout(x, 1, new Rng(1), true);
  assert.deepEqual(out.toArray(), [0, 0, 0]);
  backward(out, Tensor.from([1, 1, 1], [3]));
  assert.deepEqual(x.grad?.toArray(), [0, 0, 0]);
  x.dispose();
});

test("dropout rejects invalid probability", () => {
  const x = Tensor.zeros([2]);
  assert.throws(
    () => dropout(x, 1.5, new Rng(1), true),
    /dropout: probability p must be in \[0, 1\], got 1.5/,
  );
  assert.throws(() => dropout(x, Number.NaN, new Rng(1), true), /dropout: probability p/);
});

test("dropout is bitwise equal on 1 and 2 threads", () => {
  const n = 100003;
  const x = Tensor.from(randomArray(n, 8), [n]);
  const results: Float32Array[] = [];
  for (const threads of [1, 2]) {
    setThreads(threads);
    results.push(dropout(x, 0.25, new Rng(77), true).f32().slice());
  }
  setThreads(1);
  assert.deepEqual(results[1], results[0]);
});

// The softmax op: gradient against finite differences of the f64 reference.
import assert from "node:assert/strict";
import { test } from "node:test";
import { noGrad, softmax, Tensor } from "../../src/engine/index.js";
import { softmaxRef } from "../../src/kernels/reference/softmax.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

for (const shape of [[1], [3, 5], [2, 3, 17]]) {
  test(`softmax gradcheck ${JSON.stringify(shape)}`, () => {
    const size = shape.reduce((a, b) => a * b, 1);
    const cols = shape[shape.length - 1];
    gradcheck(
      ([x]) => softmax(x),
      ([x]) => softmaxRef(x, size / cols, cols),
      [{ data: randomArray(size, 1, 3), shape }],
      { what: "softmax" },
    );
  });
}

test("softmax rows sum to one", () => {
  const out = noGrad(() => softmax(Tensor.from(randomArray(4 * 9, 2, 30), [4, 9])));
  for (let r = 0; r < 4; r++) {
    const row = out.f32().subarray(r * 9, r * 9 + 9);
    const sum = row.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-6, `row ${r} sums to ${sum}`);
  }
});

test("softmax rejects a scalar", () => {
  assert.throws(() => softmax(Tensor.zeros([])), /at least one dimension/);
});

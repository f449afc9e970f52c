// The rope op: gradients against finite differences of the f64 reference, position layouts,
// partial rotary and argument checks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { noGrad, rope, Tensor } from "../../src/engine/index.js";
import { ropeRef } from "../../src/kernels/reference/rope.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

function invFreqOf(rotaryDim: number, base = 10000): Float32Array {
  return Float32Array.from({ length: rotaryDim / 2 }, (_, j) => base ** (-(2 * j) / rotaryDim));
}

const cases = [
  { B: 2, H: 3, T: 5, D: 8, rotaryDim: 8, perBatch: true },
  { B: 1, H: 2, T: 3, D: 7, rotaryDim: 4, perBatch: false },
  { B: 3, H: 1, T: 1, D: 6, rotaryDim: 2, perBatch: false },
];

for (const c of cases) {
  test(`rope gradcheck ${JSON.stringify(c)}`, () => {
    const { B, H, T, D, rotaryDim, perBatch } = c;
    const positions = Int32Array.from({ length: (perBatch ? B : 1) * T }, (_, i) => 3 + 7 * i);
    const posTensor = Tensor.from(positions, perBatch ? [B, T] : [T]);
    const invFreq = invFreqOf(rotaryDim);
    gradcheck(
      ([x]) => rope(x, posTensor, invFreq, rotaryDim),
      ([x]) => ropeRef(x, positions, invFreq, c),
      [{ data: randomArray(B * H * T * D, 1), shape: [B, H, T, D] }],
      { what: "rope" },
    );
  });
}

test("rope accepts [1, T] positions for every batch row", () => {
  const x = Tensor.from(randomArray(2 * 2 * 3 * 4, 2), [2, 2, 3, 4]);
  const invFreq = invFreqOf(4);
  const shared = noGrad(() => rope(x, Tensor.from(new Int32Array([5, 6, 7]), [1, 3]), invFreq));
  const flat = noGrad(() => rope(x, Tensor.from(new Int32Array([5, 6, 7]), [3]), invFreq));
  assert.deepEqual(shared.f32(), flat.f32());
});

test("rope at position 0 is the identity", () => {
  const data = randomArray(2 * 4 * 6, 3);
  const x = Tensor.from(data, [1, 2, 4, 6]);
  const out = noGrad(() => rope(x, Tensor.zeros([4], "i32"), invFreqOf(6)));
  assert.deepEqual(out.f32(), data);
});

test("rope rejects invalid arguments", () => {
  const x = Tensor.zeros([1, 1, 2, 6]);
  const pos = Tensor.zeros([2], "i32");
  assert.throws(() => rope(x, pos, invFreqOf(6), 5), /rotaryDim must be an even number/);
  assert.throws(() => rope(x, pos, invFreqOf(4)), /invFreq must have rotaryDim \/ 2 = 3 values/);
  assert.throws(() => rope(x, Tensor.zeros([3], "i32"), invFreqOf(6)), /positions must be/);
  assert.throws(() => rope(x, Tensor.zeros([2]), invFreqOf(6)), /positions must be i32/);
});

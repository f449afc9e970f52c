import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, concat, reshape, slice, Tensor, transpose } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import { concatRef, sliceRef, transposeRef } from "../../src/kernels/reference/layout.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

function size(shape: number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

const TRANSPOSES: [number[], number, number][] = [
  [[1, 1], 0, 1],
  [[3, 17], 0, 1],
  [[17, 3], -1, -2],
  [[2, 3, 5, 7], 1, 2],
  [[2, 3, 5, 7], 0, 3],
  [[2, 3, 5, 7], 1, 3],
  [[127, 5], 0, 1],
  // Larger than one 16 x 16 tile on both sides, with a middle dimension.
  [[40, 3, 37], 0, 2],
  [[33, 18], 0, 1],
];

test("transpose matches reference for f32 and bf16", () => {
  let seed = 1;
  for (const [shape, d0, d1] of TRANSPOSES) {
    const data = randomArray(size(shape), seed++);
    const r = shape.length;
    const expected = new Float32Array(data.length);
    transposeRef(data, shape, (d0 + r) % r, (d1 + r) % r, expected);
    const out = transpose(Tensor.from(data, shape), d0, d1);
    assert.deepEqual(out.f32(), expected, `transpose ${shape} ${d0} ${d1}`);
    // bf16 values survive a round trip exactly, so the expected bf16 output is the same shuffle.
    const half = Tensor.from(data, shape, "bf16");
    const halfValues = half.toFloat32Array();
    const halfExpected = new Float32Array(data.length);
    transposeRef(halfValues, shape, (d0 + r) % r, (d1 + r) % r, halfExpected);
    assert.deepEqual(transpose(half, d0, d1).toFloat32Array(), halfExpected);
  }
});

test("transpose gradient matches finite differences", () => {
  for (const [shape, d0, d1] of TRANSPOSES.slice(0, 5)) {
    const r = shape.length;
    gradcheck(
      ([x]) => transpose(x, d0, d1),
      ([x]) => {
        const out = new Float64Array(x.length);
        transposeRef(x, shape, (d0 + r) % r, (d1 + r) % r, out);
        return out;
      },
      [{ data: randomArray(size(shape), 3), shape }],
      { what: `transpose ${shape}` },
    );
  }
});

test("reshape is a view with -1 and passes gradient", () => {
  const x = Tensor.from(randomArray(12, 4), [3, 4]);
  const y = reshape(x, [2, -1, 3]);
  assert.deepEqual(y.shape, [2, 2, 3]);
  assert.equal(y.offset, x.offset);
  gradcheck(
    ([t]) => reshape(t, [4, 3]),
    ([t]) => t,
    [{ data: randomArray(12, 5), shape: [3, 4] }],
  );
  assert.throws(
    () => reshape(x, [5, -1]),
    /reshape: cannot reshape \[3, 4\] \(12 elements\) into \[5, -1\]/,
  );
});

test("slice matches reference and gradient", () => {
  const cases: [number[], number, number, number][] = [
    [[5], 0, 1, 4],
    [[3, 17], 1, 0, 17],
    [[3, 17], -1, 5, 6],
    [[4, 3, 5], 1, 1, 3],
    [[4, 3, 5], 0, 2, 2],
  ];
  for (const [shape, dim, start, end] of cases) {
    const r = shape.length;
    const d = (dim + r) % r;
    const outShape = [...shape];
    outShape[d] = end - start;
    const data = randomArray(size(shape), 6);
    const expected = new Float32Array(size(outShape));
    sliceRef(data, shape, d, start, end, expected);
    const out = slice(Tensor.from(data, shape), dim, start, end);
    assert.deepEqual(out.shape, outShape);
    assert.deepEqual(out.f32(), expected, `slice ${shape} ${dim} ${start}:${end}`);
    gradcheck(
      ([x]) => slice(x, dim, start, end),
      ([x]) => {
        const o = new Float64Array(size(outShape));
        sliceRef(x, shape, d, start, end, o);
        return o;
      },
      [{ data, shape }],
    );
  }
  assert.throws(
    () => slice(Tensor.zeros([2, 3]), 1, 2, 4),
    /slice: range \[2, 4\) is invalid for dimension 1 of \[2, 3\]/,
  );
});

test("concat matches reference and gradient", () => {
  const shapes = [
    [2, 1, 3],
    [2, 4, 3],
    [2, 2, 3],
  ];
  for (const dim of [1, -2]) {
    const parts = shapes.map((shape, i) => ({ data: randomArray(size(shape), 10 + i), shape }));
    const expected = new Float32Array(2 * 7 * 3);
    concatRef(parts, 1, expected);
    const out = concat(
      parts.map((p) => Tensor.from(p.data, p.shape)),
      dim,
    );
    assert.deepEqual(out.shape, [2, 7, 3]);
    assert.deepEqual(out.f32(), expected);
  }
  gradcheck(
    (ts) => concat(ts, 0),
    (xs) => {
      const out = new Float64Array(xs.reduce((s, x) => s + x.length, 0));
      concatRef(
        xs.map((data, i) => ({ data, shape: [i + 1, 3] })),
        0,
        out,
      );
      return out;
    },
    [
      { data: randomArray(3, 1), shape: [1, 3] },
      { data: randomArray(6, 2), shape: [2, 3], requiresGrad: false },
      { data: randomArray(9, 3), shape: [3, 3] },
    ],
  );
  assert.throws(
    () => concat([Tensor.zeros([2, 3]), Tensor.zeros([3, 2])], 0),
    /concat: tensor 1 is \[3, 2\] f32 but tensor 0 is \[2, 3\] f32/,
  );
});

test("layout copies are bitwise equal on 1 and 2 threads", () => {
  const x = Tensor.from(randomArray(64 * 33 * 40, 20), [64, 33, 40]);
  const run = (): Float32Array[] => [
    transpose(x, 0, 2).f32().slice(),
    transpose(x, 1, 2).f32().slice(),
    slice(x, 1, 3, 30).f32().slice(),
    concat([x, x], 2).f32().slice(),
  ];
  setThreads(1);
  const one = run();
  setThreads(2);
  const two = run();
  setThreads(1);
  assert.deepEqual(two, one);
});

test("reshape then transpose backward to leaf", () => {
  const x = Tensor.from(randomArray(6, 7), [6], "f32", { persistent: true, requiresGrad: true });
  const y = transpose(reshape(x, [2, 3]), 0, 1);
  backward(y, Tensor.from([1, 2, 3, 4, 5, 6], [3, 2]));
  // y[i, j] = x[j * 3 + i], so grad x[j * 3 + i] = g[i * 2 + j].
  assert.deepEqual(Array.from(x.grad?.f32() ?? []), [1, 3, 5, 2, 4, 6]);
  x.dispose();
});

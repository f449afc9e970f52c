// The wasm softmax kernels against the f64 reference on odd sizes, and the SIMD exp they use.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/engine/tensor.js";
import { softmaxBackwardF32, softmaxF32 } from "../../src/kernels/bindings/softmax.js";
import { setThreads } from "../../src/kernels/pool.js";
import { softmaxBackwardRef, softmaxRef } from "../../src/kernels/reference/softmax.js";
import { assertClose } from "../helpers/assert.js";
import { randomArray } from "../helpers/random.js";

const shapes: [number, number][] = [
  [1, 1],
  [3, 3],
  [17, 5],
  [2, 127],
  [7, 1000],
];

test("softmax forward and backward match reference", () => {
  setThreads(2);
  shapes.forEach(([rows, cols], i) => {
    const x = randomArray(rows * cols, 1 + i, 20);
    const dy = randomArray(rows * cols, 50 + i);
    const xt = Tensor.from(x, [rows, cols]);
    const y = Tensor.empty([rows, cols]);
    softmaxF32(xt.offset, y.offset, rows, cols);
    assertClose(y.f32(), softmaxRef(x, rows, cols), {
      atol: 1e-7,
      rtol: 2e-6,
      what: `y ${rows}x${cols}`,
    });

    const dyt = Tensor.from(dy, [rows, cols]);
    const dx = Tensor.empty([rows, cols]);
    softmaxBackwardF32(y.offset, dyt.offset, dx.offset, rows, cols);
    const expected = softmaxBackwardRef(y.f32(), dy, rows, cols);
    assertClose(dx.f32(), expected, { atol: 1e-6, rtol: 1e-5, what: `dx ${rows}x${cols}` });
  });
});

test("softmax exp is accurate over its range", () => {
  // Rows of two values [x, 0] give e^x / (e^x + 1), so these rows cover the range of exp.
  const xs = [-87, -50, -20, -5, -1, -0.3, 0, 1e-7, 0.4, 2, 10, 40, 80];
  const data = new Float32Array(xs.length * 2);
  xs.forEach((x, i) => (data[2 * i] = x));
  const t = Tensor.from(data, [xs.length, 2]);
  const y = Tensor.empty(t.shape);
  softmaxF32(t.offset, y.offset, xs.length, 2);
  assertClose(y.f32(), softmaxRef(data, xs.length, 2), { rtol: 1e-6, what: "softmax of [x, 0]" });
});

test("softmax of extreme values stays finite", () => {
  const data = Float32Array.from([1e4, -1e4, 0, 3e38, -3e38, 1, -Infinity, 5, 2]);
  const t = Tensor.from(data, [3, 3]);
  const y = Tensor.empty(t.shape);
  softmaxF32(t.offset, y.offset, 3, 3);
  assert.deepEqual(Array.from(y.f32()), [
    1,
    0,
    0,
    1,
    0,
    0,
    0,
    Math.fround(0.9525741338729858),
    Math.fround(0.04742587357759476),
  ]);
});

test("softmax is bitwise equal on 1 and 2 threads", () => {
  const rows = 37;
  const cols = 131;
  const x = Tensor.from(randomArray(rows * cols, 9, 5), [rows, cols]);
  const results = [1, 2].map((threads) => {
    setThreads(threads);
    const y = Tensor.empty(x.shape);
    softmaxF32(x.offset, y.offset, rows, cols);
    return y.f32().slice();
  });
  assert.deepEqual(results[1], results[0]);
});

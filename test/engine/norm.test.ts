import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, layerNorm, rmsNorm, Tensor } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import { layerNormRef, rmsNormRef } from "../../src/kernels/reference/norm.js";
import { assertClose } from "../helpers/assert.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

const SHAPES = [
  [1, 1],
  [3, 3],
  [2, 17],
  [5, 127],
  [2, 3, 16],
];

function nearOne(n: number, seed: number): Float32Array {
  return randomArray(n, seed, 0.2).map((v) => 1 + v);
}

test("rmsNorm matches reference on odd sizes", () => {
  for (const shape of SHAPES) {
    const c = shape[shape.length - 1];
    const n = shape.reduce((p, d) => p * d, 1);
    const x = randomArray(n, n, 3);
    const w = nearOne(c, c);
    const expected = new Float64Array(n);
    rmsNormRef(x, w, c, 1e-5, expected);
    const out = rmsNorm(Tensor.from(x, shape), Tensor.from(w, [c]), 1e-5);
    assertClose(out.f32(), expected, { atol: 1e-6, rtol: 1e-5, what: `rmsNorm ${shape}` });
  }
});

test("rmsNorm gradients match finite differences", () => {
  for (const shape of SHAPES) {
    const c = shape[shape.length - 1];
    const n = shape.reduce((p, d) => p * d, 1);
    gradcheck(
      ([x, w]) => rmsNorm(x, w, 1e-5),
      ([x, w]) => {
        const out = new Float64Array(n);
        rmsNormRef(x, w, c, 1e-5, out);
        return out;
      },
      [
        { data: randomArray(n, 2 * n, 2), shape },
        { data: nearOne(c, 3), shape: [c] },
      ],
      { what: `rmsNorm ${shape}` },
    );
  }
});

test("rmsNorm accepts a frozen bf16 weight", () => {
  const c = 17;
  const x = randomArray(2 * c, 4);
  const wTensor = Tensor.from(nearOne(c, 5), [c], "bf16");
  const expected = new Float64Array(2 * c);
  rmsNormRef(x, wTensor.toFloat32Array(), c, 1e-6, expected);
  const out = rmsNorm(Tensor.from(x, [2, c]), wTensor, 1e-6);
  assertClose(out.f32(), expected, { atol: 1e-6, rtol: 1e-5, what: "rmsNorm bf16 weight" });
});

test("layerNorm matches reference on odd sizes", () => {
  for (const shape of SHAPES) {
    const c = shape[shape.length - 1];
    const n = shape.reduce((p, d) => p * d, 1);
    // An offset mean checks the two-pass variance.
    const x = randomArray(n, n, 3).map((v) => v + 5);
    const w = nearOne(c, c);
    const b = randomArray(c, c + 1, 0.1);
    for (const bias of [b, null]) {
      const expected = new Float64Array(n);
      layerNormRef(x, w, bias, c, 1e-5, expected);
      const out = layerNorm(
        Tensor.from(x, shape),
        Tensor.from(w, [c]),
        bias === null ? null : Tensor.from(bias, [c]),
        1e-5,
      );
      assertClose(out.f32(), expected, { atol: 2e-6, rtol: 1e-5, what: `layerNorm ${shape}` });
    }
  }
});

test("layerNorm gradients match finite differences", () => {
  for (const shape of SHAPES) {
    const c = shape[shape.length - 1];
    const n = shape.reduce((p, d) => p * d, 1);
    gradcheck(
      ([x, w, b]) => layerNorm(x, w, b, 1e-5),
      ([x, w, b]) => {
        const out = new Float64Array(n);
        layerNormRef(x, w, b, c, 1e-5, out);
        return out;
      },
      [
        { data: randomArray(n, 3 * n, 2), shape },
        { data: nearOne(c, 7), shape: [c] },
        { data: randomArray(c, 8, 0.1), shape: [c] },
      ],
      { what: `layerNorm ${shape}` },
    );
  }
  gradcheck(
    ([x, w]) => layerNorm(x, w, null, 1e-5),
    ([x, w]) => {
      const out = new Float64Array(x.length);
      layerNormRef(x, w, null, 5, 1e-5, out);
      return out;
    },
    [
      { data: randomArray(15, 9, 2), shape: [3, 5] },
      { data: nearOne(5, 10), shape: [5], requiresGrad: false },
    ],
    { what: "layerNorm without bias, frozen weight" },
  );
});

test("norm shape mismatch names op and shapes", () => {
  assert.throws(
    () => rmsNorm(Tensor.zeros([2, 4]), Tensor.zeros([3]), 1e-5),
    /rmsNorm: weight must have shape \[4\] to match the last dimension of x \[2, 4\], got \[3\]/,
  );
  assert.throws(
    () => layerNorm(Tensor.zeros([2, 4]), Tensor.zeros([4]), Tensor.zeros([5]), 1e-5),
    /layerNorm: bias must have shape \[4\]/,
  );
});

test("norms are bitwise equal on 1 and 2 threads", () => {
  const rows = 300;
  const c = 257;
  const x = Tensor.from(randomArray(rows * c, 11, 2), [rows, c]);
  const g = Tensor.from(randomArray(rows * c, 12), [rows, c]);
  const results: Float32Array[][] = [];
  for (const threads of [1, 2]) {
    setThreads(threads);
    const opts = { persistent: true, requiresGrad: true };
    const xLeaf = Tensor.from(x.f32(), [rows, c], "f32", opts);
    const w = Tensor.from(nearOne(c, 13), [c], "f32", opts);
    const b = Tensor.from(randomArray(c, 14), [c], "f32", opts);
    backward(rmsNorm(layerNorm(xLeaf, w, b, 1e-5), w, 1e-6), g);
    results.push([xLeaf.grad, w.grad, b.grad].map((t) => t?.f32().slice() ?? new Float32Array()));
    for (const t of [xLeaf, w, b]) t.dispose();
  }
  setThreads(1);
  assert.deepEqual(results[1], results[0]);
});

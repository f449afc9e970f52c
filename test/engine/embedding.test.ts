import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, embedding, Tensor } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import { gatherRowsRef, scatterAddRowsRef } from "../../src/kernels/reference/embedding.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { makeRandom, randomArray } from "../helpers/random.js";

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const next = makeRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(next() * vocab));
}

test("embedding gathers f32 bf16 and f16 rows", () => {
  for (const [vocab, c, n] of [
    [1, 1, 1],
    [7, 3, 5],
    [50, 17, 127],
    [11, 64, 3],
  ]) {
    const w = randomArray(vocab * c, vocab + c);
    // Include f16 subnormals, infinity and NaN in the table.
    if (w.length > 4) w.set([3e-6, -Infinity, NaN, 1e-7]);
    const ids = randomIds(n, vocab, n);
    for (const dtype of ["f32", "bf16", "f16"] as const) {
      const table = Tensor.from(w, [vocab, c], dtype);
      const values = table.toFloat32Array();
      const expected = new Float32Array(n * c);
      gatherRowsRef(values, ids, c, expected);
      const out = embedding(table, Tensor.from(ids, [n]));
      assert.deepEqual(out.shape, [n, c]);
      assert.deepEqual(out.f32(), expected, `${dtype} [${vocab}, ${c}] n=${n}`);
    }
  }
});

test("embedding gradient scatter-adds repeated ids", () => {
  const ids = Int32Array.from([2, 0, 2, 2, 4]);
  const c = 5;
  gradcheck(
    ([w]) => embedding(w, Tensor.from(ids, [5])),
    ([w]) => {
      const out = new Float64Array(ids.length * c);
      gatherRowsRef(w, ids, c, out);
      return out;
    },
    [{ data: randomArray(6 * c, 2), shape: [6, c] }],
  );
});

test("embedding frozen weight gets no gradient", () => {
  const w = Tensor.from(randomArray(12, 3), [4, 3], "bf16", { persistent: true });
  const ids = Tensor.from(Int32Array.from([1, 3]), [1, 2]);
  const out = embedding(w, ids);
  assert.deepEqual(out.shape, [1, 2, 3]);
  assert.equal(out.node, null);
  assert.equal(w.grad, null);
  w.dispose();
});

test("embedding rejects out-of-range ids", () => {
  const w = Tensor.zeros([4, 2]);
  assert.throws(
    () => embedding(w, Tensor.from(Int32Array.from([0, 4]), [2])),
    /embedding: ids\[1\] = 4 is outside the vocabulary \[0, 4\)/,
  );
});

test("embedding is bitwise equal on 1 and 2 threads", () => {
  const vocab = 300;
  const c = 130;
  const ids = Tensor.from(randomIds(600, vocab, 5), [600]);
  const g = Tensor.from(randomArray(600 * c, 6), [600, c]);
  const results: Float32Array[] = [];
  for (const threads of [1, 2]) {
    setThreads(threads);
    const w = Tensor.from(randomArray(vocab * c, 7), [vocab, c], "f32", {
      persistent: true,
      requiresGrad: true,
    });
    backward(embedding(w, ids), g);
    results.push(w.grad?.f32().slice() ?? new Float32Array());
    w.dispose();
  }
  setThreads(1);
  assert.deepEqual(results[1], results[0]);
  const expected = new Float32Array(vocab * c);
  scatterAddRowsRef(g.f32(), ids.i32(), c, expected);
  assert.deepEqual(results[0], expected);
});

// crossEntropy and linearCrossEntropy: gradients against finite differences of the f64
// reference, ignored labels, extreme logits, chunking, frozen bf16/f16 weights, the evaluation
// sums and thread-count independence.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  backward,
  crossEntropy,
  crossEntropySum,
  linearCrossEntropy,
  linearCrossEntropySum,
  noGrad,
  Tensor,
  type DType,
} from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import { crossEntropyRef } from "../../src/kernels/reference/xent.js";
import { assertClose } from "../helpers/assert.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { makeRandom, randomArray } from "../helpers/random.js";

function makeLabels(N: number, V: number, seed: number): Int32Array {
  const next = makeRandom(seed);
  const labels = Int32Array.from({ length: N }, () => Math.floor(next() * V));
  labels[1 % N] = -100;
  return labels;
}

// f64 reference of h Wᵀ followed by the mean cross-entropy.
function linearXentRef(
  h: ArrayLike<number>,
  w: ArrayLike<number>,
  labels: Int32Array,
  N: number,
  C: number,
  V: number,
): number {
  const logits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    for (let v = 0; v < V; v++) {
      let acc = 0;
      for (let c = 0; c < C; c++) acc += h[n * C + c] * w[v * C + c];
      logits[n * V + v] = acc;
    }
  }
  const ref = crossEntropyRef(logits, labels, N, V);
  return ref.count === 0 ? 0 : ref.sum / ref.count;
}

// Values of `data` rounded to `dtype`, as the engine stores them.
function rounded(data: Float32Array, dtype: DType): Float32Array {
  return Tensor.from(data, [data.length], dtype).toFloat32Array();
}

test("crossEntropy gradcheck", () => {
  const N = 6;
  const V = 11;
  const labels = makeLabels(N, V, 1);
  gradcheck(
    ([logits]) => crossEntropy(logits, Tensor.from(labels, [N])),
    ([logits]) => {
      const ref = crossEntropyRef(logits, labels, N, V);
      return [ref.sum / ref.count];
    },
    [{ data: randomArray(N * V, 2, 4), shape: [N, V] }],
    { what: "crossEntropy" },
  );
});

test("crossEntropy accepts [B, T, V] logits", () => {
  const logits = randomArray(2 * 3 * 5, 3);
  const labels = Int32Array.from([0, 4, -100, 2, 2, 1]);
  const loss = noGrad(() =>
    crossEntropy(Tensor.from(logits, [2, 3, 5]), Tensor.from(labels, [2, 3])),
  );
  const ref = crossEntropyRef(logits, labels, 6, 5);
  assertClose([loss.item()], [ref.sum / ref.count], { rtol: 1e-6, what: "loss" });
});

test("crossEntropy with every label ignored is 0 with zero gradient", () => {
  const logits = Tensor.from(randomArray(12, 4), [3, 4], "f32", { requiresGrad: true });
  const labels = Tensor.from(new Int32Array([-100, -100, -100]), [3]);
  const loss = crossEntropy(logits, labels);
  assert.equal(loss.item(), 0);
  backward(loss);
  assert.deepEqual(Array.from(logits.grad?.f32() ?? []), new Array(12).fill(0));
  assert.deepEqual(crossEntropySum(logits, labels), { sum: 0, count: 0 });
});

test("crossEntropy of ±1e4 logits stays finite", () => {
  const data = Float32Array.from([1e4, -1e4, 0, -1e4, -1e4, -1e4, 1e4, 1e4, -1e4]);
  const labels = Int32Array.from([1, 0, 2]);
  const logits = Tensor.from(data, [3, 3], "f32", { requiresGrad: true });
  const loss = crossEntropy(logits, Tensor.from(labels, [3]));
  const ref = crossEntropyRef(data, labels, 3, 3);
  assertClose([loss.item()], [ref.sum / ref.count], { rtol: 1e-6, what: "loss" });
  backward(loss);
  assertClose(logits.grad?.f32() ?? [], ref.grad, { atol: 1e-7, what: "grad" });
});

test("crossEntropy rejects out-of-range labels", () => {
  const logits = Tensor.zeros([2, 3]);
  assert.throws(
    () => crossEntropy(logits, Tensor.from(new Int32Array([0, 3]), [2])),
    /label 3 at row 1 is outside \[0, 3\)/,
  );
  assert.throws(() => crossEntropy(logits, Tensor.from(new Int32Array([0]), [1])), /leading shape/);
});

test("crossEntropySum returns the sum and the count", () => {
  const N = 9;
  const V = 7;
  const data = randomArray(N * V, 5, 3);
  const labels = makeLabels(N, V, 6);
  const got = crossEntropySum(Tensor.from(data, [N, V]), Tensor.from(labels, [N]));
  const ref = crossEntropyRef(data, labels, N, V);
  assert.equal(got.count, ref.count);
  assertClose([got.sum], [ref.sum], { rtol: 1e-6, what: "sum" });
});

for (const chunkRows of [1, 2, 64]) {
  test(`linearCrossEntropy gradcheck, chunks of ${chunkRows} rows`, () => {
    const N = 5;
    const C = 6;
    const V = 13;
    const labels = makeLabels(N, V, 7);
    // With one chunk, no row is ignored: the path that skips gathering the kept rows.
    if (chunkRows === 64) labels[1] = 3;
    gradcheck(
      ([h, w]) => linearCrossEntropy(h, w, Tensor.from(labels, [N]), { chunkRows }),
      ([h, w]) => [linearXentRef(h, w, labels, N, C, V)],
      [
        { data: randomArray(N * C, 8), shape: [N, C] },
        { data: randomArray(V * C, 9), shape: [V, C] },
      ],
      { what: "linearCrossEntropy" },
    );
  });
}

for (const dtype of ["bf16", "f16"] as const) {
  test(`linearCrossEntropy gradcheck with frozen ${dtype} weight`, () => {
    const N = 7;
    const C = 9;
    const V = 17;
    const labels = makeLabels(N, V, 10);
    gradcheck(
      ([h, w]) => linearCrossEntropy(h, w, Tensor.from(labels, [N]), { chunkRows: 3 }),
      ([h, w]) => [linearXentRef(h, w, labels, N, C, V)],
      [
        { data: randomArray(N * C, 11), shape: [N, C] },
        { data: rounded(randomArray(V * C, 12), dtype), shape: [V, C], dtype },
      ],
      { what: `linearCrossEntropy ${dtype}` },
    );
  });
}

test("linearCrossEntropy matches crossEntropy of full logits", () => {
  const N = 11;
  const C = 8;
  const V = 33;
  const h = randomArray(N * C, 13);
  const w = randomArray(V * C, 14);
  const labels = makeLabels(N, V, 15);
  const fused = linearCrossEntropySum(
    Tensor.from(h, [N, C]),
    Tensor.from(w, [V, C]),
    Tensor.from(labels, [N]),
    {
      chunkRows: 4,
    },
  );
  const ref = linearXentRef(h, w, labels, N, C, V);
  assert.equal(fused.count, N - 1);
  assertClose([fused.sum / fused.count], [ref], { rtol: 1e-5, what: "mean loss" });
});

test("linearCrossEntropy with every label ignored is 0", () => {
  const h = Tensor.from(randomArray(8, 16), [2, 4], "f32", { requiresGrad: true });
  const w = Tensor.from(randomArray(12, 17), [3, 4]);
  const loss = linearCrossEntropy(h, w, Tensor.from(new Int32Array([-100, -100]), [2]));
  assert.equal(loss.item(), 0);
  backward(loss);
  assert.deepEqual(Array.from(h.grad?.f32() ?? []), new Array(8).fill(0));
});

test("linearCrossEntropy under noGrad records nothing", () => {
  const h = Tensor.from(randomArray(8, 18), [2, 4], "f32", { requiresGrad: true });
  const w = Tensor.from(randomArray(12, 19), [3, 4]);
  const labels = Tensor.from(new Int32Array([0, 2]), [2]);
  const loss = noGrad(() => linearCrossEntropy(h, w, labels));
  assert.equal(loss.node, null);
  const withGrad = linearCrossEntropy(h, w, labels);
  assert.equal(loss.item(), withGrad.item());
});

test("linearCrossEntropy is bitwise equal on 1 and 2 threads", () => {
  const N = 37;
  const C = 24;
  const V = 101;
  const hData = randomArray(N * C, 20);
  const wData = randomArray(V * C, 21);
  const labels = Tensor.from(makeLabels(N, V, 22), [N]);
  const results = [1, 2].map((threads) => {
    setThreads(threads);
    const h = Tensor.from(hData, [N, C], "f32", { requiresGrad: true });
    const w = Tensor.from(wData, [V, C], "f32", { requiresGrad: true });
    const loss = linearCrossEntropy(h, w, labels, { chunkRows: 16 });
    backward(loss);
    return { loss: loss.item(), dh: h.grad?.f32().slice(), dw: w.grad?.f32().slice() };
  });
  assert.equal(results[1].loss, results[0].loss);
  assert.deepEqual(results[1].dh, results[0].dh);
  assert.deepEqual(results[1].dw, results[0].dw);
});

// The wasm cross-entropy kernels against the f64 reference: odd sizes, ignored rows, extreme
// logits, the gradient written in place, and thread-count independence.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/engine/tensor.js";
import {
  crossEntropyBackwardF32,
  crossEntropyForwardF32,
} from "../../src/kernels/bindings/xent.js";
import { setThreads } from "../../src/kernels/pool.js";
import { crossEntropyRef } from "../../src/kernels/reference/xent.js";
import { assertClose } from "../helpers/assert.js";
import { makeRandom, randomArray } from "../helpers/random.js";

function makeLabels(N: number, V: number, seed: number, ignoredShare = 0.25): Int32Array {
  const next = makeRandom(seed);
  return Int32Array.from({ length: N }, () =>
    next() < ignoredShare ? -100 : Math.floor(next() * V),
  );
}

const shapes: [number, number][] = [
  [1, 1],
  [3, 3],
  [17, 127],
  [5, 1001],
];

test("cross-entropy forward and backward match reference", () => {
  setThreads(2);
  shapes.forEach(([N, V], i) => {
    const logits = randomArray(N * V, 10 + i, 8);
    const labels = makeLabels(N, V, 20 + i);
    const ref = crossEntropyRef(logits, labels, N, V);
    const lt = Tensor.from(logits, [N, V]);
    const yt = Tensor.from(labels, [N]);
    const loss = Tensor.empty([N]);
    const lse = Tensor.empty([N, 2]);
    crossEntropyForwardF32(lt.offset, yt.offset, loss.offset, lse.offset, 0, N, V, -100, 0);
    assertClose(loss.f32(), ref.losses, { atol: 1e-5, rtol: 1e-6, what: `loss ${N}x${V}` });

    const scale = ref.count === 0 ? 0 : 1 / ref.count;
    const grad = Tensor.empty([N, V]);
    crossEntropyBackwardF32(lt.offset, yt.offset, lse.offset, grad.offset, N, V, -100, scale);
    assertClose(grad.f32(), ref.grad, { atol: 1e-7, rtol: 1e-5, what: `grad ${N}x${V}` });

    // The fused form writes the gradient over the logits.
    const fused = Tensor.from(logits, [N, V]);
    crossEntropyForwardF32(
      fused.offset,
      yt.offset,
      loss.offset,
      lse.offset,
      fused.offset,
      N,
      V,
      -100,
      scale,
    );
    assertClose(fused.f32(), ref.grad, { atol: 1e-7, rtol: 1e-5, what: `fused grad ${N}x${V}` });
  });
});

test("cross-entropy of extreme logits stays finite", () => {
  const N = 3;
  const V = 4;
  const logits = Float32Array.from([1e4, -1e4, 0, 5, -1e4, -1e4, -1e4, -1e4, 1e4, 1e4, -1e4, 0]);
  const labels = Int32Array.from([1, 2, 0]);
  const ref = crossEntropyRef(logits, labels, N, V);
  const lt = Tensor.from(logits, [N, V]);
  const loss = Tensor.empty([N]);
  const lse = Tensor.empty([N, 2]);
  const grad = Tensor.empty([N, V]);
  crossEntropyForwardF32(
    lt.offset,
    Tensor.from(labels, [N]).offset,
    loss.offset,
    lse.offset,
    grad.offset,
    N,
    V,
    -100,
    1 / 3,
  );
  assert.ok(loss.f32().every(Number.isFinite), `loss ${loss.f32().join(", ")}`);
  assert.ok(grad.f32().every(Number.isFinite), "gradient has non-finite values");
  assertClose(loss.f32(), ref.losses, { rtol: 1e-6, what: "loss" });
  assertClose(grad.f32(), ref.grad, { atol: 1e-7, what: "grad" });
});

test("cross-entropy kernels are bitwise equal on 1 and 2 threads", () => {
  const N = 29;
  const V = 257;
  const lt = Tensor.from(randomArray(N * V, 5, 6), [N, V]);
  const yt = Tensor.from(makeLabels(N, V, 6), [N]);
  const results = [1, 2].map((threads) => {
    setThreads(threads);
    const loss = Tensor.empty([N]);
    const lse = Tensor.empty([N, 2]);
    const grad = Tensor.empty([N, V]);
    crossEntropyForwardF32(
      lt.offset,
      yt.offset,
      loss.offset,
      lse.offset,
      grad.offset,
      N,
      V,
      -100,
      0.5,
    );
    return [loss.f32().slice(), lse.f32().slice(), grad.f32().slice()];
  });
  assert.deepEqual(results[1], results[0]);
});

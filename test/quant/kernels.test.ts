import assert from "node:assert/strict";
import { test } from "node:test";
import {
  backward,
  linear,
  mul,
  QuantizedTensor,
  sum,
  Tensor,
  type QuantKind,
} from "../../src/engine/index.js";
import { quantOperand } from "../../src/engine/ops/quantized-linear.js";
import { quantGemm } from "../../src/kernels/bindings/quant.js";
import { setThreads } from "../../src/kernels/pool.js";
import { quantizedProductRef } from "../../src/kernels/reference/quant.js";
import { randomArray } from "../helpers/random.js";

// Runs the wasm product and returns its output.
function runKernel(
  w: QuantizedTensor,
  x: Float32Array,
  m: number,
  isBackward: boolean,
  initial?: Float32Array,
): Float32Array {
  const [n, k] = w.shape;
  const cols = isBackward ? k : n;
  const xt = Tensor.from(x, [x.length]);
  const out = initial === undefined ? Tensor.zeros([m * cols]) : Tensor.from(initial, [m * cols]);
  quantGemm(quantOperand(w), xt.offset, m, isBackward, out.offset, initial !== undefined);
  return out.toFloat32Array();
}

// Checks each output against the f64 product of the decoded weight, relative to sum |x| |w|.
function assertMatchesReference(
  got: Float32Array,
  x: Float32Array,
  decoded: Float32Array,
  dims: { m: number; n: number; k: number; backward: boolean },
  what: string,
): void {
  const { m, n, k } = dims;
  const expected = quantizedProductRef(x, decoded, m, n, k, dims.backward);
  const absX = x.map(Math.abs);
  const magnitude = quantizedProductRef(absX, decoded.map(Math.abs), m, n, k, dims.backward);
  for (let i = 0; i < got.length; i++) {
    const bound = 2e-6 * magnitude[i] + 1e-7;
    const err = Math.abs(got[i] - expected[i]);
    assert.ok(err <= bound, `${what}: element ${i} is ${got[i]}, expected ${expected[i]}`);
  }
}

const SHAPES: [number, number, number][] = [
  // [M, N, K]: GEMV rows (M <= 4), packed tiles with ragged edges, K past one 256 block, N past
  // one 512 block, K not a multiple of 64.
  [1, 13, 37],
  [1, 300, 200],
  [3, 70, 130],
  [4, 600, 65],
  [5, 17, 100],
  [37, 129, 300],
  [9, 530, 70],
];

for (const kind of ["int8", "nf4"] as QuantKind[]) {
  for (const [m, n, k] of SHAPES) {
    test(`${kind} kernels match reference M=${m} N=${n} K=${k}`, () => {
      setThreads(1);
      const w = QuantizedTensor.quantize(kind, randomArray(n * k, m + n + k, 0.1), n, k);
      const decoded = w.toFloat32Array();
      const x = randomArray(m * k, 7 * m + k);
      const forward = runKernel(w, x, m, false);
      assertMatchesReference(forward, x, decoded, { m, n, k, backward: false }, "forward");
      const dy = randomArray(m * n, 5 * m + n);
      const dx = runKernel(w, dy, m, true);
      assertMatchesReference(dx, dy, decoded, { m, n, k, backward: true }, "backward");
      // Accumulating adds the product to the output's contents.
      const initial = randomArray(m * n, 99);
      const accumulated = runKernel(w, x, m, false, initial);
      for (let i = 0; i < forward.length; i++) {
        assert.ok(Math.abs(accumulated[i] - (forward[i] + initial[i])) <= 1e-5);
      }
      w.dispose();
    });
  }

  test(`${kind} kernels give the same bits on 1 and 2 threads`, () => {
    for (const [m, n, k] of [
      [1, 600, 300],
      [2, 600, 300],
      [40, 130, 300],
    ]) {
      const w = QuantizedTensor.quantize(kind, randomArray(n * k, 1, 0.1), n, k);
      const x = randomArray(m * k, 2);
      const dy = randomArray(m * n, 3);
      setThreads(1);
      const one = [runKernel(w, x, m, false), runKernel(w, dy, m, true)];
      setThreads(2);
      const two = [runKernel(w, x, m, false), runKernel(w, dy, m, true)];
      setThreads(1);
      assert.deepEqual(two[0], one[0], `forward M=${m}`);
      assert.deepEqual(two[1], one[1], `backward M=${m}`);
      w.dispose();
    }
  });

  test(`${kind} linear gives gradients to x and bias`, () => {
    const [m, n, k] = [6, 11, 70];
    const values = randomArray(n * k, 21, 0.2);
    const w = QuantizedTensor.quantize(kind, values, n, k);
    const decoded = w.toFloat32Array();
    const xValues = randomArray(m * k, 22);
    const x = Tensor.from(xValues, [2, 3, k], "f32", { requiresGrad: true, persistent: true });
    const bias = Tensor.from(randomArray(n, 23), [n], "f32", {
      requiresGrad: true,
      persistent: true,
    });
    const r = randomArray(m * n, 24);
    const y = linear(x, w, bias);
    assert.deepEqual(y.shape, [2, 3, n]);
    const yRef = quantizedProductRef(xValues, decoded, m, n, k, false);
    const yValues = y.toFloat32Array();
    const biasValues = bias.toFloat32Array();
    for (let i = 0; i < m * n; i++) {
      assert.ok(Math.abs(yValues[i] - (yRef[i] + biasValues[i % n])) < 1e-5, `y[${i}]`);
    }
    backward(sum(mul(y, Tensor.from(r, [2, 3, n]))));
    const dxRef = quantizedProductRef(r, decoded, m, n, k, true);
    const dx = (x.grad as Tensor).toFloat32Array();
    for (let i = 0; i < m * k; i++) assert.ok(Math.abs(dx[i] - dxRef[i]) < 1e-5, `dx[${i}]`);
    const dbias = (bias.grad as Tensor).toFloat32Array();
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += r[i * n + j];
      assert.ok(Math.abs(dbias[j] - s) < 1e-5, `dbias[${j}]`);
    }
    w.dispose();
  });
}

test("quantized weight decodes to its source layout and dtype", () => {
  const source = Tensor.from(randomArray(6 * 4, 8), [6, 4], "bf16", { persistent: true });
  const w = QuantizedTensor.fromTensor("int8", source, "inOut");
  assert.deepEqual(w.shape, [4, 6]);
  const back = w.dequantize();
  assert.deepEqual(back.shape, [6, 4]);
  assert.equal(back.dtype, "bf16");
  const original = source.toFloat32Array();
  const decoded = back.toFloat32Array();
  for (let i = 0; i < original.length; i++) assert.ok(Math.abs(decoded[i] - original[i]) < 0.01);
  w.dispose();
  assert.throws(() => w.toFloat32Array(), /disposed/);
});

test("quantized linear with no input features gives the bias", () => {
  const w = QuantizedTensor.quantize("nf4", new Float32Array(0), 3, 0);
  const bias = Tensor.from([1, 2, 3], [3], "f32", { persistent: true });
  const y = linear(Tensor.zeros([2, 0]), w, bias);
  assert.deepEqual(Array.from(y.toFloat32Array()), [1, 2, 3, 1, 2, 3]);
  w.dispose();
});

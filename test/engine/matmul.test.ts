import assert from "node:assert/strict";
import { test } from "node:test";
import {
  add,
  addLinear,
  endStep,
  linear,
  matmul,
  scale,
  Tensor,
  type DType,
} from "../../src/engine/index.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

// f64 reference of matmul: a [batch..., M, K] (or [..., K, M]), b [K, N] shared or batched.
function matmulF64(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dims: { batch: number; m: number; n: number; k: number; sharedB: boolean },
  transA: boolean,
  transB: boolean,
): Float64Array {
  const { batch, m, n, k } = dims;
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const aBase = t * m * k;
    const bBase = dims.sharedB ? 0 : t * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let kk = 0; kk < k; kk++) {
          const av = a[aBase + (transA ? kk * m + i : i * k + kk)];
          const bv = b[bBase + (transB ? j * k + kk : kk * n + j)];
          sum += av * bv;
        }
        out[t * m * n + i * n + j] = sum;
      }
    }
  }
  return out;
}

// Values of `data` rounded to `dtype`, as the engine stores them.
function rounded(data: Float32Array, dtype: DType): Float32Array {
  return Tensor.from(data, [data.length], dtype).toFloat32Array();
}

const transposes = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

test("matmul gradients match finite differences", () => {
  const [m, n, k] = [3, 5, 4];
  for (const [transA, transB] of transposes) {
    for (const [batch, sharedB] of [
      [1, true],
      [2, true],
      [2, false],
    ] as const) {
      const aShape = transA ? [k, m] : [m, k];
      const bShape = transB ? [n, k] : [k, n];
      const dims = { batch, m, n, k, sharedB };
      gradcheck(
        ([a, b]) => matmul(a, b, { transA, transB }),
        ([a, b]) => matmulF64(a, b, dims, transA, transB),
        [
          { data: randomArray(batch * m * k, 1), shape: batch === 1 ? aShape : [batch, ...aShape] },
          {
            data: randomArray((sharedB ? 1 : batch) * n * k, 2),
            shape: sharedB ? bShape : [batch, ...bShape],
          },
        ],
        { what: `matmul transA ${transA} transB ${transB} batch ${batch} sharedB ${sharedB}` },
      );
    }
  }
});

test("matmul through a frozen bf16 or f16 b", () => {
  const [m, n, k] = [4, 6, 5];
  for (const dtype of ["bf16", "f16"] as const) {
    for (const [transA, transB] of transposes) {
      const bData = rounded(randomArray(n * k, 3), dtype);
      gradcheck(
        ([a, b]) => matmul(a, b, { transA, transB }),
        ([a, b]) => matmulF64(a, b, { batch: 2, m, n, k, sharedB: true }, transA, transB),
        [
          { data: randomArray(2 * m * k, 4), shape: transA ? [2, k, m] : [2, m, k] },
          { data: bData, shape: transB ? [n, k] : [k, n], dtype },
        ],
        { what: `matmul ${dtype} transA ${transA} transB ${transB}` },
      );
    }
  }
});

// f64 reference of linear over rows of x [rows, in].
function linearF64(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  rows: number,
  inF: number,
  outF: number,
  layout: "outIn" | "inOut",
): Float64Array {
  const y = matmulF64(
    x,
    w,
    { batch: 1, m: rows, n: outF, k: inF, sharedB: true },
    false,
    layout === "outIn",
  );
  if (bias !== null) for (let i = 0; i < y.length; i++) y[i] += bias[i % outF];
  return y;
}

test("linear gradients match finite differences", () => {
  const [inF, outF] = [6, 5];
  for (const layout of ["outIn", "inOut"] as const) {
    for (const xShape of [
      [3, inF],
      [2, 3, inF],
      [1, inF],
    ]) {
      const rows = xShape.slice(0, -1).reduce((p, d) => p * d, 1);
      const wShape = layout === "outIn" ? [outF, inF] : [inF, outF];
      gradcheck(
        ([x, w, b]) => linear(x, w, b, layout),
        ([x, w, b]) => linearF64(x, w, b, rows, inF, outF, layout),
        [
          { data: randomArray(rows * inF, 5), shape: xShape },
          { data: randomArray(inF * outF, 6), shape: wShape },
          { data: randomArray(outF, 7), shape: [outF] },
        ],
        { what: `linear ${layout} x ${JSON.stringify(xShape)}` },
      );
      gradcheck(
        ([x, w]) => linear(x, w, null, layout),
        ([x, w]) => linearF64(x, w, null, rows, inF, outF, layout),
        [
          { data: randomArray(rows * inF, 8), shape: xShape },
          { data: randomArray(inF * outF, 9), shape: wShape },
        ],
        { what: `linear ${layout} without bias` },
      );
    }
  }
});

test("linear with a frozen bf16 weight gives no weight gradient", () => {
  const [rows, inF, outF] = [7, 9, 4];
  for (const layout of ["outIn", "inOut"] as const) {
    const w = rounded(randomArray(inF * outF, 10), "bf16");
    gradcheck(
      ([x, weight, b]) => linear(x, weight, b, layout),
      ([x, weight, b]) => linearF64(x, weight, b, rows, inF, outF, layout),
      [
        { data: randomArray(rows * inF, 11), shape: [rows, inF] },
        { data: w, shape: layout === "outIn" ? [outF, inF] : [inF, outF], dtype: "bf16" },
        { data: randomArray(outF, 12), shape: [outF] },
      ],
      { what: `linear bf16 ${layout}` },
    );
  }
});

test("linear with a frozen bf16 bias", () => {
  const [rows, inF, outF] = [5, 6, 7];
  const w = rounded(randomArray(inF * outF, 16), "bf16");
  const b = rounded(randomArray(outF, 17), "bf16");
  gradcheck(
    ([x, weight, bias]) => linear(x, weight, bias, "outIn"),
    ([x, weight, bias]) => linearF64(x, weight, bias, rows, inF, outF, "outIn"),
    [
      { data: randomArray(rows * inF, 18), shape: [rows, inF] },
      { data: w, shape: [outF, inF], dtype: "bf16" },
      { data: b, shape: [outF], dtype: "bf16" },
    ],
    { what: "linear bf16 bias" },
  );
});

test("linear on larger rows matches reference", () => {
  // Exercises the packed GEMM (rows > 4) and the GEMV (rows <= 4) paths of both layouts.
  const [inF, outF] = [70, 45];
  for (const rows of [1, 4, 37]) {
    for (const layout of ["outIn", "inOut"] as const) {
      const x = randomArray(rows * inF, 13);
      const w = randomArray(inF * outF, 14);
      const b = randomArray(outF, 15);
      const wShape = layout === "outIn" ? [outF, inF] : [inF, outF];
      const y = linear(
        Tensor.from(x, [rows, inF]),
        Tensor.from(w, wShape),
        Tensor.from(b, [outF]),
        layout,
      );
      const want = linearF64(x, w, b, rows, inF, outF, layout);
      const got = y.f32();
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(got[i] - want[i]) < 1e-5,
          `rows ${rows} ${layout} element ${i}: ${got[i]} vs ${want[i]}`,
        );
      }
    }
  }
});

test("matmul rejects mismatched shapes", () => {
  const a = Tensor.zeros([2, 3]);
  assert.throws(
    () => matmul(a, Tensor.zeros([4, 5])),
    /matmul: a \[2, 3\] and b \[4, 5\].*inner dimensions differ \(K 3 from a, 4 from b\)/,
  );
  assert.throws(
    () => matmul(Tensor.zeros([2, 2, 3]), Tensor.zeros([3, 3, 4])),
    /matmul: .*batch dims \[2\] and \[3\] differ/,
  );
  assert.throws(() => matmul(Tensor.zeros([3]), Tensor.zeros([3, 4])), /at least 2 dimensions/);
  assert.throws(
    () => matmul(Tensor.zeros([2, 3], "bf16"), Tensor.zeros([3, 4])),
    /matmul: a must be f32/,
  );
  assert.doesNotThrow(() => matmul(a, Tensor.zeros([5, 3]), { transB: true }));
});

test("linear rejects a weight of the wrong layout", () => {
  const x = Tensor.zeros([2, 3]);
  assert.throws(
    () => linear(x, Tensor.zeros([3, 4]), null, "outIn"),
    /linear: x \[2, 3\] has 3 input features but weight \[3, 4\] \(layout "outIn"\) expects 4/,
  );
  assert.throws(
    () => linear(x, Tensor.zeros([3, 4]), Tensor.zeros([3]), "inOut"),
    /linear: bias must be \[4\]/,
  );
  assert.equal(linear(x, Tensor.zeros([3, 4]), null, "inOut").shape.join(","), "2,4");
});

// addLinear: base [2, 3, 5] + x [2, 3, 4] · w [5, 4]ᵀ, written into base's memory.
const ADD_LINEAR = { base: [2, 3, 5], x: [2, 3, 4], w: [5, 4] };

test("addLinear gradients match f64", () => {
  gradcheck(
    // scale(base, 1) gives addLinear a fresh tensor, as its contract requires.
    ([base, x, w]) => addLinear(scale(base, 1), x, w),
    ([base, x, w]) => {
      const out = Float64Array.from(base);
      for (let row = 0; row < 6; row++) {
        for (let o = 0; o < 5; o++) {
          let sum = 0;
          for (let i = 0; i < 4; i++) sum += x[row * 4 + i] * w[o * 4 + i];
          out[row * 5 + o] += sum;
        }
      }
      return out;
    },
    [
      { data: randomArray(30, 11), shape: ADD_LINEAR.base },
      { data: randomArray(24, 12), shape: ADD_LINEAR.x },
      { data: randomArray(20, 13), shape: ADD_LINEAR.w },
    ],
    { what: "addLinear" },
  );
});

test("addLinear equals add of linear", () => {
  const base = Tensor.from(randomArray(30, 21), ADD_LINEAR.base);
  const x = Tensor.from(randomArray(24, 22), ADD_LINEAR.x);
  const w = Tensor.from(randomArray(20, 23), ADD_LINEAR.w);
  const expected = add(base, linear(x, w)).toFloat32Array();
  const out = addLinear(base, x, w);
  assert.deepEqual(out.toFloat32Array(), expected);
  // The sum lives in base's memory: no new [.., out] tensor.
  assert.equal(out.offset, base.offset);
  endStep();
});

test("addLinear rejects mismatched shapes", () => {
  const base = Tensor.zeros([2, 6]);
  const x = Tensor.zeros([2, 4]);
  const w = Tensor.zeros([5, 4]);
  assert.throws(() => addLinear(base, x, w), /addLinear: expected x \[\.\.\., in\], weight/);
  endStep();
});

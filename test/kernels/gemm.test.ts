import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/engine/index.js";
import {
  GEMM_SERIAL_MADDS,
  gemm,
  matrixOperand,
  type GemmDType,
  type GemmOperand,
} from "../../src/kernels/bindings/gemm.js";
import { setThreads } from "../../src/kernels/pool.js";
import { gemmRef, type StridedLayout } from "../../src/kernels/reference/gemm.js";
import { assertClose } from "../helpers/assert.js";
import { randomArray } from "../helpers/random.js";

interface Case {
  m: number;
  n: number;
  k: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  dtype?: GemmDType;
  /** b is one [K, N] matrix shared by the batch. */
  sharedB?: boolean;
  accumulate?: boolean;
  /** C stored column-major ([N, M] row-major). */
  transC?: boolean;
  seed?: number;
}

interface Result {
  got: Float32Array;
  want: Float64Array;
}

function layoutOf(op: GemmOperand): StridedLayout {
  return { row: op.row, col: op.col, batch: op.batch };
}

// Runs one GEMM through the binding and the f64 reference on the same (decoded) inputs.
function runCase(c: Case): Result {
  const { m, n, k } = c;
  const batch = c.batch ?? 1;
  const dtype = c.dtype ?? "f32";
  const seed = c.seed ?? 1;
  const bBatches = c.sharedB ? 1 : batch;
  const aShape = c.transA ? [batch, k, m] : [batch, m, k];
  const bShape = c.transB ? [bBatches, n, k] : [bBatches, k, n];
  const cShape = c.transC ? [batch, n, m] : [batch, m, n];

  const a = Tensor.from(randomArray(batch * m * k, seed), aShape);
  const b = Tensor.from(randomArray(bBatches * k * n, seed + 1), bShape, dtype);
  const out = Tensor.from(randomArray(batch * m * n, seed + 2), cShape);
  const cBefore = Float64Array.from(out.f32());

  const aOp = matrixOperand(a.offset, aShape[1], aShape[2], c.transA);
  const bOp = matrixOperand(b.offset, bShape[1], bShape[2], c.transB, !c.sharedB);
  const cOp = matrixOperand(out.offset, cShape[1], cShape[2], c.transC);
  gemm({ a: aOp, b: bOp, bDtype: dtype, c: cOp, m, n, k, batch, accumulate: c.accumulate });

  gemmRef({
    a: a.f32(),
    aLayout: layoutOf(aOp),
    b: b.toFloat32Array(),
    bLayout: layoutOf(bOp),
    c: cBefore,
    cLayout: layoutOf(cOp),
    m,
    n,
    k,
    batch,
    accumulate: c.accumulate ?? false,
  });
  return { got: out.f32().slice(), want: cBefore };
}

function checkCase(c: Case): void {
  const { got, want } = runCase(c);
  // Inputs are uniform in [-1, 1]. The tolerance, about 3k units of 2^-24, is far above the
  // rounding error of these sums and far below the order-1 error of an indexing mistake.
  assertClose(got, want, { atol: 2e-7 * (c.k + 4), rtol: 1e-6, what: JSON.stringify(c) });
}

const transposes = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;
const dtypes: GemmDType[] = ["f32", "bf16", "f16"];

test("gemm matches reference on odd shapes", () => {
  const shapes = [
    [1, 1, 1],
    [3, 17, 127],
    [17, 127, 3],
    [127, 3, 17],
    [17, 17, 17],
    [5, 9, 300],
    [130, 20, 33],
  ];
  for (const dtype of dtypes) {
    for (const [transA, transB] of transposes) {
      for (const [m, n, k] of shapes) checkCase({ m, n, k, transA, transB, dtype });
    }
  }
});

test("gemm handles blocks past NC and KC", () => {
  checkCase({ m: 6, n: 1030, k: 3 });
  checkCase({ m: 9, n: 1030, k: 260, transB: true, dtype: "bf16" });
  checkCase({ m: 11, n: 20, k: 1100, transA: true });
  checkCase({ m: 11, n: 20, k: 1100, accumulate: true, dtype: "f16" });
});

test("gemm handles row blocks past MC", () => {
  // 133 rows cross the 126- or 128-row block and end in a partial tile, and K 600 takes two K
  // blocks, so full tiles are also added to C.
  for (const [transA, transB] of transposes) {
    checkCase({ m: 133, n: 24, k: 600, transA, transB });
    checkCase({ m: 130, n: 17, k: 40, transA, transB, accumulate: true });
  }
});

test("gemv path matches reference for M 1 to 4", () => {
  for (const dtype of dtypes) {
    for (const [transA, transB] of transposes) {
      for (const m of [1, 2, 3, 4]) {
        for (const [n, k] of [
          [1, 1],
          [37, 45],
          [70, 8],
          [3, 127],
        ]) {
          checkCase({ m, n, k, transA, transB, dtype, seed: m });
        }
      }
    }
    // More columns than one axpy block (2048 / M columns).
    checkCase({ m: 2, n: 1100, k: 13, dtype });
    checkCase({ m: 1, n: 2100, k: 13, dtype });
    checkCase({ m: 1, n: 1100, k: 13, dtype, transB: true });
    // Dot path: a long K (groups of 32, leftover groups of 8 and single values) in a pair of rows.
    checkCase({ m: 2, n: 5, k: 1021, dtype, transB: true });
  }
});

test("gemm accumulates into C", () => {
  for (const dtype of dtypes) {
    checkCase({ m: 19, n: 21, k: 23, accumulate: true, dtype });
    checkCase({ m: 2, n: 40, k: 23, accumulate: true, dtype, transB: true });
    checkCase({ m: 3, n: 40, k: 23, accumulate: true, dtype });
  }
});

test("gemm writes a column-major C", () => {
  for (const dtype of dtypes) {
    for (const [transA, transB] of transposes) {
      checkCase({ m: 13, n: 11, k: 9, transA, transB, dtype, transC: true });
      checkCase({ m: 2, n: 11, k: 9, transA, transB, dtype, transC: true });
      checkCase({ m: 13, n: 11, k: 9, transA, transB, dtype, transC: true, accumulate: true });
    }
  }
});

test("gemm batches with shared and batched B", () => {
  for (const [transA, transB] of transposes) {
    for (const sharedB of [false, true]) {
      checkCase({ m: 7, n: 10, k: 6, batch: 3, transA, transB, sharedB });
      checkCase({ m: 2, n: 10, k: 6, batch: 5, transA, transB, sharedB, dtype: "bf16" });
    }
  }
});

test("gemm with K 0 writes zeros", () => {
  checkCase({ m: 5, n: 9, k: 0 });
  checkCase({ m: 2, n: 9, k: 0 });
  checkCase({ m: 5, n: 9, k: 0, accumulate: true });
});

test("gemm decodes f16 subnormals, infinity and NaN", () => {
  // Every f16 class: zeros, subnormals, normals, the largest value, infinities and NaN. The
  // second group of 8 contains the infinities and NaN, so the vector decoders see both kinds.
  const values = [0, -0, 2 ** -24, -(2 ** -20), 2 ** -14, 0.333251953125, -65504, 65504];
  values.push(Infinity, -Infinity, NaN, 1, -1, 2 ** -15, 1.5, -2);
  const n = values.length;
  const k = 8;
  for (const [m, transB] of [
    [1, false],
    [1, true],
    [5, false],
    [5, true],
  ] as const) {
    // Column j of B repeats values[j] k times and A is all ones, so C(i, j) = 8 * values[j]
    // exactly (sums start from +0, so -0 comes out as +0).
    const bValues = transB ? values.flatMap((v) => new Array<number>(k).fill(v)) : [];
    if (!transB) for (let kk = 0; kk < k; kk++) bValues.push(...values);
    const a = Tensor.from(new Float32Array(m * k).fill(1), [m, k]);
    const b = Tensor.from(bValues, transB ? [n, k] : [k, n], "f16");
    const out = Tensor.empty([m, n]);
    gemm({
      a: matrixOperand(a.offset, m, k),
      b: matrixOperand(b.offset, transB ? n : k, transB ? k : n, transB),
      bDtype: "f16",
      c: matrixOperand(out.offset, m, n),
      m,
      n,
      k,
      batch: 1,
    });
    const row = Array.from(out.f32().subarray((m - 1) * n, m * n));
    const expected = values.map((v) => 8 * v + 0);
    assert.deepEqual(row, expected, `m ${m} transB ${transB}`);
  }
});

test("gemv row equals the row alone", () => {
  // The dot path runs rows in pairs and a last row alone; both must sum in the same order.
  const [m, n, k] = [3, 21, 37];
  for (const dtype of dtypes) {
    const a = Tensor.from(randomArray(m * k, 20), [m, k]);
    const b = Tensor.from(randomArray(n * k, 21), [n, k], dtype);
    const all = Tensor.empty([m, n]);
    const bOp = matrixOperand(b.offset, n, k, true);
    const call = { b: bOp, bDtype: dtype, n, k, batch: 1 };
    gemm({ ...call, a: matrixOperand(a.offset, m, k), c: matrixOperand(all.offset, m, n), m });
    for (let r = 0; r < m; r++) {
      const one = Tensor.empty([1, n]);
      const aRow = matrixOperand(a.offset + r * k * 4, 1, k);
      gemm({ ...call, a: aRow, c: matrixOperand(one.offset, 1, n), m: 1 });
      const expected = all.f32().slice(r * n, (r + 1) * n);
      assert.deepEqual(one.f32().slice(), expected, `${dtype} row ${r}`);
    }
  }
});

test("gemm is bitwise equal on 1 and 2 threads", () => {
  // The split is by output rows or columns and every K block is summed in the same order.
  const cases: Case[] = [
    { m: 67, n: 130, k: 300 },
    { m: 200, n: 40, k: 70, transA: true },
    { m: 90, n: 300, k: 40, transB: true, dtype: "bf16" },
    { m: 3, n: 4000, k: 50, dtype: "f16" },
    { m: 1, n: 5999, k: 90, transB: true, dtype: "bf16" },
    { m: 3, n: 2999, k: 70, transB: true },
    { m: 20, n: 60, k: 80, batch: 6 },
    { m: 20, n: 60, k: 80, batch: 6, accumulate: true },
  ];
  try {
    for (const c of cases) {
      // Smaller products run on one thread whatever the pool size.
      const madds = c.m * c.n * c.k * (c.batch ?? 1);
      assert.ok(madds >= GEMM_SERIAL_MADDS, `${JSON.stringify(c)} is too small to be split`);
      setThreads(1);
      const one = runCase(c).got;
      setThreads(2);
      const two = runCase(c).got;
      assert.deepEqual(two, one, JSON.stringify(c));
    }
  } finally {
    setThreads(2);
  }
});

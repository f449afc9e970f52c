import assert from "node:assert/strict";
import { test } from "node:test";
import { add, backward, mean, mul, scale, sub, sum, Tensor } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import {
  broadcastBinaryRef,
  broadcastShapeRef,
  type BinaryOpName,
} from "../../src/kernels/reference/elementwise.js";
import { assertClose } from "../helpers/assert.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

const OPS = { add, sub, mul } as const;

function size(shape: number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

// Pairs that reach every kernel path: same shape, row broadcast either way, scalar either way,
// and the general strided path.
const SHAPE_PAIRS: [number[], number[]][] = [
  [[1], [1]],
  [[3], [3]],
  [
    [17, 127],
    [17, 127],
  ],
  [[5, 17], [17]],
  [[17], [5, 17]],
  [
    [3, 4, 5],
    [1, 5],
  ],
  [
    [2, 3, 5],
    [3, 5],
  ],
  [[127], [1]],
  [[1], [3, 17]],
  [[], [4, 3]],
  [
    [3, 1],
    [1, 4],
  ],
  [
    [2, 1, 3],
    [4, 1],
  ],
  [
    [5, 17],
    [5, 1],
  ],
  [
    [2, 3, 1, 5],
    [3, 4, 1],
  ],
];

test("binary ops match reference for broadcast shapes", () => {
  let seed = 1;
  for (const [aShape, bShape] of SHAPE_PAIRS) {
    const outShape = broadcastShapeRef(aShape, bShape);
    const a = randomArray(size(aShape), seed++);
    const b = randomArray(size(bShape), seed++);
    for (const name of ["add", "sub", "mul"] as BinaryOpName[]) {
      const expected = new Float32Array(size(outShape));
      broadcastBinaryRef(name, a, aShape, b, bShape, expected);
      const out = OPS[name](Tensor.from(a, aShape), Tensor.from(b, bShape));
      assert.deepEqual(out.shape, outShape, `${name} shape for ${aShape} and ${bShape}`);
      assert.deepEqual(out.f32(), expected, `${name} values for ${aShape} and ${bShape}`);
    }
  }
});

test("binary op gradients match finite differences", () => {
  let seed = 100;
  for (const [aShape, bShape] of SHAPE_PAIRS) {
    const outShape = broadcastShapeRef(aShape, bShape);
    for (const name of ["add", "sub", "mul"] as BinaryOpName[]) {
      gradcheck(
        ([a, b]) => OPS[name](a, b),
        ([a, b]) => {
          const out = new Float64Array(size(outShape));
          broadcastBinaryRef(name, a, aShape, b, bShape, out);
          return out;
        },
        [
          { data: randomArray(size(aShape), seed++), shape: aShape },
          { data: randomArray(size(bShape), seed++), shape: bShape },
        ],
        { what: `${name} ${JSON.stringify(aShape)} ${JSON.stringify(bShape)}` },
      );
    }
  }
});

test("binary op with frozen input gives it no gradient", () => {
  gradcheck(
    ([a, b]) => mul(a, b),
    ([a, b]) => a.map((v, i) => v * b[i % 3]),
    [
      { data: randomArray(6, 1), shape: [2, 3] },
      { data: randomArray(3, 2), shape: [3], requiresGrad: false },
    ],
  );
});

test("broadcast mismatch error names op and shapes", () => {
  const a = Tensor.zeros([2, 3]);
  const b = Tensor.zeros([4]);
  assert.throws(() => add(a, b), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  assert.throws(() => mul(b, a), /mul: shapes \[4\] and \[2, 3\]/);
});

test("broadcast to empty shape gives zero gradient", () => {
  // [2, 1] against [2, 0] takes the general reduction path over an empty dimension.
  const a = Tensor.from([1, 2], [2, 1], "f32", { persistent: true, requiresGrad: true });
  const b = Tensor.zeros([2, 0], "f32", { persistent: true, requiresGrad: true });
  const y = mul(a, b);
  assert.deepEqual(y.shape, [2, 0]);
  backward(y, Tensor.zeros([2, 0]));
  assert.deepEqual(a.grad?.toArray(), [0, 0]);
  a.dispose();
  b.dispose();
});

test("add of one tensor with itself doubles gradient", () => {
  const x = Tensor.from([1, 2, 3], [3], "f32", { persistent: true, requiresGrad: true });
  backward(add(x, x), Tensor.from([1, -2, 0.5], [3]));
  assert.deepEqual(Array.from(x.grad?.f32() ?? []), [2, -4, 1]);
  x.dispose();
});

test("add gradients of two inputs do not alias", () => {
  // y = a + b feeds z = y * a, so a collects two contributions after b got its own gradient;
  // if both gradients shared one buffer, b's would change too.
  const opts = { persistent: true, requiresGrad: true };
  const a = Tensor.from([1, 2], [2], "f32", opts);
  const b = Tensor.from([3, 5], [2], "f32", opts);
  const y = add(a, b);
  const z = add(mul(y, a), scale(b, 0));
  backward(z, Tensor.from([1, 1], [2]));
  // dz/da = y + a = a + b + a, dz/db = a
  assert.deepEqual(Array.from(a.grad?.f32() ?? []), [5, 9]);
  assert.deepEqual(Array.from(b.grad?.f32() ?? []), [1, 2]);
  a.dispose();
  b.dispose();
});

test("scale sum and mean match finite differences", () => {
  const data = randomArray(127, 5);
  gradcheck(
    ([x]) => scale(x, -2.5),
    ([x]) => x.map((v) => v * -2.5),
    [{ data, shape: [127] }],
  );
  gradcheck(
    ([x]) => sum(x),
    ([x]) => [x.reduce((s, v) => s + v, 0)],
    [{ data, shape: [1, 127] }],
  );
  gradcheck(
    ([x]) => mean(x),
    ([x]) => [x.reduce((s, v) => s + v, 0) / x.length],
    [{ data, shape: [127] }],
  );
});

test("sum of large array is accurate", () => {
  const n = 100003;
  const data = randomArray(n, 9);
  let exact = 0;
  for (const v of data) exact += v;
  const got = sum(Tensor.from(data, [n])).item();
  assertClose([got], [exact], { rtol: 1e-6, atol: 1e-6, what: "sum" });
});

test("elementwise results are bitwise equal on 1 and 2 threads", () => {
  // Large enough that every kernel splits across threads.
  const cases: [number[], number[]][] = [
    [
      [300, 257],
      [300, 257],
    ],
    [[300, 257], [257]],
    [[300, 257], [1]],
    [
      [300, 1, 257],
      [7, 1],
    ],
  ];
  for (const [aShape, bShape] of cases) {
    const a = Tensor.from(randomArray(size(aShape), 11), aShape);
    const b = Tensor.from(randomArray(size(bShape), 12), bShape);
    for (const name of ["add", "sub", "mul"] as const) {
      setThreads(1);
      const one = OPS[name](a, b).f32().slice();
      setThreads(2);
      const two = OPS[name](a, b).f32().slice();
      assert.deepEqual(two, one, `${name} ${aShape} ${bShape}`);
    }
  }
  setThreads(1);
});

test("reductions are bitwise equal on 1 and 2 threads", () => {
  // The reductions sum fixed blocks (or whole columns) in a fixed order, so the results are
  // bitwise equal, which is stricter than the 1e-6 relative bound that reductions promise.
  const n = 300 * 257;
  const x = Tensor.from(randomArray(n, 13), [300, 257], "f32", { requiresGrad: true });
  const g = Tensor.from(randomArray(n, 14), [300, 257]);
  const results: Float32Array[][] = [];
  for (const threads of [1, 2]) {
    setThreads(threads);
    const bias = Tensor.zeros([257], "f32", { requiresGrad: true });
    const strided = Tensor.zeros([300, 1], "f32", { requiresGrad: true });
    const y = add(add(x, bias), strided);
    backward(y, g);
    results.push([
      sum(x).f32().slice(),
      bias.grad?.f32().slice() ?? new Float32Array(),
      strided.grad?.f32().slice() ?? new Float32Array(),
    ]);
    bias.grad?.dispose();
    strided.grad?.dispose();
  }
  setThreads(1);
  assert.deepEqual(results[1], results[0]);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { setThreads } from "../../src/kernels/pool.js";
import { addSame, backward, Tensor } from "../../src/engine/index.js";
import { addRef } from "../../src/kernels/reference/elementwise.js";
import { randomArray } from "../helpers/random.js";

test("add matches reference for odd sizes", () => {
  for (const n of [1, 3, 17, 127, 1000]) {
    const a = randomArray(n, 1);
    const b = randomArray(n, 2);
    const expected = new Float32Array(n);
    addRef(a, b, expected);
    const out = addSame(Tensor.from(a, [n]), Tensor.from(b, [n]));
    assert.deepEqual(out.f32(), expected);
  }
});

test("add is bitwise equal on 1 and 2 threads", () => {
  const n = 100003;
  const a = Tensor.from(randomArray(n, 3), [n]);
  const b = Tensor.from(randomArray(n, 4), [n]);
  setThreads(1);
  const one = addSame(a, b).f32().slice();
  setThreads(2);
  const two = addSame(a, b).f32().slice();
  assert.deepEqual(two, one);
});

test("add backward passes the gradient to both inputs", () => {
  const a = Tensor.from([1, 2], [2], "f32", { persistent: true, requiresGrad: true });
  const b = Tensor.from([3, 4], [2], "f32", { persistent: true, requiresGrad: true });
  const y = addSame(a, b);
  backward(y, Tensor.from([0.5, -1], [2]));
  assert.deepEqual(Array.from(a.grad?.f32() ?? []), [0.5, -1]);
  assert.deepEqual(Array.from(b.grad?.f32() ?? []), [0.5, -1]);
});

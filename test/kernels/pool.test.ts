import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor, addSame } from "../../src/engine/index.js";
import { getPool, setThreads } from "../../src/kernels/pool.js";
import { randomArray } from "../helpers/random.js";

function addOnThreads(threads: number, a: Tensor, b: Tensor): Float32Array {
  setThreads(threads);
  return addSame(a, b).f32().slice();
}

test("pool survives thread count changes", () => {
  const n = 4099;
  const a = Tensor.from(randomArray(n, 11), [n]);
  const b = Tensor.from(randomArray(n, 12), [n]);
  const expected = addOnThreads(1, a, b);
  for (const threads of [2, 1, 2, 2, 1, 2]) {
    assert.deepEqual(addOnThreads(threads, a, b), expected, `${threads} threads`);
  }
});

test("pool restarts workers after close", () => {
  const n = 1031;
  const a = Tensor.from(randomArray(n, 13), [n]);
  const b = Tensor.from(randomArray(n, 14), [n]);
  const expected = addOnThreads(1, a, b);
  for (let round = 0; round < 5; round++) {
    getPool().close();
    assert.equal(getPool().threads, 1);
    assert.deepEqual(addOnThreads(2, a, b), expected, `round ${round}`);
  }
});

test("pool runs jobs with fewer threads than workers", () => {
  setThreads(2);
  const pool = getPool();
  const n = 513;
  const a = Tensor.from(randomArray(n, 15), [n]);
  const b = Tensor.from(randomArray(n, 16), [n]);
  const expected = addOnThreads(1, a, b);
  setThreads(2);
  for (let i = 0; i < 200; i++) {
    const out = Tensor.empty([n]);
    pool.run("addF32", [a.offset, b.offset, out.offset, n], i % 3 === 0 ? 1 : 2);
    assert.deepEqual(out.f32().slice(), expected);
  }
});

test("pool rejects an unknown kernel", () => {
  assert.throws(() => getPool().run("noSuchKernel", []), /noSuchKernel.*not exported/);
});

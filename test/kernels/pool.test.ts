import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor, addSame } from "../../src/engine/index.js";
import {
  CLAIM_PARTS,
  claimPart,
  claimTag,
  CTL_CLAIM,
  CTL_SLOTS,
  getPool,
  setThreads,
} from "../../src/kernels/pool.js";
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

test("claimPart hands out each part once", () => {
  const control = new Int32Array(CTL_SLOTS);
  const generation = 10;
  const tag = claimTag(generation);
  control[CTL_CLAIM] = tag * CLAIM_PARTS;
  const claimed = [claimPart(control, tag, 3), claimPart(control, tag, 3)];
  claimed.push(claimPart(control, tag, 3));
  assert.deepEqual(claimed, [0, 1, 2]);
  assert.equal(claimPart(control, tag, 3), -1);
});

test("claimPart rejects an older job", () => {
  const control = new Int32Array(CTL_SLOTS);
  const current = claimTag(12);
  control[CTL_CLAIM] = current * CLAIM_PARTS;
  assert.equal(claimPart(control, claimTag(10), 2), -1);
  assert.equal(claimPart(control, current, 2), 0);
});

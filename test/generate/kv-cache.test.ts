// The KV cache on its own: appends, padding bookkeeping and capacity errors.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/engine/index.js";
import { KVCache } from "../../src/generate/kv-cache.js";

/** [B, Hkv, T, D] with element value base + its flat index. */
function block(shape: number[], base: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(
    Float32Array.from({ length: n }, (_, i) => base + i),
    shape,
  );
}

test("cache appends and reads back every position", () => {
  const cache = new KVCache({ numLayers: 1, batch: 2, numKvHeads: 1, headDim: 2, maxLength: 5 });
  cache.begin(2, null);
  const first = cache.update(0, block([2, 1, 2, 2], 0), block([2, 1, 2, 2], 100));
  cache.commit();
  assert.deepEqual(Array.from(first.keys.f32()), [0, 1, 2, 3, 4, 5, 6, 7]);
  cache.begin(1, null);
  const second = cache.update(0, block([2, 1, 1, 2], 50), block([2, 1, 1, 2], 150));
  cache.commit();
  assert.deepEqual(second.keys.shape, [2, 1, 3, 2]);
  assert.deepEqual(Array.from(second.keys.f32()), [0, 1, 2, 3, 50, 51, 4, 5, 6, 7, 52, 53]);
  assert.deepEqual(Array.from(second.values.f32()).slice(4, 6), [150, 151]);
  assert.equal(cache.length, 3);
  cache.dispose();
});

test("cache tracks padding per row", () => {
  const cache = new KVCache({ numLayers: 1, batch: 2, numKvHeads: 1, headDim: 1, maxLength: 6 });
  cache.begin(3, [1, 1, 1, 0, 0, 1]);
  cache.commit();
  assert.equal(cache.realCount(0), 3);
  assert.equal(cache.realCount(1), 1);
  cache.begin(1, null);
  assert.deepEqual(Array.from(cache.rowMask(1)), [0, 0, 1, 1]);
  cache.dispose();
});

test("cache rejects overflow and wrong shapes", () => {
  const cache = new KVCache({ numLayers: 1, batch: 1, numKvHeads: 2, headDim: 2, maxLength: 2 });
  assert.throws(() => cache.begin(3, null), /exceed the capacity of 2/);
  cache.begin(1, null);
  assert.throws(
    () => cache.update(0, block([1, 1, 1, 2], 0), block([1, 2, 1, 2], 0)),
    /keys must be f32 \[1, 2, 1, 2\], got \[1, 1, 1, 2\] f32/,
  );
  assert.throws(
    () => cache.update(1, block([1, 2, 1, 2], 0), block([1, 2, 1, 2], 0)),
    /layer 1 is outside 0\.\.0/,
  );
  cache.dispose();
});

test("cache append returns the buffers in place", () => {
  const cache = new KVCache({ numLayers: 1, batch: 2, numKvHeads: 1, headDim: 2, maxLength: 4 });
  cache.begin(2, null);
  cache.append(0, block([2, 1, 2, 2], 0), block([2, 1, 2, 2], 100));
  cache.commit();
  cache.begin(1, null);
  const step = cache.append(0, block([2, 1, 1, 2], 50), block([2, 1, 1, 2], 150));
  cache.commit();
  assert.equal(step.length, 3);
  assert.deepEqual(step.keys.shape, [2, 1, 4, 2]);
  // Row b starts at b * maxLength positions; the 4th position of each row is not written yet.
  const keys = Array.from(step.keys.f32());
  assert.deepEqual(keys.slice(0, 6), [0, 1, 2, 3, 50, 51]);
  assert.deepEqual(keys.slice(8, 14), [4, 5, 6, 7, 52, 53]);
  const values = Array.from(step.values.f32());
  assert.deepEqual(values.slice(4, 6), [150, 151]);
  assert.deepEqual(values.slice(12, 14), [152, 153]);
  cache.dispose();
});

test("cache append rejects wrong shapes", () => {
  const cache = new KVCache({ numLayers: 1, batch: 1, numKvHeads: 2, headDim: 2, maxLength: 2 });
  cache.begin(1, null);
  assert.throws(
    () => cache.append(0, block([1, 2, 1, 2], 0), block([1, 2, 2, 2], 0)),
    /KVCache\.append: values must be f32 \[1, 2, 1, 2\], got \[1, 2, 2, 2\] f32/,
  );
  cache.dispose();
});

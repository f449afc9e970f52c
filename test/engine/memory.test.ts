import assert from "node:assert/strict";
import { test } from "node:test";
import { endStep, Tensor } from "../../src/engine/index.js";
import { getArena, getHeap, Heap } from "../../src/engine/memory.js";

test("heap reuses released blocks", () => {
  const heap = getHeap();
  const a = heap.alloc(1000);
  const b = heap.alloc(1000);
  const inUse = heap.bytesInUse;
  heap.release(a);
  assert.equal(heap.bytesInUse, inUse - 1024);
  const c = heap.alloc(512);
  assert.equal(c, a, "a smaller block fits where the released one was");
  heap.release(c);
  heap.release(b);
});

test("heap takes the smallest free block that fits", () => {
  const heap = new Heap(new WebAssembly.Memory({ initial: 1, maximum: 16 }), 0);
  const big = heap.alloc(4096);
  heap.alloc(64);
  const small = heap.alloc(1024);
  heap.alloc(64);
  heap.release(big);
  heap.release(small);
  assert.equal(heap.alloc(1024), small, "the 1 KiB hole, not the first one");
  assert.equal(heap.alloc(4096), big, "the 4 KiB hole stayed whole");
});

test("heap aligns blocks to 64 bytes", () => {
  const heap = getHeap();
  const blocks = [1, 63, 65, 1000].map((n) => heap.alloc(n));
  for (const offset of blocks) assert.equal(offset % 64, 0, `offset ${offset}`);
  for (const offset of blocks) heap.release(offset);
});

test("heap rejects releasing an unknown offset", () => {
  assert.throws(() => getHeap().release(12345), /not an allocated block/);
});

test("arena release frees blocks after the mark", () => {
  const arena = getArena();
  const mark = arena.mark();
  const first = arena.alloc(4096);
  arena.release(mark);
  const again = arena.alloc(4096);
  assert.equal(again, first);
  arena.release(mark);
});

test("arena counts the bytes in use", () => {
  endStep();
  const arena = getArena();
  assert.equal(arena.usedBytes, 0);
  arena.alloc(100);
  arena.alloc(4096);
  // Each block is rounded up to 64 bytes.
  assert.equal(arena.usedBytes, 128 + 4096);
  // A block larger than the current chunk's room starts a new chunk; the old one counts whole.
  const reserved = arena.reservedBytes;
  arena.alloc(reserved);
  assert.equal(arena.usedBytes, reserved + reserved);
  endStep();
  assert.equal(arena.usedBytes, 0);
});

test("allocation past 4 GiB reports sizes and fixes", () => {
  const inUse = getHeap().bytesInUse;
  assert.throws(
    () => Tensor.empty([1 << 30], "f32", { persistent: true }),
    (e: Error) => {
      assert.match(e.message, /out of wasm memory/);
      assert.match(e.message, /requested 4\.00 GiB/);
      assert.match(e.message, /in use/);
      assert.match(e.message, /bf16/);
      assert.match(e.message, /smaller batch/);
      return true;
    },
  );
  assert.equal(getHeap().bytesInUse, inUse, "a failed allocation leaves the heap as it was");
});

test("tensor from an earlier step is rejected", () => {
  const t = Tensor.zeros([4]);
  endStep();
  assert.throws(() => t.f32(), /earlier step/);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AdamW,
  add,
  backward,
  dropout,
  endStep,
  freeUnsaved,
  gelu,
  layerNorm,
  linearCrossEntropy,
  mean,
  mul,
  noGrad,
  reshape,
  Rng,
  rmsNorm,
  silu,
  sum,
  swiglu,
  Tensor,
  transpose,
  zeroGrad,
} from "../../src/engine/index.js";
import { getArena, getHeap } from "../../src/engine/memory.js";

test("training loop keeps flat resident memory", () => {
  const opts = { persistent: true, requiresGrad: true };
  const rng = new Rng(1);
  const w = rng.normal([8, 16], 0, 0.5, opts);
  const bias = Tensor.zeros([16], "f32", opts);
  const norm = Tensor.full([16], 1, opts);
  const params = [w, bias, norm];
  const opt = new AdamW(params, { lr: 1e-3 });
  const heap = getHeap();
  let memoryAfterWarmup = 0;
  let inUseAfterWarmup = 0;
  let arenaAfterWarmup = 0;
  let loss = 0;

  for (let step = 0; step < 1000; step++) {
    const x = rng.normal([4, 8, 16]);
    const h = add(mul(x, reshape(transpose(transpose(w, 0, 1), 0, 1), [1, 8, 16])), bias);
    const y = swiglu(silu(rmsNorm(h, norm, 1e-6)), gelu(layerNorm(h, norm, bias, 1e-5)));
    const out = mean(dropout(y, 0.1, rng, true));
    backward(out);
    loss = out.item();
    opt.step();
    zeroGrad(params);
    endStep();
    if (step === 9) {
      memoryAfterWarmup = heap.memoryBytes;
      inUseAfterWarmup = heap.bytesInUse;
      arenaAfterWarmup = getArena().reservedBytes;
    }
  }
  assert.ok(Number.isFinite(loss), `loss ${loss}`);
  assert.equal(heap.memoryBytes, memoryAfterWarmup, "wasm memory grew after step 10");
  assert.equal(heap.bytesInUse, inUseAfterWarmup, "heap bytes in use grew after step 10");
  assert.equal(getArena().reservedBytes, arenaAfterWarmup, "arena grew after step 10");
  opt.dispose();
  for (const p of params) p.dispose();
});

test("backward frees op temporaries before the step ends", () => {
  // A chain of ops whose backward allocates a temporary per op: with scratch scopes the heap
  // holds only the live gradients, so its peak grows far less than the sum of temporaries.
  const n = 1 << 16;
  const w = Tensor.from(new Float32Array(n).fill(0.5), [n], "f32", {
    persistent: true,
    requiresGrad: true,
  });
  let h = Tensor.full([n], 1);
  for (let i = 0; i < 40; i++) h = mul(h, w);
  const loss = sum(h);
  const heap = getHeap();
  const before = heap.bytesInUse;
  const arenaBefore = getArena().mark();
  backward(loss);
  const growth = heap.bytesInUse - before;
  const arenaAfter = getArena().mark();
  // Only the seed gradient of the loss (one 64-byte block) comes from the step arena.
  assert.equal(arenaAfter.chunk, arenaBefore.chunk, "backward filled an arena chunk");
  assert.ok(arenaAfter.used - arenaBefore.used <= 64, "backward allocated from the step arena");
  // Only w.grad (n floats) may remain; 40 ops x 2 gradients x n floats were allocated.
  assert.ok(growth <= 4 * n + 4096, `heap grew by ${growth} bytes after backward`);
  endStep();
  w.dispose();
});

test("linearCrossEntropy frees its logits chunks", () => {
  // One [128, 50000] chunk of logits takes 25.6 MB, more than an arena chunk.
  const [rows, channels, vocab] = [256, 8, 50000];
  const rng = new Rng(4);
  const h = rng.normal([rows, channels], 0, 1, { persistent: true, requiresGrad: true });
  const weight = rng.normal([vocab, channels], 0, 0.1, { persistent: true });
  const labels = Tensor.from(
    Int32Array.from({ length: rows }, (_, i) => (i * 37) % vocab),
    [rows],
    "i32",
    { persistent: true },
  );
  // A first call sizes the GEMM packing buffers, which live on. The chunks come from the
  // heap, so the arena keeps no chunk-sized block for later steps.
  endStep();
  const reserved = getArena().reservedBytes;
  linearCrossEntropy(h, weight, labels, { chunkRows: 128 });
  endStep();
  assert.equal(getArena().reservedBytes, reserved);
  const stepBytes = (): number => getHeap().bytesInUse + getArena().mark().used;
  const before = stepBytes();
  const loss = linearCrossEntropy(h, weight, labels, { chunkRows: 128 });
  const keptBytes = stepBytes() - before;
  // Only dh [256, 8] and the loss stay until the step ends.
  assert.ok(keptBytes < 64 * 1024, `${keptBytes} bytes kept after the loss`);
  backward(loss);
  assert.ok(h.grad !== null);
  endStep();
});

test("freeUnsaved without recording keeps only the result", () => {
  endStep();
  const heap = getHeap();
  const before = heap.bytesInUse;
  const out = noGrad(() =>
    freeUnsaved(() => {
      const a = Tensor.full([4096], 1.5);
      const b = gelu(mul(a, a));
      return add(b, silu(b));
    }),
  );
  // One block of 4096 f32 values is left: the result. The four intermediates are freed.
  assert.equal(heap.bytesInUse - before, 4096 * 4);
  assert.ok(Math.abs(out.f32()[0] - 4.2284) < 1e-3);
  endStep();
  assert.equal(heap.bytesInUse, before);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AdamW,
  add,
  backward,
  dropout,
  endStep,
  gelu,
  layerNorm,
  mean,
  mul,
  reshape,
  Rng,
  rmsNorm,
  silu,
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

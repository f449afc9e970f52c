import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  AdamW,
  backward,
  clipGradNorm,
  endStep,
  gradNorm,
  mul,
  sum,
  Tensor,
} from "../../src/engine/index.js";
import { getArena, getHeap } from "../../src/engine/memory.js";
import { setThreads } from "../../src/kernels/pool.js";
import { adamwRef } from "../../src/kernels/reference/adamw.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { assertClose } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";
import { randomArray } from "../helpers/random.js";

function param(data: ArrayLike<number>, shape: number[]): Tensor {
  return Tensor.from(data, shape, "f32", { persistent: true, requiresGrad: true });
}

function setGrad(p: Tensor, g: ArrayLike<number>): void {
  p.grad ??= Tensor.zeros(p.shape, "f32", { persistent: true });
  p.grad.f32().set(g);
}

test("adamw matches f64 reference over several steps", () => {
  for (const [n, weightDecay] of [
    [1, 0],
    [3, 0.1],
    [17, 0.01],
    [127, 0],
    [1000, 0.05],
  ]) {
    const p = param(randomArray(n, n), [n]);
    const opt = new AdamW([p], { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay });
    const pRef = Float64Array.from(p.f32());
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    for (let step = 1; step <= 5; step++) {
      const g = randomArray(n, 100 * n + step, 0.1);
      setGrad(p, g);
      // A changing learning rate, as a schedule would pass it.
      const lr = 0.01 / step;
      opt.step(lr);
      adamwRef(pRef, Float64Array.from(g), m, v, {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay,
        step,
      });
    }
    assert.equal(opt.stepCount, 5);
    assertClose(p.f32(), pRef, { atol: 1e-6, rtol: 1e-5, what: `adamw n=${n} wd=${weightDecay}` });
    opt.dispose();
    p.dispose();
  }
});

interface AdapterFixture {
  grads: Record<string, number[][]>;
  adamw: {
    hyperparameters: { lr: number; betas: [number, number]; eps: number; weight_decay: number };
    params_after_step1: Record<string, number[][]>;
    small_grad_elements: [string, [number, number], number][];
  };
}

function checkFixtureStep(arch: string): void {
  const ref = JSON.parse(
    readFileSync(fixture(`reference/${arch}/adapter.json`), "utf8"),
  ) as AdapterFixture;
  const { tensors } = readSafetensors(
    fixture(`reference/${arch}/adapter/adapter_model.safetensors`),
  );
  const names = Object.keys(ref.grads);
  const params = names.map((name) => {
    const raw = tensors.get(name);
    assert.ok(raw !== undefined, `adapter tensor ${name}`);
    assert.equal(raw.dtype, "F32");
    const p = param(new Float32Array(raw.data.slice().buffer), raw.shape);
    setGrad(p, ref.grads[name].flat());
    return p;
  });
  const h = ref.adamw.hyperparameters;
  const opt = new AdamW(params, {
    lr: h.lr,
    betas: h.betas,
    eps: h.eps,
    weightDecay: h.weight_decay,
  });
  opt.step();
  names.forEach((name, i) => {
    const got = params[i].f32();
    const expected = ref.adamw.params_after_step1[name].flat();
    const cols = params[i].shape[1];
    // Elements with |g| < 1e-5 move by lr * g / (|g| + eps), which float32 noise in g can change
    // by up to lr, so those get 2 * lr.
    const small = new Set(
      ref.adamw.small_grad_elements
        .filter(([key]) => key === name)
        .map(([, [row, col]]) => row * cols + col),
    );
    for (let k = 0; k < got.length; k++) {
      const tolerance = small.has(k) ? 2 * h.lr : 1e-6;
      assert.ok(
        Math.abs(got[k] - expected[k]) <= tolerance,
        `${arch} ${name}[${k}] is ${got[k]}, expected ${expected[k]} (tolerance ${tolerance})`,
      );
    }
  });
  opt.dispose();
  for (const p of params) p.dispose();
}

test("adamw first step matches torch fixtures", () => {
  checkFixtureStep("llama");
  checkFixtureStep("gpt2");
});

test("adamw skips parameters without gradient", () => {
  const a = param([1, 2], [2]);
  const b = param([3, 4], [2]);
  setGrad(a, [0.5, -0.5]);
  const opt = new AdamW([a, b], { lr: 0.1, weightDecay: 0.5 });
  opt.step();
  assert.deepEqual(b.toArray(), [3, 4]);
  assert.notDeepEqual(a.toArray(), [1, 2]);
  opt.dispose();
  a.dispose();
  b.dispose();
});

test("adamw allocates its state and the gradient buffers before the first step", () => {
  const used = param([1, 2], [2]);
  const unused = param([3, 4], [2]);
  const opt = new AdamW([used, unused], { lr: 0.1, weightDecay: 0.5 });
  const reserved = used.reservedGrad;
  assert.ok(reserved !== null);
  assert.equal(used.grad, null);
  // Bytes held outside the step arena, whose chunks stay allocated between steps.
  const persistentBytes = () => getHeap().bytesInUse - getArena().reservedBytes;
  const before = persistentBytes();
  backward(sum(mul(used, Tensor.from([3, 5], [2]))));
  // backward took the reserved buffer rather than allocating one.
  assert.equal(used.grad, reserved);
  assert.deepEqual(reserved.toArray(), [3, 5]);
  opt.step();
  endStep();
  assert.equal(persistentBytes(), before);
  // A parameter that never got a gradient is still skipped and has no exported state.
  assert.equal(unused.grad, null);
  assert.deepEqual(unused.toArray(), [3, 4]);
  const names = opt.exportState(["used", "unused"]).tensors.map((t) => t.name);
  assert.deepEqual(names, ["used.exp_avg", "used.exp_avg_sq"]);
  opt.dispose();
  used.dispose();
  unused.dispose();
});

test("adamw state export and import resume exactly", () => {
  const names = ["w", "b"];
  const start = [randomArray(6, 1), randomArray(3, 2)];
  const run = (steps: number, resumeAt: number | null): Float32Array[] => {
    const params = [param(start[0], [2, 3]), param(start[1], [3])];
    let opt = new AdamW(params, { lr: 0.05, weightDecay: 0.1 });
    for (let s = 0; s < steps; s++) {
      params.forEach((p, i) => setGrad(p, randomArray(p.size, 10 * s + i, 0.3)));
      opt.step();
      if (s + 1 === resumeAt) {
        const { tensors, metadata } = opt.exportState(names);
        const stored = new Map(tensors.map((t) => [t.name, t]));
        opt.dispose();
        opt = new AdamW(params, { lr: 1, betas: [0.5, 0.5], weightDecay: 0 });
        opt.importState(stored, metadata, names);
        assert.equal(opt.stepCount, resumeAt);
        assert.equal(opt.lr, 0.05);
        assert.deepEqual(opt.betas, [0.9, 0.999]);
      }
    }
    const out = params.map((p) => p.f32().slice());
    opt.dispose();
    for (const p of params) p.dispose();
    return out;
  };
  assert.deepEqual(run(4, 2), run(4, null));
});

test("adamw import reports every mismatch", () => {
  const p = param([1, 2, 3], [3]);
  const q = param([1, 2], [2]);
  const opt = new AdamW([p, q], { lr: 0.1 });
  setGrad(p, [1, 1, 1]);
  setGrad(q, [1, 1]);
  opt.step();
  const { tensors, metadata } = opt.exportState(["p", "q"]);
  const stored = new Map(tensors.map((t) => [t.name, t]));
  stored.delete("p.exp_avg");
  stored.set("q.exp_avg_sq", { ...tensors[3], shape: [5], data: new Uint8Array(20) });
  assert.throws(
    () => opt.importState(stored, metadata, ["p", "q"]),
    /missing p\.exp_avg; q\.exp_avg_sq is F32 \[5\], expected F32 \[2\]/,
  );
  assert.throws(() => opt.importState(stored, {}, ["p", "q"]), /not written by AdamW.exportState/);
  assert.throws(() => opt.exportState(["p"]), /got 1 names for 2 parameters/);
  opt.dispose();
  p.dispose();
  q.dispose();
});

test("adamw rejects invalid options", () => {
  const p = param([1], [1]);
  assert.throws(() => new AdamW([p], { lr: -1 }), /AdamW: lr must be a finite number >= 0, got -1/);
  assert.throws(
    () => new AdamW([p], { lr: 0.1, betas: [0.9, 1] }),
    /betas\[1\] must be in \[0, 1\)/,
  );
  assert.throws(() => new AdamW([p, p], { lr: 0.1 }), /listed twice/);
  assert.throws(() => new AdamW([Tensor.zeros([2])], { lr: 0.1 }), /arena tensor/);
  p.dispose();
});

test("gradNorm and clipGradNorm follow torch", () => {
  const a = param([0, 0, 0], [3]);
  const b = param([0, 0], [2]);
  const frozen = param([0], [1]);
  setGrad(a, [3, 0, 4]);
  setGrad(b, [0, 12]);
  assert.equal(gradNorm([a, b, frozen]), 13);
  const before = clipGradNorm([a, b, frozen], 1);
  assert.equal(before, 13);
  const factor = Math.fround(1 / (13 + 1e-6));
  assert.deepEqual(
    a.grad?.toArray(),
    [3, 0, 4].map((v) => Math.fround(v * factor)),
  );
  assertClose([gradNorm([a, b])], [1], { atol: 1e-6, what: "norm after clipping" });
  // Below the limit nothing changes.
  assert.equal(clipGradNorm([a, b], 10), gradNorm([a, b]));
  assertClose([gradNorm([a, b])], [1], { atol: 1e-6, what: "norm below limit" });
  assert.throws(() => clipGradNorm([a], 0), /clipGradNorm: maxNorm must be > 0/);
  for (const t of [a, b, frozen]) t.dispose();
});

test("adamw and gradNorm are thread-count independent", () => {
  const n = 100003;
  const g = randomArray(n, 5);
  const results: Float32Array[] = [];
  const norms: number[] = [];
  for (const threads of [1, 2]) {
    setThreads(threads);
    const p = param(randomArray(n, 6), [n]);
    setGrad(p, g);
    norms.push(gradNorm([p]));
    const opt = new AdamW([p], { lr: 0.01 });
    opt.step();
    opt.step();
    results.push(p.f32().slice());
    opt.dispose();
    p.dispose();
  }
  setThreads(1);
  assert.deepEqual(results[1], results[0]);
  // The norm sums fixed blocks in a fixed order, so it is bitwise equal as well.
  assert.equal(norms[1], norms[0]);
});

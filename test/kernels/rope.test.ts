// The wasm RoPE kernel against the f64 reference: odd sizes, partial rotary, per-batch and shared
// positions, and the inverse rotation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/engine/tensor.js";
import { ropeF32 } from "../../src/kernels/bindings/rope.js";
import { setThreads } from "../../src/kernels/pool.js";
import { ropeRef } from "../../src/kernels/reference/rope.js";
import { assertClose } from "../helpers/assert.js";
import { makeRandom, randomArray } from "../helpers/random.js";

interface Case {
  B: number;
  H: number;
  T: number;
  D: number;
  rotaryDim: number;
  perBatch: boolean;
}

const cases: Case[] = [
  { B: 1, H: 1, T: 1, D: 2, rotaryDim: 2, perBatch: false },
  { B: 2, H: 3, T: 17, D: 6, rotaryDim: 6, perBatch: true },
  { B: 3, H: 2, T: 5, D: 17, rotaryDim: 10, perBatch: true },
  { B: 1, H: 4, T: 127, D: 64, rotaryDim: 16, perBatch: false },
  { B: 2, H: 1, T: 3, D: 32, rotaryDim: 32, perBatch: false },
];

function invFreqOf(rotaryDim: number): Float32Array {
  return Float32Array.from({ length: rotaryDim / 2 }, (_, j) => 10000 ** (-(2 * j) / rotaryDim));
}

function positionsOf(c: Case, seed: number): Int32Array {
  const next = makeRandom(seed);
  const n = (c.perBatch ? c.B : 1) * c.T;
  return Int32Array.from({ length: n }, () => Math.floor(next() * 4096));
}

// Tables as the rope op builds them: angle rounded to f32, then cos and sin rounded to f32.
function tables(positions: Int32Array, invFreq: Float32Array): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  positions.forEach((pos, i) => {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(pos * invFreq[j]);
      cos[i * half + j] = Math.cos(angle);
      sin[i * half + j] = Math.sin(angle);
    }
  });
  return { cos: Tensor.from(cos, [cos.length]), sin: Tensor.from(sin, [sin.length]) };
}

for (const inverse of [false, true]) {
  test(`rope ${inverse ? "inverse" : "forward"} matches reference`, () => {
    setThreads(2);
    cases.forEach((c, i) => {
      const x = randomArray(c.B * c.H * c.T * c.D, 10 + i, 3);
      const positions = positionsOf(c, 20 + i);
      const invFreq = invFreqOf(c.rotaryDim);
      const { cos, sin } = tables(positions, invFreq);
      const xt = Tensor.from(x, [x.length]);
      const out = Tensor.empty([x.length]);
      ropeF32(xt.offset, out.offset, cos.offset, sin.offset, c, inverse);
      const expected = ropeRef(x, positions, invFreq, c, inverse);
      assertClose(out.f32(), expected, { atol: 2e-6, rtol: 1e-6, what: JSON.stringify(c) });
      const passThrough = [];
      for (let r = 0; r < c.B * c.H * c.T; r++) {
        for (let j = c.rotaryDim; j < c.D; j++)
          passThrough.push(out.f32()[r * c.D + j] === x[r * c.D + j]);
      }
      assert.ok(
        passThrough.every(Boolean),
        `features past rotaryDim changed: ${JSON.stringify(c)}`,
      );
    });
  });
}

test("rope inverse undoes forward", () => {
  const c: Case = { B: 2, H: 3, T: 7, D: 12, rotaryDim: 8, perBatch: true };
  const x = randomArray(c.B * c.H * c.T * c.D, 30);
  const { cos, sin } = tables(positionsOf(c, 31), invFreqOf(c.rotaryDim));
  const xt = Tensor.from(x, [x.length]);
  const y = Tensor.empty([x.length]);
  ropeF32(xt.offset, y.offset, cos.offset, sin.offset, c, false);
  // In place: out aliases x.
  ropeF32(y.offset, y.offset, cos.offset, sin.offset, c, true);
  assertClose(y.f32(), x, { atol: 1e-6, what: "round trip" });
});

test("rope is bitwise equal on 1 and 2 threads", () => {
  // Large enough (B·H·T·D >= PARALLEL_MIN_ELEMENTS) that the pool splits it.
  const c: Case = { B: 2, H: 5, T: 333, D: 20, rotaryDim: 14, perBatch: true };
  const x = Tensor.from(randomArray(c.B * c.H * c.T * c.D, 40), [c.B * c.H * c.T * c.D]);
  const { cos, sin } = tables(positionsOf(c, 41), invFreqOf(c.rotaryDim));
  const results = [1, 2].map((threads) => {
    setThreads(threads);
    const out = Tensor.empty(x.shape);
    ropeF32(x.offset, out.offset, cos.offset, sin.offset, c, false);
    return out.f32().slice();
  });
  assert.deepEqual(results[1], results[0]);
});

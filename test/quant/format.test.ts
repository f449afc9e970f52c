import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ABSMAX_GROUP,
  decodeAbsmax,
  dequantizeInt8,
  dequantizeNf4,
  doubleQuantize,
  NF4_BLOCK,
  NF4_CODE,
  nearestNf4,
  paddedRowLength,
  quantizeInt8,
  quantizeNf4,
} from "../../src/kernels/reference/quant.js";
import { makeRandom, randomArray } from "../helpers/random.js";

// Standard normal samples (Box-Muller), like the weights of a trained layer.
function normalArray(n: number, seed: number, std: number): Float32Array {
  const next = makeRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

// Standard normal CDF from its Taylor series, accurate to ~1e-15 for |x| <= 3.
function normalCdf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / (2 * n);
    sum += term / (2 * n + 1);
  }
  return 0.5 + sum / Math.sqrt(2 * Math.PI);
}

// Inverse of normalCdf for p in (0.5, 0.999) by bisection.
function normalQuantile(p: number): number {
  let lo = 0;
  let hi = 4;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

test("NF4 code equals the normal-quantile construction", () => {
  // QLoRA's NormalFloat: 8 positive quantiles at probabilities linspace(offset, 0.5, 9) without
  // the last, 7 negative ones at linspace(offset, 0.5, 8) without the last, and 0, all divided
  // by the largest. offset = 0.9677083 as bitsandbytes' create_normal_map uses it.
  const offset = 0.9677083;
  const linspace = (a: number, b: number, n: number): number[] =>
    Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
  const positive = linspace(offset, 0.5, 9).slice(0, -1).map(normalQuantile);
  const negative = linspace(offset, 0.5, 8)
    .slice(0, -1)
    .map((p) => -normalQuantile(p));
  const values = [...positive, 0, ...negative].sort((a, b) => a - b);
  const max = Math.max(...values);
  assert.equal(NF4_CODE.length, 16);
  for (let i = 0; i < 16; i++) {
    const expected = values[i] / max;
    assert.ok(
      Math.abs(NF4_CODE[i] - expected) < 1e-6,
      `NF4_CODE[${i}] = ${NF4_CODE[i]}, construction gives ${expected}`,
    );
  }
});

test("int8 round trip within half a step", () => {
  for (const [n, k] of [
    [1, 1],
    [3, 70],
    [17, 129],
  ]) {
    const w = randomArray(n * k, n * 100 + k, 0.5);
    const q = quantizeInt8(w, n, k);
    assert.equal(q.codes.length, n * paddedRowLength(k));
    const back = dequantizeInt8(q, n, k);
    for (let r = 0; r < n; r++) {
      let absmax = 0;
      for (let c = 0; c < k; c++) absmax = Math.max(absmax, Math.abs(w[r * k + c]));
      const bound = absmax / 254 + absmax * 1e-6;
      for (let c = 0; c < k; c++) {
        const err = Math.abs(back[r * k + c] - w[r * k + c]);
        assert.ok(err <= bound, `[${n}, ${k}] element (${r}, ${c}) error ${err} > ${bound}`);
      }
    }
  }
});

test("int8 inOut layout matches outIn", () => {
  const n = 5;
  const k = 9;
  const w = randomArray(n * k, 3);
  const transposed = new Float32Array(n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) transposed[c * n + r] = w[r * k + c];
  const a = quantizeInt8(w, n, k, "outIn");
  const b = quantizeInt8(transposed, n, k, "inOut");
  assert.deepEqual(a.codes, b.codes);
  assert.deepEqual(a.scales, b.scales);
});

test("int8 keeps a zero row exact", () => {
  const w = new Float32Array(2 * 4);
  w.set([1, -2, 3, 0.5], 4);
  const back = dequantizeInt8(quantizeInt8(w, 2, 4), 2, 4);
  assert.deepEqual(Array.from(back.subarray(0, 4)), [0, 0, 0, 0]);
  assert.ok(Math.abs(back[5] + 2) <= 3 / 254, `element 5 decodes to ${back[5]}`);
});

test("NF4 round trip within the code spacing", () => {
  // Largest half gap between neighbouring code values: the nearest-value error bound.
  let halfGap = 0;
  for (let i = 1; i < 16; i++) halfGap = Math.max(halfGap, (NF4_CODE[i] - NF4_CODE[i - 1]) / 2);
  for (const [n, k] of [
    [1, 1],
    [4, 64],
    [7, 150],
    [300, 70],
  ]) {
    const w = normalArray(n * k, n + k, 0.02);
    const q = quantizeNf4(w, n, k);
    const back = dequantizeNf4(q, n, k);
    const blocksPerRow = paddedRowLength(k) / NF4_BLOCK;
    let sumErr = 0;
    let sumAbs = 0;
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < k; c++) {
        const block = r * blocksPerRow + Math.floor(c / NF4_BLOCK);
        let absmax = 0;
        const start = Math.floor(c / NF4_BLOCK) * NF4_BLOCK;
        for (let j = start; j < Math.min(k, start + NF4_BLOCK); j++)
          absmax = Math.max(absmax, Math.abs(w[r * k + j]));
        const decoded = decodeAbsmax(q, block);
        const bound = halfGap * absmax + Math.abs(decoded - absmax) + 1e-7 * absmax;
        const err = Math.abs(back[r * k + c] - w[r * k + c]);
        assert.ok(err <= bound, `[${n}, ${k}] element (${r}, ${c}) error ${err} > ${bound}`);
        sumErr += err;
        sumAbs += Math.abs(w[r * k + c]);
      }
    }
    // Normal weights: the mean error is a small fraction of the mean magnitude.
    if (n * k >= 256) assert.ok(sumErr / sumAbs < 0.12, `relative mean error ${sumErr / sumAbs}`);
  }
});

test("NF4 represents block maxima and zeros exactly", () => {
  const w = new Float32Array(64);
  w[3] = -0.75;
  w[10] = 0.25;
  const back = dequantizeNf4(quantizeNf4(w, 1, 64), 1, 64);
  // One block: the double-quantized absmax is the mean itself, so it decodes exactly.
  assert.equal(back[3], -0.75);
  assert.equal(back[0], 0);
  assert.equal(back[63], 0);
});

test("double-quantized absmax within half a step", () => {
  const count = 3 * ABSMAX_GROUP + 17;
  const absmax = Float32Array.from(randomArray(count, 11), (v) => 0.01 + Math.abs(v) * 0.2);
  const dq = doubleQuantize(absmax);
  assert.equal(dq.absmaxSteps.length, 4);
  const w = { codes: new Uint8Array(0), ...dq };
  for (let b = 0; b < count; b++) {
    const group = Math.floor(b / ABSMAX_GROUP);
    const bound = dq.absmaxSteps[group] / 2 + 4e-7 * absmax[b];
    const err = Math.abs(decodeAbsmax(w, b) - absmax[b]);
    assert.ok(err <= bound, `block ${b}: error ${err} > bound ${bound}`);
  }
  // Each group's step is its largest deviation from the mean over 127.
  let spread = 0;
  for (let b = 0; b < ABSMAX_GROUP; b++)
    spread = Math.max(spread, Math.abs(absmax[b] - dq.absmaxMean));
  assert.equal(dq.absmaxSteps[0], Math.fround(spread / 127));
});

test("nearestNf4 picks the nearest code value", () => {
  const next = makeRandom(5);
  const samples = [-1, 1, 0, ...NF4_CODE, ...Array.from({ length: 20000 }, () => next() * 2 - 1)];
  // Midpoints and values just beside them.
  for (let i = 1; i < 16; i++) {
    const mid = (NF4_CODE[i] + NF4_CODE[i - 1]) / 2;
    samples.push(mid, mid + 1e-9, mid - 1e-9);
  }
  for (const x of samples) {
    const index = nearestNf4(x);
    const distance = Math.abs(NF4_CODE[index] - x);
    for (let j = 0; j < 16; j++) {
      // 1e-12 allows either neighbour at an exact midpoint, where rounding decides.
      assert.ok(
        distance <= Math.abs(NF4_CODE[j] - x) + 1e-12,
        `x ${x}: index ${index}, code ${j} is nearer`,
      );
    }
  }
});

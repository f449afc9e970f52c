// The wasm attention kernels, row by row and tiled, against the f64 reference on random shapes:
// odd head sizes, GQA ratios 1, 2 and 4, S > T (KV cache), ALiBi and key padding masks, and
// query counts that span several of the tiled kernels' 48-row blocks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/engine/tensor.js";
import {
  attentionBackwardF32,
  attentionForwardF32,
  attentionKernel,
  type AttentionDims,
  type AttentionKernel,
} from "../../src/kernels/bindings/attention.js";
import { Rng } from "../../src/engine/random.js";
import { setThreads } from "../../src/kernels/pool.js";
import {
  attentionBackwardRef,
  attentionRef,
  type AttentionRefOptions,
} from "../../src/kernels/reference/attention.js";
import { assertClose } from "../helpers/assert.js";
import { dropFactors } from "../helpers/dropout-factors.js";
import { makeRandom, randomArray } from "../helpers/random.js";

interface Case {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  causal: boolean;
  alibi: boolean;
  mask: boolean;
}

const cases: Case[] = [
  { B: 1, H: 1, Hkv: 1, T: 1, S: 1, D: 1, causal: true, alibi: false, mask: false },
  { B: 2, H: 2, Hkv: 1, T: 3, S: 3, D: 3, causal: true, alibi: false, mask: true },
  { B: 1, H: 4, Hkv: 1, T: 5, S: 17, D: 17, causal: true, alibi: true, mask: false },
  { B: 2, H: 4, Hkv: 2, T: 17, S: 17, D: 8, causal: true, alibi: true, mask: true },
  { B: 3, H: 3, Hkv: 3, T: 4, S: 9, D: 16, causal: false, alibi: false, mask: true },
  { B: 1, H: 2, Hkv: 2, T: 1, S: 127, D: 5, causal: true, alibi: true, mask: true },
  { B: 1, H: 8, Hkv: 2, T: 13, S: 20, D: 64, causal: true, alibi: false, mask: true },
  { B: 2, H: 4, Hkv: 2, T: 100, S: 100, D: 16, causal: true, alibi: false, mask: false },
  { B: 1, H: 3, Hkv: 1, T: 61, S: 130, D: 33, causal: true, alibi: true, mask: true },
  { B: 2, H: 2, Hkv: 2, T: 50, S: 50, D: 64, causal: false, alibi: false, mask: true },
];

const KERNELS: AttentionKernel[] = ["rows", "tiled"];

function label(c: Case): string {
  return JSON.stringify(c);
}

// A [B, S] mask with some left padding, a hole in the middle and at least one real key per row.
function makeKeyMask(B: number, S: number, seed: number): Int32Array {
  const next = makeRandom(seed);
  const mask = new Int32Array(B * S);
  for (let b = 0; b < B; b++) {
    const pad = Math.floor(next() * (S / 2));
    for (let s = 0; s < S; s++) mask[b * S + s] = s >= pad && next() > 0.15 ? 1 : 0;
    mask[b * S + S - 1] = 1;
  }
  return mask;
}

function makeSlopes(H: number): Float32Array {
  return Float32Array.from({ length: H }, (_, h) => 2 ** (-(8 * (h + 1)) / H));
}

interface Prepared {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  dims: AttentionDims;
  ref: AttentionRefOptions;
}

function prepare(c: Case, seed: number): Prepared {
  const { B, H, Hkv, T, S, D } = c;
  const q = Tensor.from(randomArray(B * H * T * D, seed, 2), [B, H, T, D]);
  const k = Tensor.from(randomArray(B * Hkv * S * D, seed + 1, 2), [B, Hkv, S, D]);
  const v = Tensor.from(randomArray(B * Hkv * S * D, seed + 2), [B, Hkv, S, D]);
  const scale = 1 / Math.sqrt(D);
  const keyMask = c.mask ? makeKeyMask(B, S, seed + 3) : undefined;
  const slopes = c.alibi ? makeSlopes(H) : undefined;
  const dims: AttentionDims = {
    B,
    H,
    Hkv,
    T,
    S,
    D,
    scale,
    causal: c.causal,
    keyMask: keyMask === undefined ? 0 : Tensor.from(keyMask, [B, S]).offset,
    slopes: slopes === undefined ? 0 : Tensor.from(slopes, [H]).offset,
  };
  const ref: AttentionRefOptions = {
    B,
    H,
    Hkv,
    T,
    S,
    D,
    scale: Math.fround(scale),
    causal: c.causal,
    keyMask,
    slopes,
  };
  return { q, k, v, dims, ref };
}

function runForward(p: Prepared): { out: Tensor; lse: Tensor } {
  const { B, H, T } = p.dims;
  const out = Tensor.empty(p.q.shape);
  const lse = Tensor.empty([B, H, T]);
  attentionForwardF32(p.q.offset, p.k.offset, p.v.offset, out.offset, lse.offset, p.dims);
  return { out, lse };
}

function runBackward(p: Prepared, fwd: { out: Tensor; lse: Tensor }, dout: Tensor) {
  const dq = Tensor.empty(p.q.shape);
  const dk = Tensor.empty(p.k.shape);
  const dv = Tensor.empty(p.v.shape);
  const delta = Tensor.empty([p.dims.B, p.dims.H, p.dims.T]);
  attentionBackwardF32(
    p.q.offset,
    p.k.offset,
    p.v.offset,
    fwd.out.offset,
    dout.offset,
    fwd.lse.offset,
    delta.offset,
    dq.offset,
    dk.offset,
    dv.offset,
    p.dims,
    true,
  );
  return { dq: dq.f32().slice(), dk: dk.f32().slice(), dv: dv.f32().slice() };
}

for (const kernel of KERNELS) {
  test(`attention forward matches reference, ${kernel}`, () => {
    setThreads(2);
    cases.forEach((c, i) => {
      const p = prepare(c, 100 + i * 10);
      p.dims.kernel = kernel;
      const { out } = runForward(p);
      const expected = attentionRef(p.q.f32(), p.k.f32(), p.v.f32(), p.ref);
      assertClose(out.f32(), expected, { atol: 2e-6, rtol: 1e-5, what: `out ${label(c)}` });
    });
  });

  test(`attention backward matches reference, ${kernel}`, () => {
    setThreads(2);
    cases.forEach((c, i) => {
      const p = prepare(c, 200 + i * 10);
      p.dims.kernel = kernel;
      const fwd = runForward(p);
      const dout = Tensor.from(randomArray(p.q.size, 300 + i), p.q.shape);
      const got = runBackward(p, fwd, dout);
      const want = attentionBackwardRef(p.q.f32(), p.k.f32(), p.v.f32(), dout.f32(), p.ref);
      const tol = { atol: 1e-5, rtol: 1e-4 };
      assertClose(got.dq, want.dq, { ...tol, what: `dq ${label(c)}` });
      assertClose(got.dk, want.dk, { ...tol, what: `dk ${label(c)}` });
      assertClose(got.dv, want.dv, { ...tol, what: `dv ${label(c)}` });
    });
  });

  test(`attention is bitwise equal on 1 and 2 threads, ${kernel}`, () => {
    // Large enough (B·H·T·S·D >= GEMM_SERIAL_MADDS) that the pool splits it, with three KV
    // heads for two threads and query rows in three tiled blocks.
    const c: Case = {
      B: 1,
      H: 6,
      Hkv: 3,
      T: 101,
      S: 110,
      D: 67,
      causal: true,
      alibi: true,
      mask: true,
    };
    const p = prepare(c, 400);
    p.dims.kernel = kernel;
    const dout = Tensor.from(randomArray(p.q.size, 401), p.q.shape);
    const results = [1, 2].map((threads) => {
      setThreads(threads);
      const fwd = runForward(p);
      const grads = runBackward(p, fwd, dout);
      return { out: fwd.out.f32().slice(), lse: fwd.lse.f32().slice(), ...grads };
    });
    for (const key of ["out", "lse", "dq", "dk", "dv"] as const) {
      assert.deepEqual(results[1][key], results[0][key], `${key} differs between 1 and 2 threads`);
    }
  });
}

test("attention picks the tiled kernels from 16 query rows", () => {
  const dims = (T: number): AttentionDims => ({
    B: 1,
    H: 1,
    Hkv: 1,
    T,
    S: T,
    D: 8,
    scale: 1,
    causal: true,
    keyMask: 0,
    slopes: 0,
  });
  assert.equal(attentionKernel(dims(1)), "rows");
  assert.equal(attentionKernel(dims(15)), "rows");
  assert.equal(attentionKernel(dims(16)), "tiled");
  assert.equal(attentionKernel({ ...dims(256), kernel: "rows" }), "rows");
});

test("tiled dv sums to the sum of dout", () => {
  // Backward recomputes each probability as exp(score - lse). When those match the forward
  // pass, each row's probabilities sum to 1, so dv summed over keys equals dout summed over
  // query rows.
  setThreads(2);
  const c: Case = {
    B: 1,
    H: 2,
    Hkv: 1,
    T: 70,
    S: 70,
    D: 16,
    causal: true,
    alibi: false,
    mask: false,
  };
  const p = prepare(c, 450);
  p.dims.kernel = "tiled";
  const fwd = runForward(p);
  const dout = Tensor.from(randomArray(p.q.size, 451), p.q.shape);
  const { dv } = runBackward(p, fwd, dout);
  const g = dout.f32();
  for (let d = 0; d < c.D; d++) {
    let want = 0;
    for (let row = 0; row < c.H * c.T; row++) want += g[row * c.D + d];
    let got = 0;
    for (let s = 0; s < c.S; s++) got += dv[s * c.D + d];
    assert.ok(Math.abs(got - want) < 1e-4, `column ${d}: sum of dv ${got}, sum of dout ${want}`);
  }
});

test("tiled attention dropout matches reference", () => {
  const p = 0.3;
  const dropCases: Case[] = [
    { B: 2, H: 4, Hkv: 2, T: 21, S: 21, D: 16, causal: true, alibi: true, mask: true },
    { B: 1, H: 2, Hkv: 1, T: 5, S: 9, D: 8, causal: true, alibi: false, mask: false },
    { B: 1, H: 3, Hkv: 3, T: 60, S: 60, D: 33, causal: false, alibi: false, mask: true },
  ];
  for (const threads of [1, 2]) {
    setThreads(threads);
    dropCases.forEach((c, i) => {
      const prepared = prepare(c, 800 + i * 10);
      const n = c.B * c.H * c.T * c.S;
      const stream = new Rng(31 + i).reserve(n);
      prepared.dims.dropout = { p, stream };
      const factors = dropFactors(stream, n, p);
      prepared.ref.dropFactors = factors;
      const dropped = factors.filter((f) => f === 0).length;
      assert.ok(dropped > 0.2 * n, `case ${i}: only ${dropped} of ${n} dropped`);
      assert.ok(dropped < 0.4 * n, `case ${i}: ${dropped} of ${n} dropped`);

      const fwd = runForward(prepared);
      const q = prepared.q.f32();
      const k = prepared.k.f32();
      const v = prepared.v.f32();
      const expected = attentionRef(q, k, v, prepared.ref);
      assertClose(fwd.out.f32(), expected, { atol: 2e-6, rtol: 1e-5, what: `out ${label(c)}` });

      const dout = Tensor.from(randomArray(prepared.q.size, 900 + i), prepared.q.shape);
      const got = runBackward(prepared, fwd, dout);
      const want = attentionBackwardRef(q, k, v, dout.f32(), prepared.ref);
      const tol = { atol: 1e-5, rtol: 1e-4 };
      assertClose(got.dq, want.dq, { ...tol, what: `dq ${label(c)}` });
      assertClose(got.dk, want.dk, { ...tol, what: `dk ${label(c)}` });
      assertClose(got.dv, want.dv, { ...tol, what: `dv ${label(c)}` });
    });
  }
});

test("attention dropout needs the tiled kernels", () => {
  const dims: AttentionDims = {
    ...{ B: 1, H: 1, Hkv: 1, T: 4, S: 4, D: 8, scale: 1, causal: true, keyMask: 0, slopes: 0 },
    dropout: { p: 0.1, stream: new Rng(1).reserve(16) },
  };
  assert.equal(attentionKernel(dims), "tiled");
  assert.throws(() => attentionKernel({ ...dims, kernel: "rows" }), /row kernels apply no dropout/);
});

for (const kernel of KERNELS)
  test(`attention row without visible keys gives zeros, ${kernel}`, () => {
    setThreads(2);
    // Non-causal, batch row 1 fully padded: its queries see nothing.
    const c: Case = {
      B: 2,
      H: 2,
      Hkv: 1,
      T: 3,
      S: 4,
      D: 4,
      causal: false,
      alibi: false,
      mask: false,
    };
    const p = prepare(c, 500);
    p.dims.kernel = kernel;
    const mask = Tensor.from(new Int32Array([1, 1, 0, 1, 0, 0, 0, 0]), [2, 4]);
    p.dims.keyMask = mask.offset;

    const fwd = runForward(p);
    const out = fwd.out.f32();
    const rowSize = c.H * c.T * c.D;
    assert.ok(
      out.every((x) => Number.isFinite(x)),
      "output has non-finite values",
    );
    assert.deepEqual(Array.from(out.subarray(rowSize)), new Array(rowSize).fill(0));

    const dout = Tensor.from(randomArray(p.q.size, 501), p.q.shape);
    const got = runBackward(p, fwd, dout);
    assert.ok(
      got.dq.every((x) => Number.isFinite(x)),
      "dq has non-finite values",
    );
    assert.deepEqual(Array.from(got.dq.subarray(rowSize)), new Array(rowSize).fill(0));
    const kvSize = c.Hkv * c.S * c.D;
    assert.deepEqual(Array.from(got.dk.subarray(kvSize)), new Array(kvSize).fill(0));
    assert.deepEqual(Array.from(got.dv.subarray(kvSize)), new Array(kvSize).fill(0));
  });

test("attention accepts an f32 key mask", () => {
  setThreads(1);
  const c: Case = { B: 2, H: 2, Hkv: 2, T: 5, S: 5, D: 6, causal: true, alibi: false, mask: true };
  const p = prepare(c, 600);
  const expected = runForward(p).out.f32().slice();
  const maskI32 = makeKeyMask(c.B, c.S, 603);
  p.dims.keyMask = Tensor.from(Float32Array.from(maskI32), [c.B, c.S]).offset;
  assert.deepEqual(runForward(p).out.f32().slice(), expected);
});

for (const kernel of KERNELS)
  test(`attention pairs a hidden row with a visible one, ${kernel}`, () => {
    setThreads(2);
    // Causal with key 0 masked: query 0 sees no key, query 1 (its pair) sees key 1.
    const c: Case = {
      B: 2,
      H: 2,
      Hkv: 1,
      T: 5,
      S: 5,
      D: 7,
      causal: true,
      alibi: true,
      mask: false,
    };
    const p = prepare(c, 700);
    p.dims.kernel = kernel;
    const keyMask = Int32Array.from([0, 1, 1, 0, 1, 0, 0, 1, 1, 1]);
    p.dims.keyMask = Tensor.from(keyMask, [c.B, c.S]).offset;
    p.ref.keyMask = keyMask;

    const fwd = runForward(p);
    const expected = attentionRef(p.q.f32(), p.k.f32(), p.v.f32(), p.ref);
    assertClose(fwd.out.f32(), expected, { atol: 2e-6, rtol: 1e-5, what: "out" });

    const dout = Tensor.from(randomArray(p.q.size, 701), p.q.shape);
    const got = runBackward(p, fwd, dout);
    const want = attentionBackwardRef(p.q.f32(), p.k.f32(), p.v.f32(), dout.f32(), p.ref);
    assertClose(got.dq, want.dq, { atol: 1e-5, rtol: 1e-4, what: "dq" });
    assertClose(got.dk, want.dk, { atol: 1e-5, rtol: 1e-4, what: "dk" });
    assertClose(got.dv, want.dv, { atol: 1e-5, rtol: 1e-4, what: "dv" });
  });

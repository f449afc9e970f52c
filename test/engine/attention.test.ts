// The attention op: gradients against finite differences of the f64 reference, GQA, KV-cache
// offsets, ALiBi and padding masks, and its argument checks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { attention, backward, noGrad, Tensor } from "../../src/engine/index.js";
import { setThreads } from "../../src/kernels/pool.js";
import { attentionRef } from "../../src/kernels/reference/attention.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { randomArray } from "../helpers/random.js";

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
  { B: 1, H: 1, Hkv: 1, T: 3, S: 3, D: 4, causal: true, alibi: false, mask: false },
  { B: 2, H: 2, Hkv: 1, T: 2, S: 5, D: 3, causal: true, alibi: true, mask: true },
  { B: 1, H: 4, Hkv: 1, T: 3, S: 4, D: 5, causal: true, alibi: false, mask: true },
  { B: 2, H: 4, Hkv: 2, T: 3, S: 3, D: 2, causal: false, alibi: true, mask: false },
];

// Batch row 0 has one padding key on the left, and batch row 1 one in the middle.
function keyMaskOf(B: number, S: number): Int32Array {
  const mask = new Int32Array(B * S).fill(1);
  mask[0] = 0;
  if (B > 1) mask[S + Math.floor(S / 2)] = 0;
  return mask;
}

function slopesOf(H: number): Float32Array {
  return Float32Array.from({ length: H }, (_, h) => 0.5 ** (h + 1));
}

for (const c of cases) {
  test(`attention gradcheck ${JSON.stringify(c)}`, () => {
    setThreads(2);
    const { B, H, Hkv, T, S, D } = c;
    const keyMask = c.mask ? keyMaskOf(B, S) : undefined;
    const slopes = c.alibi ? slopesOf(H) : undefined;
    const maskTensor = keyMask === undefined ? undefined : Tensor.from(keyMask, [B, S]);
    const scale = 1 / Math.sqrt(D);
    gradcheck(
      ([q, k, v]) =>
        attention(q, k, v, { causal: c.causal, alibiSlopes: slopes, keyMask: maskTensor }),
      ([q, k, v]) =>
        attentionRef(q, k, v, {
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
        }),
      [
        { data: randomArray(B * H * T * D, 1), shape: [B, H, T, D] },
        { data: randomArray(B * Hkv * S * D, 2), shape: [B, Hkv, S, D] },
        { data: randomArray(B * Hkv * S * D, 3), shape: [B, Hkv, S, D] },
      ],
      { what: "attention" },
    );
  });
}

test("attention gives no gradient to frozen k and v", () => {
  const q = Tensor.from(randomArray(12, 4), [1, 2, 2, 3], "f32", { requiresGrad: true });
  const k = Tensor.from(randomArray(6, 5), [1, 1, 2, 3]);
  const v = Tensor.from(randomArray(6, 6), [1, 1, 2, 3]);
  const out = attention(q, k, v, { causal: true });
  backward(out, Tensor.from(randomArray(12, 7), out.shape));
  assert.ok(q.grad !== null, "q got no gradient");
  assert.equal(k.grad, null);
  assert.equal(v.grad, null);
});

test("attention scale option replaces 1/sqrt(D)", () => {
  const q = Tensor.from(randomArray(8, 8), [1, 1, 2, 4]);
  const k = Tensor.from(randomArray(8, 9), [1, 1, 2, 4]);
  const v = Tensor.from(randomArray(8, 10), [1, 1, 2, 4]);
  const out = noGrad(() => attention(q, k, v, { causal: false, scale: 0.3 }));
  const expected = attentionRef(q.f32(), k.f32(), v.f32(), {
    B: 1,
    H: 1,
    Hkv: 1,
    T: 2,
    S: 2,
    D: 4,
    scale: Math.fround(0.3),
    causal: false,
  });
  for (let i = 0; i < 8; i++)
    assert.ok(Math.abs(out.f32()[i] - expected[i]) < 1e-6, `element ${i}`);
});

test("attention padded query still sees earlier real keys", () => {
  // Right padding: the last key is padding, yet the last query (a padding token itself) attends
  // to the real keys before it, as transformers does.
  const q = Tensor.from(randomArray(12, 11), [1, 1, 3, 4]);
  const k = Tensor.from(randomArray(12, 12), [1, 1, 3, 4]);
  const v = Tensor.from(randomArray(12, 13), [1, 1, 3, 4]);
  const keyMask = Tensor.from(new Int32Array([1, 1, 0]), [1, 3]);
  const out = noGrad(() => attention(q, k, v, { causal: true, keyMask }));
  const lastRow = out.f32().slice(8, 12);
  assert.ok(
    lastRow.some((x) => x !== 0),
    "padded query row is all zeros",
  );
  const expected = attentionRef(q.f32(), k.f32(), v.f32(), {
    B: 1,
    H: 1,
    Hkv: 1,
    T: 3,
    S: 3,
    D: 4,
    scale: Math.fround(0.5),
    causal: true,
    keyMask: [1, 1, 0],
  });
  for (let i = 0; i < 12; i++)
    assert.ok(Math.abs(out.f32()[i] - expected[i]) < 1e-6, `element ${i}`);
});

test("attention rejects mismatched shapes", () => {
  const q = Tensor.zeros([1, 3, 2, 4]);
  const kv = Tensor.zeros([1, 2, 2, 4]);
  assert.throws(() => attention(q, kv, kv, { causal: true }), /multiple of the 2 KV heads/);
  const q2 = Tensor.zeros([1, 2, 3, 4]);
  assert.throws(() => attention(q2, kv, kv, { causal: true }), /S >= T/);
  const mask = Tensor.zeros([1, 3], "i32");
  assert.throws(
    () => attention(Tensor.zeros([1, 2, 2, 4]), kv, kv, { causal: true, keyMask: mask }),
    /keyMask must be \[B, S\] = \[1, 2\]/,
  );
  assert.throws(
    () =>
      attention(Tensor.zeros([1, 2, 2, 4]), kv, kv, {
        causal: true,
        alibiSlopes: new Float32Array(3),
      }),
    /one slope per query head \(2\), got 3/,
  );
});

// k and v as KV cache buffers [B, Hkv, capacity, D] with NaN past the first S positions, and the
// same first S positions as contiguous [B, Hkv, S, D] tensors.
function cacheBuffers(B: number, Hkv: number, S: number, capacity: number, D: number) {
  const make = (seed: number) => {
    const valid = randomArray(B * Hkv * S * D, seed);
    const buffer = new Float32Array(B * Hkv * capacity * D).fill(NaN);
    for (let row = 0; row < B * Hkv; row++) {
      buffer.set(valid.subarray(row * S * D, (row + 1) * S * D), row * capacity * D);
    }
    return {
      buffer: Tensor.from(buffer, [B, Hkv, capacity, D]),
      slice: Tensor.from(valid, [B, Hkv, S, D]),
    };
  };
  return { k: make(31), v: make(32) };
}

test("attention keyLength reads a cache buffer in place", () => {
  const [B, H, Hkv, T, S, capacity, D] = [2, 4, 2, 2, 5, 8, 3];
  const { k, v } = cacheBuffers(B, Hkv, S, capacity, D);
  const q = Tensor.from(randomArray(B * H * T * D, 33), [B, H, T, D]);
  const keyMask = Tensor.from(keyMaskOf(B, S), [B, S]);
  const options = { causal: true, keyMask, alibiSlopes: slopesOf(H) };
  const want = attention(q, k.slice, v.slice, options).f32().slice();
  const got = attention(q, k.buffer, v.buffer, { ...options, keyLength: S })
    .f32()
    .slice();
  assert.deepEqual(got, want);
});

test("attention keyLength rejects backward and bad lengths", () => {
  const { k, v } = cacheBuffers(1, 1, 2, 4, 3);
  const q = Tensor.from(randomArray(6, 34), [1, 1, 2, 3], "f32", { requiresGrad: true });
  const out = attention(q, k.buffer, v.buffer, { causal: true, keyLength: 2 });
  assert.throws(
    () => backward(out, Tensor.from(randomArray(6, 35), out.shape)),
    /keyLength 2 is less than the 4 positions of k/,
  );
  assert.throws(
    () => attention(q, k.buffer, v.buffer, { causal: true, keyLength: 5 }),
    /keyLength must be a whole number from 0 to the 4 positions/,
  );
});

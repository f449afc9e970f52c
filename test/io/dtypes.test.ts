// Conversions between F16/BF16 bits and numbers, checked exhaustively or against f64 maths.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeToFloat32,
  encodeFromFloat32,
  f16BitsToNumber,
  numberToBf16Bits,
  numberToF16Bits,
} from "../../src/io/dtypes.js";
import { makeRandom } from "../helpers/random.js";

test("f16 known bit patterns", () => {
  assert.equal(f16BitsToNumber(0x3c00), 1);
  assert.equal(f16BitsToNumber(0xc000), -2);
  assert.equal(f16BitsToNumber(0x7bff), 65504);
  assert.equal(f16BitsToNumber(0x0001), 2 ** -24);
  assert.equal(f16BitsToNumber(0x0400), 2 ** -14);
  assert.equal(f16BitsToNumber(0x7c00), Infinity);
  assert.ok(Number.isNaN(f16BitsToNumber(0x7e00)));
  assert.ok(Object.is(f16BitsToNumber(0x8000), -0));
});

test("f16 encode inverts decode for all patterns", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = f16BitsToNumber(bits);
    if (Number.isNaN(value)) continue;
    assert.equal(numberToF16Bits(value), bits, `bits 0x${bits.toString(16)}`);
  }
});

test("f16 rounds to nearest, ties to even", () => {
  // Midpoints between neighbours: 1 + 2^-11 lies between 1 and 1 + 2^-10.
  assert.equal(numberToF16Bits(1 + 2 ** -11), 0x3c00);
  assert.equal(numberToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(numberToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
  assert.equal(numberToF16Bits(65520), 0x7c00, "65520 rounds up to infinity");
  assert.equal(numberToF16Bits(65519), 0x7bff);
  assert.equal(numberToF16Bits(2 ** -25), 0x0000, "half the smallest subnormal ties to zero");
  assert.equal(numberToF16Bits(3 * 2 ** -25), 0x0002);
});

test("bf16 rounding matches nearest neighbour", () => {
  const rng = makeRandom(7);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < 20000; i++) {
    u32[0] = Math.floor(rng() * 2 ** 32) >>> 0;
    const x = f32[0];
    if (!Number.isFinite(x)) continue;
    const bits = numberToBf16Bits(x);
    // The two bf16 neighbours of x are its truncation and the next pattern up in magnitude.
    const low = u32[0] >>> 16;
    const lowValue = decodeToFloat32(Uint8Array.of(low & 0xff, low >>> 8), "BF16")[0];
    const high = (low + 1) & 0xffff;
    const highValue = decodeToFloat32(Uint8Array.of(high & 0xff, high >>> 8), "BF16")[0];
    const dLow = Math.abs(x - lowValue);
    const dHigh = Math.abs(highValue - x);
    const expected = dLow < dHigh || (dLow === dHigh && (low & 1) === 0) ? low : high;
    assert.equal(bits, expected, `x = ${x}`);
  }
});

test("decodeToFloat32 rejects integer dtypes", () => {
  assert.throws(() => decodeToFloat32(new Uint8Array(8), "I64", "ids"), /ids has dtype I64/);
});

test("encode then decode f16 and bf16", () => {
  const values = Float32Array.of(0, 1, -1.5, 0.1, 1000, -65504);
  const f16 = decodeToFloat32(encodeFromFloat32(values, "F16"), "F16");
  const bf16 = decodeToFloat32(encodeFromFloat32(values, "BF16"), "BF16");
  for (let i = 0; i < values.length; i++) {
    assert.ok(Math.abs(f16[i] - values[i]) <= Math.abs(values[i]) * 2 ** -11, `f16 ${values[i]}`);
    assert.ok(Math.abs(bf16[i] - values[i]) <= Math.abs(values[i]) * 2 ** -8, `bf16 ${values[i]}`);
  }
});

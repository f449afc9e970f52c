// Safetensors element types and conversions between their little-endian bytes and Float32Array.
// Weights may be F32, F16 or BF16; the integer and 8-bit float types are read as raw bytes.

/** Every dtype name this reader accepts, with its size in bytes per element. */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The dtypes a model weight may use. */
export type FloatDType = "F32" | "F16" | "BF16";

export function isSafetensorsDType(name: string): name is SafetensorsDType {
  return Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, name);
}

export function isFloatDType(name: string): name is FloatDType {
  return name === "F32" || name === "F16" || name === "BF16";
}

/** Converts one IEEE 754 half-precision bit pattern to a number. */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Rounds a number to the nearest f16 bit pattern (ties to even); overflow becomes infinity. */
export function numberToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);

  // Rebias from f32 (127) to f16 (15).
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16 (or zero): shift the mantissa with its implicit bit into place.
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    const halfway = 1 << (shift - 1);
    const rest = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rest > halfway || (rest === halfway && m & 1)) m++;
    return sign | m;
  }
  let bits = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly increments the exponent, up to infinity.
  if (rest > 0x1000 || (rest === 0x1000 && bits & 1)) bits++;
  return sign | bits;
}

/** Rounds a number to the nearest bf16 bit pattern (ties to even); NaN stays NaN. */
export function numberToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

function littleEndianView(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Decodes F32, F16 or BF16 little-endian bytes into a new Float32Array. Throws for other
 * dtypes, because integers and 8-bit floats are not weights this library computes with.
 */
export function decodeToFloat32(data: Uint8Array, dtype: string, what = "tensor"): Float32Array {
  const width = dtype === "F32" ? 4 : 2;
  const out = new Float32Array(Math.floor(data.byteLength / width));
  decodeFloat32Into(data, dtype, out, what);
  return out;
}

/** Decodes F32, F16 or BF16 little-endian bytes into `out`, one value per element of `out`. */
export function decodeFloat32Into(
  data: Uint8Array,
  dtype: string,
  out: Float32Array,
  what = "tensor",
): void {
  const view = littleEndianView(data);
  if (dtype === "F32") {
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return;
  }
  if (dtype === "BF16") {
    const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(i * 2, true) << 16;
    return;
  }
  if (dtype === "F16") {
    for (let i = 0; i < out.length; i++) out[i] = f16BitsToNumber(view.getUint16(i * 2, true));
    return;
  }
  throw new Error(
    `decodeToFloat32: ${what} has dtype ${dtype}, expected F32, F16 or BF16. ` +
      `Only floating-point weights can be converted to f32`,
  );
}

/** Encodes f32 values as little-endian F32, F16 or BF16 bytes (rounding to nearest even). */
export function encodeFromFloat32(values: Float32Array, dtype: FloatDType): Uint8Array {
  if (dtype === "F32") {
    const out = new Uint8Array(values.length * 4);
    const view = littleEndianView(out);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
    return out;
  }
  const out = new Uint8Array(values.length * 2);
  const view = littleEndianView(out);
  const toBits = dtype === "BF16" ? numberToBf16Bits : numberToF16Bits;
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, toBits(values[i]), true);
  return out;
}

// Embedding gather (forward) and scatter-add (backward). Weights may be f32, bf16 or f16; the
// output is always f32. Results do not depend on the thread count.
import { partStart, partEnd } from "./split";

/** Converts four f16 values (the low 64 bits of h, as u16 lanes) to f32x4. */
@inline
function f16x4ToF32(bits: v128): v128 {
  const h = i32x4.extend_low_i16x8_u(bits);
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const magnitude = v128.and(h, i32x4.splat(0x7fff));
  // Shifting the exponent and mantissa into f32 position and scaling by 2^112 rebias the
  // exponent from 15 to 127, and the multiply normalises f16 subnormals for free.
  let f = f32x4.mul(i32x4.shl(magnitude, 13), f32x4.splat(5.192296858534828e33));
  // Infinity and NaN (exponent 31) need the f32 exponent 255 instead.
  const special = i32x4.ge_s(magnitude, i32x4.splat(0x7c00));
  f = v128.bitselect(v128.or(i32x4.shl(magnitude, 13), i32x4.splat(0x7f800000)), f, special);
  return v128.or(f, sign);
}

@inline
function f16ToF32(h: u32): f32 {
  return f32x4.extract_lane(f16x4ToF32(i32x4.splat(h)), 0);
}

/**
 * out[t, :] = w[ids[t], :] for t in [0, n). w [vocab, c] with dtype 0 f32, 1 bf16, 2 f16;
 * ids i32 [n] (checked by the caller to be in range); out f32 [n, c]. Split by tokens.
 */
export function gatherRows(
  w: usize,
  dtype: i32,
  ids: usize,
  out: usize,
  n: i32,
  c: i32,
  tid: i32,
  nt: i32,
): void {
  const t0 = partStart(n, 1, tid, nt);
  const t1 = partEnd(n, 1, tid, nt);
  for (let t = t0; t < t1; t++) {
    const row = <usize>load<i32>(ids + ((<usize>t) << 2));
    const dst = out + (((<usize>t * <usize>c)) << 2);
    if (dtype == 0) {
      memory.copy(dst, w + ((row * <usize>c) << 2), (<usize>c) << 2);
      continue;
    }
    const src = w + ((row * <usize>c) << 1);
    let j = 0;
    for (; j + 4 <= c; j += 4) {
      const bits = v128.load64_zero(src + ((<usize>j) << 1));
      const v =
        dtype == 1 ? i32x4.shl(i32x4.extend_low_i16x8_u(bits), 16) : f16x4ToF32(bits);
      v128.store(dst + ((<usize>j) << 2), v);
    }
    for (; j < c; j++) {
      const h = <u32>load<u16>(src + ((<usize>j) << 1));
      const v = dtype == 1 ? reinterpret<f32>(h << 16) : f16ToF32(h);
      store<f32>(dst + ((<usize>j) << 2), v);
    }
  }
}

/**
 * dw[ids[t], :] += g[t, :] for t in [0, n), in token order. dw f32 [vocab, c], g f32 [n, c].
 * Split by columns, so repeated ids never race and the sum order is fixed.
 */
export function scatterAddRows(
  g: usize,
  ids: usize,
  dw: usize,
  n: i32,
  c: i32,
  tid: i32,
  nt: i32,
): void {
  const j0 = partStart(c, 4, tid, nt);
  const j1 = partEnd(c, 4, tid, nt);
  for (let t = 0; t < n; t++) {
    const row = <usize>load<i32>(ids + ((<usize>t) << 2));
    const src = g + ((<usize>t * <usize>c) << 2);
    const dst = dw + ((row * <usize>c) << 2);
    let j = j0;
    for (; j + 4 <= j1; j += 4) {
      const o = (<usize>j) << 2;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
    }
    for (; j < j1; j++) {
      const o = (<usize>j) << 2;
      store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
    }
  }
}

// SIMD helpers for the softmax, attention, RoPE and cross-entropy kernels. index.ts does not
// re-export this file: most helpers take or return v128, which JavaScript cannot call.

/** Returns a * b + c per lane: one fused instruction in the relaxed-SIMD build. */
@inline
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Returns (v0 + v2) + (v1 + v3), the lane order that reduce4 uses for each of its inputs. */
@inline
export function hsum(v: v128): f32 {
  return (
    f32x4.extract_lane(v, 0) +
    f32x4.extract_lane(v, 2) +
    (f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 3))
  );
}

/** Returns [hsum(a), hsum(b), hsum(c), hsum(d)], bitwise, with shuffles instead of extracts. */
@inline
export function reduce4(a: v128, b: v128, c: v128, d: v128): v128 {
  // [a0 + a2, b0 + b2, a1 + a3, b1 + b3] and the same for c and d.
  const ab = f32x4.add(f32x4.shuffle(a, b, 0, 4, 1, 5), f32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(f32x4.shuffle(c, d, 0, 4, 1, 5), f32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(ab, cd, 0, 1, 4, 5), f32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** Returns the largest of the four lanes. */
@inline
export function hmax(v: v128): f32 {
  return max(
    max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)),
    max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)),
  );
}

/** Returns the dot product of n f32 values at a and b, bitwise equal to a lane of dot4F32. */
export function dotF32(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    acc = madd(v128.load(a + o), v128.load(b + o), acc);
  }
  let sum = hsum(acc);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    sum += load<f32>(a + o) * load<f32>(b + o);
  }
  return sum;
}

/**
 * Returns the dot products of n f32 values at a with the four rows b + i * stride (bytes), as
 * one vector. Lane i is bitwise equal to dotF32(a, b + i * stride, n), so a score computed in a
 * block of four matches the same score computed alone.
 */
export function dot4F32(a: usize, b: usize, stride: usize, n: i32): v128 {
  const b1 = b + stride;
  const b2 = b1 + stride;
  const b3 = b2 + stride;
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let acc2 = f32x4.splat(0);
  let acc3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const va = v128.load(a + o);
    acc0 = madd(va, v128.load(b + o), acc0);
    acc1 = madd(va, v128.load(b1 + o), acc1);
    acc2 = madd(va, v128.load(b2 + o), acc2);
    acc3 = madd(va, v128.load(b3 + o), acc3);
  }
  let sums = reduce4(acc0, acc1, acc2, acc3);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    let column = f32x4.splat(load<f32>(b + o));
    column = f32x4.replace_lane(column, 1, load<f32>(b1 + o));
    column = f32x4.replace_lane(column, 2, load<f32>(b2 + o));
    column = f32x4.replace_lane(column, 3, load<f32>(b3 + o));
    // A separate multiply and add, as in dotF32's tail.
    sums = f32x4.add(sums, f32x4.mul(f32x4.splat(load<f32>(a + o)), column));
  }
  return sums;
}

/**
 * y[i] += sum over j < 4 of alpha[j] * xj[i] for n f32 values, where xj is the row
 * x + j * stride (bytes), in the order of four axpyF32 calls.
 */
export function axpy4F32(y: usize, alpha: v128, x: usize, stride: usize, n: i32): void {
  const x1 = x + stride;
  const x2 = x1 + stride;
  const x3 = x2 + stride;
  const a0 = f32x4.splat(f32x4.extract_lane(alpha, 0));
  const a1 = f32x4.splat(f32x4.extract_lane(alpha, 1));
  const a2 = f32x4.splat(f32x4.extract_lane(alpha, 2));
  const a3 = f32x4.splat(f32x4.extract_lane(alpha, 3));
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    let acc = madd(a0, v128.load(x + o), v128.load(y + o));
    acc = madd(a1, v128.load(x1 + o), acc);
    acc = madd(a2, v128.load(x2 + o), acc);
    v128.store(y + o, madd(a3, v128.load(x3 + o), acc));
  }
  if (i < n) axpy4Tail(y, alpha, x, stride, i, n);
}

// The second result of dot2x4F32. Globals belong to one module instance, and every pool thread
// has its own instance, so threads do not share it.
let dot2x4Second: v128 = f32x4.splat(0);

/**
 * Returns the dot products of the row a0 with the four rows b + i * stride (bytes), and leaves
 * those of the row a1 for dot2x4Rest(). Each lane is bitwise equal to dotF32 of the same rows.
 * Two rows share every load of b, which halves the loads per multiply-add of dot4F32.
 */
export function dot2x4F32(a0: usize, a1: usize, b: usize, stride: usize, n: i32): v128 {
  const b1 = b + stride;
  const b2 = b1 + stride;
  const b3 = b2 + stride;
  let acc00 = f32x4.splat(0);
  let acc01 = f32x4.splat(0);
  let acc02 = f32x4.splat(0);
  let acc03 = f32x4.splat(0);
  let acc10 = f32x4.splat(0);
  let acc11 = f32x4.splat(0);
  let acc12 = f32x4.splat(0);
  let acc13 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const va0 = v128.load(a0 + o);
    const va1 = v128.load(a1 + o);
    let vb = v128.load(b + o);
    acc00 = madd(va0, vb, acc00);
    acc10 = madd(va1, vb, acc10);
    vb = v128.load(b1 + o);
    acc01 = madd(va0, vb, acc01);
    acc11 = madd(va1, vb, acc11);
    vb = v128.load(b2 + o);
    acc02 = madd(va0, vb, acc02);
    acc12 = madd(va1, vb, acc12);
    vb = v128.load(b3 + o);
    acc03 = madd(va0, vb, acc03);
    acc13 = madd(va1, vb, acc13);
  }
  let sums0 = reduce4(acc00, acc01, acc02, acc03);
  let sums1 = reduce4(acc10, acc11, acc12, acc13);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    let column = f32x4.splat(load<f32>(b + o));
    column = f32x4.replace_lane(column, 1, load<f32>(b1 + o));
    column = f32x4.replace_lane(column, 2, load<f32>(b2 + o));
    column = f32x4.replace_lane(column, 3, load<f32>(b3 + o));
    sums0 = f32x4.add(sums0, f32x4.mul(f32x4.splat(load<f32>(a0 + o)), column));
    sums1 = f32x4.add(sums1, f32x4.mul(f32x4.splat(load<f32>(a1 + o)), column));
  }
  dot2x4Second = sums1;
  return sums0;
}

/** Returns the a1 results of the last dot2x4F32 call on this thread. */
@inline
export function dot2x4Rest(): v128 {
  return dot2x4Second;
}

/**
 * y0[i] += sum over j < 4 of alpha0[j] * xj[i], and the same for y1 with alpha1, where xj is the
 * row x + j * stride (bytes). Per element and row this is the sequence of multiply-adds that
 * axpy4F32 and four axpyF32 calls perform, so results are bitwise the same.
 */
export function axpy2x4F32(
  y0: usize,
  y1: usize,
  alpha0: v128,
  alpha1: v128,
  x: usize,
  stride: usize,
  n: i32,
): void {
  const x1 = x + stride;
  const x2 = x1 + stride;
  const x3 = x2 + stride;
  const a00 = f32x4.splat(f32x4.extract_lane(alpha0, 0));
  const a01 = f32x4.splat(f32x4.extract_lane(alpha0, 1));
  const a02 = f32x4.splat(f32x4.extract_lane(alpha0, 2));
  const a03 = f32x4.splat(f32x4.extract_lane(alpha0, 3));
  const a10 = f32x4.splat(f32x4.extract_lane(alpha1, 0));
  const a11 = f32x4.splat(f32x4.extract_lane(alpha1, 1));
  const a12 = f32x4.splat(f32x4.extract_lane(alpha1, 2));
  const a13 = f32x4.splat(f32x4.extract_lane(alpha1, 3));
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    let vx = v128.load(x + o);
    let acc0 = madd(a00, vx, v128.load(y0 + o));
    let acc1 = madd(a10, vx, v128.load(y1 + o));
    vx = v128.load(x1 + o);
    acc0 = madd(a01, vx, acc0);
    acc1 = madd(a11, vx, acc1);
    vx = v128.load(x2 + o);
    acc0 = madd(a02, vx, acc0);
    acc1 = madd(a12, vx, acc1);
    vx = v128.load(x3 + o);
    v128.store(y0 + o, madd(a03, vx, acc0));
    v128.store(y1 + o, madd(a13, vx, acc1));
  }
  if (i < n) {
    axpy4Tail(y0, alpha0, x, stride, i, n);
    axpy4Tail(y1, alpha1, x, stride, i, n);
  }
}

/** The scalar part of axpy4F32 for elements [from, n). */
function axpy4Tail(y: usize, alpha: v128, x: usize, stride: usize, from: i32, n: i32): void {
  const x1 = x + stride;
  const x2 = x1 + stride;
  const x3 = x2 + stride;
  const a0 = f32x4.extract_lane(alpha, 0);
  const a1 = f32x4.extract_lane(alpha, 1);
  const a2 = f32x4.extract_lane(alpha, 2);
  const a3 = f32x4.extract_lane(alpha, 3);
  for (let i = from; i < n; i++) {
    const o = (<usize>i) << 2;
    let acc = load<f32>(y + o) + a0 * load<f32>(x + o);
    acc += a1 * load<f32>(x1 + o);
    acc += a2 * load<f32>(x2 + o);
    store<f32>(y + o, acc + a3 * load<f32>(x3 + o));
  }
}

/** y[i] += alpha * x[i] for n f32 values. */
export function axpyF32(y: usize, alpha: f32, x: usize, n: i32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(y + o, madd(va, v128.load(x + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    store<f32>(y + o, load<f32>(y + o) + alpha * load<f32>(x + o));
  }
}

/** Sets n f32 values at p to zero. */
export function zeroF32(p: usize, n: i32): void {
  memory.fill(p, 0, (<usize>n) << 2);
}

// exp(x) = 2^k * exp(r) with k = round(x / ln 2) and |r| <= ln(2) / 2. ln 2 is split into a part
// with few mantissa bits and a small remainder (Cody and Waite), so x - k ln 2 loses almost no
// bits. exp(r) is a degree-6 polynomial whose coefficients are those of the Cephes library's expf
// (the same constants appear in Eigen's SSE exp).
const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
const EXP_P0: f32 = 1.9875691500e-4;
const EXP_P1: f32 = 1.3981999507e-3;
const EXP_P2: f32 = 8.3334519073e-3;
const EXP_P3: f32 = 4.1665795894e-2;
const EXP_P4: f32 = 1.6666665459e-1;
const EXP_P5: f32 = 5.0000001201e-1;
// exp overflows f32 above EXP_HI. Below EXP_LO the result would be subnormal, and this returns 0
// there, as the subnormal range is never significant next to the max-shifted softmax terms.
const EXP_HI: f32 = 88.7228391;
const EXP_LO: f32 = -87.3365448;

/**
 * Returns exp(x) per lane with a relative error below 1e-6 (the softmax kernel tests check it).
 * Gives 0 for x < -87.34 (and -inf), +inf for x > 88.72, and NaN for NaN.
 */
@inline
export function expF32x4(x: v128): v128 {
  // pmax and pmin are single instructions, unlike max and min with their NaN rules. A NaN x
  // passes through them, and the last line returns it.
  const clamped = f32x4.pmin(f32x4.pmax(x, f32x4.splat(EXP_LO)), f32x4.splat(EXP_HI));
  const k = f32x4.nearest(f32x4.mul(clamped, f32x4.splat(LOG2E)));
  let r = f32x4.sub(clamped, f32x4.mul(k, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(LN2_LO)));
  let p = f32x4.splat(EXP_P0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P4));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P5));
  const r2 = f32x4.mul(r, r);
  const e = f32x4.add(f32x4.add(f32x4.mul(p, r2), r), f32x4.splat(1));
  // 2^k built in the exponent field; k is in [-126, 128] after the clamp, so split it in two
  // halves to keep both powers normal.
  const ki = i32x4.trunc_sat_f32x4_s(k);
  const k1 = i32x4.shr_s(ki, 1);
  const k2 = i32x4.sub(ki, k1);
  const bias = i32x4.splat(127);
  const pow1 = i32x4.shl(i32x4.add(k1, bias), 23);
  const pow2 = i32x4.shl(i32x4.add(k2, bias), 23);
  let y = f32x4.mul(f32x4.mul(e, pow1), pow2);
  y = v128.and(y, f32x4.ge(x, f32x4.splat(EXP_LO)));
  y = v128.bitselect(f32x4.splat(<f32>Infinity), y, f32x4.gt(x, f32x4.splat(EXP_HI)));
  return v128.bitselect(x, y, f32x4.ne(x, x));
}

/** Returns exp(x) computed exactly as one lane of expF32x4, so tails match vector bodies. */
@inline
export function expF32(x: f32): f32 {
  return f32x4.extract_lane(expF32x4(f32x4.splat(x)), 0);
}

/** Returns the largest of n f32 values at p (-inf when n is 0). NaN values may be skipped. */
export function rowMaxF32(p: usize, n: i32): f32 {
  let vm = f32x4.splat(<f32>-Infinity);
  let i = 0;
  // pmax is one instruction; max would add NaN handling to every step.
  for (; i + 4 <= n; i += 4) vm = f32x4.pmax(vm, v128.load(p + ((<usize>i) << 2)));
  let m = hmax(vm);
  for (; i < n; i++) m = max(m, load<f32>(p + ((<usize>i) << 2)));
  return m;
}

/** out[i] = exp(x[i] - shift) for n values and returns their sum. out may alias x. */
export function expShiftSumF32(x: usize, out: usize, n: i32, shift: f32): f32 {
  const vs = f32x4.splat(shift);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const e = expF32x4(f32x4.sub(v128.load(x + o), vs));
    v128.store(out + o, e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const e = expF32(load<f32>(x + o) - shift);
    store<f32>(out + o, e);
    sum += e;
  }
  return sum;
}

/** Returns the sum of exp(x[i] - shift) over n values without storing them. */
export function sumExpShiftF32(x: usize, n: i32, shift: f32): f32 {
  const vs = f32x4.splat(shift);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc = f32x4.add(acc, expF32x4(f32x4.sub(v128.load(x + ((<usize>i) << 2)), vs)));
  }
  let sum = hsum(acc);
  for (; i < n; i++) sum += expF32(load<f32>(x + ((<usize>i) << 2)) - shift);
  return sum;
}

// Activations and their gradients: GELU (tanh and erf forms), SiLU and SwiGLU. Each element is
// computed independently, so results are bitwise independent of the thread count.
import { partStart, partEnd } from "./split";

const LOG2E: f32 = 1.4426950408889634;
// ln 2 split in two so that n * LN2_HI is exact for the |n| <= 128 used here.
const LN2_HI: f32 = 0.693145751953125;
const LN2_LO: f32 = 1.428606765330187e-6;
// Beyond these inputs exp(x) overflows to infinity or falls below the smallest normal f32.
const EXP_MAX: f32 = 88.72283;
const EXP_MIN: f32 = -87.33654;

/**
 * exp of each lane: x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-7 Taylor polynomial
 * (truncation error below 3e-9 relative), then 2^n from the exponent bits. Overflows to
 * infinity, flushes results below 2^-126 to 0, and propagates NaN.
 */
@inline
function expV(x: v128): v128 {
  // pmax/pmin compile to single instructions, and with x as the first operand they pass NaN through.
  const xc = f32x4.pmin(f32x4.pmax(x, f32x4.splat(EXP_MIN)), f32x4.splat(EXP_MAX));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(LOG2E)));
  const r = f32x4.sub(
    f32x4.sub(xc, f32x4.mul(n, f32x4.splat(LN2_HI))),
    f32x4.mul(n, f32x4.splat(LN2_LO)),
  );
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  // 2^n in two factors, because n = 128 (inputs near EXP_MAX) has no f32 bit pattern.
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const half = i32x4.shr_s(ni, 1);
  const scale1 = i32x4.shl(i32x4.add(half, i32x4.splat(127)), 23);
  const scale2 = i32x4.shl(i32x4.add(i32x4.sub(ni, half), i32x4.splat(127)), 23);
  let y = f32x4.mul(f32x4.mul(p, scale1), scale2);
  y = v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(EXP_MAX)));
  y = v128.bitselect(f32x4.splat(0), y, f32x4.lt(x, f32x4.splat(EXP_MIN)));
  return y;
}

/** Returns 1 / (1 + exp(-z)) per lane: 0 and 1 at the extremes, never NaN for finite z. */
@inline
function sigmoidV(z: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.div(one, f32x4.add(one, expV(f32x4.neg(z))));
}

@inline
function sigmoidS(z: f32): f32 {
  return f32x4.extract_lane(sigmoidV(f32x4.splat(z)), 0);
}

// GELU tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). Since
// 1 + tanh(u) = 2 sigmoid(2u), it is computed as x * sigmoid(2u), which avoids the cancellation
// in 1 + tanh(u) for negative x.
const GELU_K: f32 = 0.7978845608028654; // sqrt(2 / pi)
const GELU_C: f32 = 0.044715;

@inline
function geluTanhV(x: v128): v128 {
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  const u = f32x4.mul(f32x4.splat(GELU_K), f32x4.add(x, f32x4.mul(f32x4.splat(GELU_C), x3)));
  return f32x4.mul(x, sigmoidV(f32x4.add(u, u)));
}

// d/dx [x s(2u)] = s + x * s * (1 - s) * 2 u'(x), u' = k (1 + 3c x^2). Beyond |x| = 10 the
// result is 1 or 0 to f32 precision, and clamping there keeps x^2 from overflowing into
// inf * 0 = NaN.
@inline
function geluTanhGradV(x: v128): v128 {
  const xc = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-10)), f32x4.splat(10));
  const x2 = f32x4.mul(xc, xc);
  const u = f32x4.mul(f32x4.splat(GELU_K), f32x4.add(xc, f32x4.mul(f32x4.splat(GELU_C), f32x4.mul(x2, xc))));
  const s = sigmoidV(f32x4.add(u, u));
  const du = f32x4.mul(f32x4.splat(2 * GELU_K), f32x4.add(f32x4.splat(1), f32x4.mul(f32x4.splat(3 * GELU_C), x2)));
  const ds = f32x4.mul(s, f32x4.sub(f32x4.splat(1), s));
  const grad = f32x4.add(s, f32x4.mul(f32x4.mul(xc, ds), du));
  // NaN inputs stay NaN: the clamp above would have turned them into a finite value.
  return v128.bitselect(x, grad, f32x4.ne(x, x));
}

@inline
function siluV(x: v128): v128 {
  return f32x4.mul(x, sigmoidV(x));
}

// d/dx [x s(x)] = s + x s (1 - s) = s (1 + x (1 - s)); s (1 - s) is 0 at both extremes.
@inline
function siluGradV(x: v128): v128 {
  const s = sigmoidV(x);
  return f32x4.mul(s, f32x4.add(f32x4.splat(1), f32x4.mul(x, f32x4.sub(f32x4.splat(1), s))));
}

// Unary elementwise loop; `kind` is a literal at each call site. The tail reuses the vector
// code on one lane so that every element gets the same arithmetic.
@inline
function unaryApply(kind: i32, x: v128): v128 {
  if (kind == 0) return geluTanhV(x);
  if (kind == 1) return siluV(x);
  if (kind == 2) return geluTanhGradV(x);
  if (kind == 3) return siluGradV(x);
  if (kind == 4) return geluErfV(x);
  return geluErfGradV(x);
}

@inline
function unaryLoop(kind: i32, x: usize, out: usize, g: usize, n: i32, tid: i32, nt: i32): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    let y = unaryApply(kind, v128.load(x + o));
    if (g) y = f32x4.mul(y, v128.load(g + o));
    v128.store(out + o, y);
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    let y = f32x4.extract_lane(unaryApply(kind, f32x4.splat(load<f32>(x + o))), 0);
    if (g) y *= load<f32>(g + o);
    store<f32>(out + o, y);
  }
}

/** out = gelu_tanh(x) over n f32 elements. */
export function geluTanhF32(x: usize, out: usize, n: i32, tid: i32, nt: i32): void {
  unaryLoop(0, x, out, 0, n, tid, nt);
}

/** dx = g * gelu_tanh'(x). */
export function geluTanhBackwardF32(x: usize, g: usize, dx: usize, n: i32, tid: i32, nt: i32): void {
  unaryLoop(2, x, dx, g, n, tid, nt);
}

/** out = silu(x) = x * sigmoid(x). */
export function siluF32(x: usize, out: usize, n: i32, tid: i32, nt: i32): void {
  unaryLoop(1, x, out, 0, n, tid, nt);
}

/** dx = g * silu'(x). */
export function siluBackwardF32(x: usize, g: usize, dx: usize, n: i32, tid: i32, nt: i32): void {
  unaryLoop(3, x, dx, g, n, tid, nt);
}

/** out = silu(gate) * up, all [n]. */
export function swigluF32(gate: usize, up: usize, out: usize, n: i32, tid: i32, nt: i32): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(out + o, f32x4.mul(siluV(v128.load(gate + o)), v128.load(up + o)));
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    const a = f32x4.extract_lane(siluV(f32x4.splat(load<f32>(gate + o))), 0);
    store<f32>(out + o, a * load<f32>(up + o));
  }
}

/**
 * SwiGLU gradients: dgate = g * up * silu'(gate) and dup = g * silu(gate). Pass 0 for an
 * output that is not needed.
 */
export function swigluBackwardF32(
  gate: usize,
  up: usize,
  g: usize,
  dgate: usize,
  dup: usize,
  n: i32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    const a = v128.load(gate + o);
    const gv = v128.load(g + o);
    if (dgate) v128.store(dgate + o, f32x4.mul(f32x4.mul(gv, v128.load(up + o)), siluGradV(a)));
    if (dup) v128.store(dup + o, f32x4.mul(gv, siluV(a)));
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    const a = f32x4.splat(load<f32>(gate + o));
    const gv = load<f32>(g + o);
    if (dgate) {
      const d = f32x4.extract_lane(siluGradV(a), 0);
      store<f32>(dgate + o, gv * load<f32>(up + o) * d);
    }
    if (dup) store<f32>(dup + o, gv * f32x4.extract_lane(siluV(a), 0));
  }
}

// GELU erf form: x * Phi(x) with Phi the standard normal CDF. erfc comes from a rational
// Chebyshev fit, erfc(z) = t exp(-z^2 + P(t)) with t = 1 / (1 + z/2) and fractional error
// below 1.2e-7 for z >= 0 (Press et al., Numerical Recipes, 2nd ed., section 6.2), evaluated
// here in f32. Using the upper tail for both signs keeps the relative precision of the lower
// tail, where x * Phi(x) is tiny.
@inline
function erfcPositiveV(z: v128): v128 {
  const t = f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), f32x4.mul(f32x4.splat(0.5), z)));
  let p = f32x4.splat(0.17087277);
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-0.82215223));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.48851587));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.13520398));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.27886807));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-0.18628806));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.09678418));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(0.37409196));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(1.00002368));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(-1.26551223));
  return f32x4.mul(t, expV(f32x4.sub(p, f32x4.mul(z, z))));
}

/** Returns Phi(x) = 0.5 erfc(-x / sqrt 2) per lane. */
@inline
function normalCdfV(x: v128): v128 {
  const z = f32x4.mul(f32x4.abs(x), f32x4.splat(0.7071067811865476));
  const tail = f32x4.mul(f32x4.splat(0.5), erfcPositiveV(z));
  return v128.bitselect(f32x4.sub(f32x4.splat(1), tail), tail, f32x4.ge(x, f32x4.splat(0)));
}

@inline
function geluErfV(x: v128): v128 {
  return f32x4.mul(x, normalCdfV(x));
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi). phi reaches 0 (also
// when x^2 overflows) long before x * phi could overflow, so large |x| gives 1 or 0, not NaN.
@inline
function geluErfGradV(x: v128): v128 {
  const density = f32x4.mul(
    expV(f32x4.mul(f32x4.splat(-0.5), f32x4.mul(x, x))),
    f32x4.splat(0.3989422804014327),
  );
  return f32x4.add(normalCdfV(x), f32x4.mul(x, density));
}

/** out = x * Phi(x) (GELU with approximate = "none"). */
export function geluErfF32(x: usize, out: usize, n: i32, tid: i32, nt: i32): void {
  unaryLoop(4, x, out, 0, n, tid, nt);
}

/** dx = g * (Phi(x) + x * phi(x)), phi the standard normal density. */
export function geluErfBackwardF32(x: usize, g: usize, dx: usize, n: i32, tid: i32, nt: i32): void {
  unaryLoop(5, x, dx, g, n, tid, nt);
}

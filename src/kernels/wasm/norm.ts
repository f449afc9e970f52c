// RMSNorm and LayerNorm over the last dimension of [rows, c] f32 arrays, forward and backward.
// Row kernels are split by rows and the weight gradients by columns, so every output is
// computed in the same order on any number of threads (bitwise thread-count independent).
import { partStart, partEnd } from "./split";

@inline
function hsum(v: v128): f32 {
  return (
    f32x4.extract_lane(v, 0) +
    f32x4.extract_lane(v, 1) +
    (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
  );
}

/** Returns the sum over c elements of x[j] * y[j] (f32 in four lanes, then the tail). */
@inline
function dot(x: usize, y: usize, c: i32): f32 {
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= c; j += 4) {
    const o = (<usize>j) << 2;
    acc = f32x4.add(acc, f32x4.mul(v128.load(x + o), v128.load(y + o)));
  }
  let s = hsum(acc);
  for (; j < c; j++) {
    const o = (<usize>j) << 2;
    s += load<f32>(x + o) * load<f32>(y + o);
  }
  return s;
}

/**
 * RMSNorm as in Llama: out = (x * rstd) * w with rstd = 1 / sqrt(mean(x^2) + eps) per row.
 * x, out [rows, c]; w [c]; rstd [rows] receives each row's factor for the backward pass.
 */
export function rmsNormF32(
  x: usize,
  w: usize,
  out: usize,
  rstd: usize,
  rows: i32,
  c: i32,
  eps: f64,
  tid: i32,
  nt: i32,
): void {
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>c) << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rowBytes;
    const yr = out + <usize>r * rowBytes;
    const ms = dot(xr, xr, c) / <f32>c;
    const s: f32 = 1 / Mathf.sqrt(ms + <f32>eps);
    store<f32>(rstd + ((<usize>r) << 2), s);
    const sv = f32x4.splat(s);
    let j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      v128.store(yr + o, f32x4.mul(f32x4.mul(v128.load(xr + o), sv), v128.load(w + o)));
    }
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      store<f32>(yr + o, load<f32>(xr + o) * s * load<f32>(w + o));
    }
  }
}

/**
 * RMSNorm input gradient: dx = rstd * (g * w) - x * rstd^3 * mean(g * w * x) per row.
 * x, g, dx [rows, c]; w [c]; rstd [rows] from the forward pass.
 */
export function rmsNormBackwardF32(
  x: usize,
  w: usize,
  g: usize,
  rstd: usize,
  dx: usize,
  rows: i32,
  c: i32,
  tid: i32,
  nt: i32,
): void {
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>c) << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rowBytes;
    const gr = g + <usize>r * rowBytes;
    const dr = dx + <usize>r * rowBytes;
    const s = load<f32>(rstd + ((<usize>r) << 2));
    // mean(g * w * x), accumulated like dot().
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      const gw = f32x4.mul(v128.load(gr + o), v128.load(w + o));
      acc = f32x4.add(acc, f32x4.mul(gw, v128.load(xr + o)));
    }
    let d = hsum(acc);
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      d += load<f32>(gr + o) * load<f32>(w + o) * load<f32>(xr + o);
    }
    const k: f32 = (d / <f32>c) * s * s * s;
    const sv = f32x4.splat(s);
    const kv = f32x4.splat(k);
    j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      const gw = f32x4.mul(v128.load(gr + o), v128.load(w + o));
      v128.store(dr + o, f32x4.sub(f32x4.mul(gw, sv), f32x4.mul(v128.load(xr + o), kv)));
    }
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      const gw = load<f32>(gr + o) * load<f32>(w + o);
      store<f32>(dr + o, gw * s - load<f32>(xr + o) * k);
    }
  }
}

/** Returns lanes 2 and 3 of an f32x4 in lanes 0 and 1, ready for f64x2.promote_low_f32x4. */
@inline
function highHalf(v: v128): v128 {
  return v128.shuffle<f32>(v, v, 2, 3, 0, 1);
}

/** Stores four f64 sums (lo: lanes 0-1, hi: lanes 2-3) as four f32 values at p. */
@inline
function storeDemoted(p: usize, lo: v128, hi: v128): void {
  v128.store(p, v128.shuffle<i64>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2));
}

/**
 * Normalisation weight gradients: dw[j] = sum over rows of g * xhat and, when db != 0,
 * db[j] = sum over rows of g, with xhat = (x - mean[r]) * rstd[r]. Pass mean = 0 for RMSNorm.
 * Each product is formed in f32 and summed in f64 in row order. Split by columns; each pass
 * over the rows covers 8 columns, so a row's cache line is read once per pass rather than once
 * per column.
 */
export function normParamGradF32(
  x: usize,
  g: usize,
  mean: usize,
  rstd: usize,
  dw: usize,
  db: usize,
  rows: i32,
  c: i32,
  tid: i32,
  nt: i32,
): void {
  const j0 = partStart(c, 8, tid, nt);
  const j1 = partEnd(c, 8, tid, nt);
  const rowBytes = (<usize>c) << 2;
  let j = j0;
  for (; j + 8 <= j1; j += 8) {
    let w0 = f64x2.splat(0);
    let w1 = f64x2.splat(0);
    let w2 = f64x2.splat(0);
    let w3 = f64x2.splat(0);
    let b0 = f64x2.splat(0);
    let b1 = f64x2.splat(0);
    let b2 = f64x2.splat(0);
    let b3 = f64x2.splat(0);
    let o = (<usize>j) << 2;
    for (let r = 0; r < rows; r++) {
      const mu = f32x4.splat(mean ? load<f32>(mean + ((<usize>r) << 2)) : 0);
      const s = f32x4.splat(load<f32>(rstd + ((<usize>r) << 2)));
      const g0 = v128.load(g + o);
      const g1 = v128.load(g + o + 16);
      const p0 = f32x4.mul(g0, f32x4.mul(f32x4.sub(v128.load(x + o), mu), s));
      const p1 = f32x4.mul(g1, f32x4.mul(f32x4.sub(v128.load(x + o + 16), mu), s));
      w0 = f64x2.add(w0, f64x2.promote_low_f32x4(p0));
      w1 = f64x2.add(w1, f64x2.promote_low_f32x4(highHalf(p0)));
      w2 = f64x2.add(w2, f64x2.promote_low_f32x4(p1));
      w3 = f64x2.add(w3, f64x2.promote_low_f32x4(highHalf(p1)));
      if (db) {
        b0 = f64x2.add(b0, f64x2.promote_low_f32x4(g0));
        b1 = f64x2.add(b1, f64x2.promote_low_f32x4(highHalf(g0)));
        b2 = f64x2.add(b2, f64x2.promote_low_f32x4(g1));
        b3 = f64x2.add(b3, f64x2.promote_low_f32x4(highHalf(g1)));
      }
      o += rowBytes;
    }
    const out = (<usize>j) << 2;
    storeDemoted(dw + out, w0, w1);
    storeDemoted(dw + out + 16, w2, w3);
    if (db) {
      storeDemoted(db + out, b0, b1);
      storeDemoted(db + out + 16, b2, b3);
    }
  }
  // The last c % 8 columns, with the same arithmetic one column at a time.
  for (; j < j1; j++) {
    let sw: f64 = 0;
    let sb: f64 = 0;
    for (let r = 0; r < rows; r++) {
      const o = ((<usize>r * <usize>c + <usize>j) << 2);
      const mu: f32 = mean ? load<f32>(mean + ((<usize>r) << 2)) : 0;
      const xhat = (load<f32>(x + o) - mu) * load<f32>(rstd + ((<usize>r) << 2));
      const gv = load<f32>(g + o);
      sw += <f64>(gv * xhat);
      sb += <f64>gv;
    }
    store<f32>(dw + ((<usize>j) << 2), <f32>sw);
    if (db) store<f32>(db + ((<usize>j) << 2), <f32>sb);
  }
}

/**
 * LayerNorm: out = (x - mean) * rstd * w + b with the biased variance, rstd = 1/sqrt(var + eps).
 * x, out [rows, c]; w [c]; b [c] or 0 for no bias; mean, rstd [rows] are saved for backward.
 */
export function layerNormF32(
  x: usize,
  w: usize,
  b: usize,
  out: usize,
  mean: usize,
  rstd: usize,
  rows: i32,
  c: i32,
  eps: f64,
  tid: i32,
  nt: i32,
): void {
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>c) << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rowBytes;
    const yr = out + <usize>r * rowBytes;
    // Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= c; j += 4) acc = f32x4.add(acc, v128.load(xr + ((<usize>j) << 2)));
    let sum = hsum(acc);
    for (; j < c; j++) sum += load<f32>(xr + ((<usize>j) << 2));
    const mu: f32 = sum / <f32>c;
    const muv = f32x4.splat(mu);
    acc = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= c; j += 4) {
      const d = f32x4.sub(v128.load(xr + ((<usize>j) << 2)), muv);
      acc = f32x4.add(acc, f32x4.mul(d, d));
    }
    let sq = hsum(acc);
    for (; j < c; j++) {
      const d = load<f32>(xr + ((<usize>j) << 2)) - mu;
      sq += d * d;
    }
    const s: f32 = 1 / Mathf.sqrt(sq / <f32>c + <f32>eps);
    store<f32>(mean + ((<usize>r) << 2), mu);
    store<f32>(rstd + ((<usize>r) << 2), s);
    const sv = f32x4.splat(s);
    j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      let y = f32x4.mul(f32x4.mul(f32x4.sub(v128.load(xr + o), muv), sv), v128.load(w + o));
      if (b) y = f32x4.add(y, v128.load(b + o));
      v128.store(yr + o, y);
    }
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      let y = (load<f32>(xr + o) - mu) * s * load<f32>(w + o);
      if (b) y += load<f32>(b + o);
      store<f32>(yr + o, y);
    }
  }
}

/**
 * LayerNorm input gradient: with xhat = (x - mean) * rstd and dxhat = g * w,
 * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) per row.
 */
export function layerNormBackwardF32(
  x: usize,
  w: usize,
  g: usize,
  mean: usize,
  rstd: usize,
  dx: usize,
  rows: i32,
  c: i32,
  tid: i32,
  nt: i32,
): void {
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>c) << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rowBytes;
    const gr = g + <usize>r * rowBytes;
    const dr = dx + <usize>r * rowBytes;
    const mu = load<f32>(mean + ((<usize>r) << 2));
    const s = load<f32>(rstd + ((<usize>r) << 2));
    const muv = f32x4.splat(mu);
    const sv = f32x4.splat(s);
    let accD = f32x4.splat(0);
    let accDX = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      const xhat = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), sv);
      const dxhat = f32x4.mul(v128.load(gr + o), v128.load(w + o));
      accD = f32x4.add(accD, dxhat);
      accDX = f32x4.add(accDX, f32x4.mul(dxhat, xhat));
    }
    let sumD = hsum(accD);
    let sumDX = hsum(accDX);
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      const xhat = (load<f32>(xr + o) - mu) * s;
      const dxhat = load<f32>(gr + o) * load<f32>(w + o);
      sumD += dxhat;
      sumDX += dxhat * xhat;
    }
    const meanD: f32 = sumD / <f32>c;
    const meanDX: f32 = sumDX / <f32>c;
    const mdv = f32x4.splat(meanD);
    const mdxv = f32x4.splat(meanDX);
    j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      const xhat = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), sv);
      const dxhat = f32x4.mul(v128.load(gr + o), v128.load(w + o));
      const inner = f32x4.sub(f32x4.sub(dxhat, mdv), f32x4.mul(xhat, mdxv));
      v128.store(dr + o, f32x4.mul(inner, sv));
    }
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      const xhat = (load<f32>(xr + o) - mu) * s;
      const dxhat = load<f32>(gr + o) * load<f32>(w + o);
      store<f32>(dr + o, (dxhat - meanD - xhat * meanDX) * s);
    }
  }
}

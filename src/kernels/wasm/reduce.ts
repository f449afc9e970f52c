// Sum reductions over f32 arrays, accumulated in f64. Work is split by output element (or by
// fixed-size block for full sums), and each output is summed in the same order on any number of
// threads, so the results are bitwise independent of the thread count.
import { partStart, partEnd } from "./split";

/** Elements per partial sum of sumBlocksF32; bindings/reduce.ts uses the same value. */
const SUM_BLOCK = 4096;

/**
 * partials[k] (f64) = sum over block k of a[i] (square = 0) or a[i]^2 (square = 1), where block
 * k covers elements [k * 4096, min(n, (k + 1) * 4096)). Split by blocks.
 */
export function sumBlocksF32(
  a: usize,
  n: i32,
  partials: usize,
  square: i32,
  tid: i32,
  nt: i32,
): void {
  const blocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
  const k0 = partStart(blocks, 1, tid, nt);
  const k1 = partEnd(blocks, 1, tid, nt);
  for (let k = k0; k < k1; k++) {
    const start = k * SUM_BLOCK;
    const end = min(n, start + SUM_BLOCK);
    let acc0 = f64x2.splat(0);
    let acc1 = f64x2.splat(0);
    let i = start;
    for (; i + 4 <= end; i += 4) {
      let x = v128.load(a + ((<usize>i) << 2));
      if (square) x = f32x4.mul(x, x);
      acc0 = f64x2.add(acc0, f64x2.promote_low_f32x4(x));
      acc1 = f64x2.add(acc1, f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1)));
    }
    const both = f64x2.add(acc0, acc1);
    let s = f64x2.extract_lane(both, 0) + f64x2.extract_lane(both, 1);
    for (; i < end; i++) {
      const x = <f64>load<f32>(a + ((<usize>i) << 2));
      s += square ? x * x : x;
    }
    store<f64>(partials + ((<usize>k) << 3), s);
  }
}

@inline
function highHalf(v: v128): v128 {
  return v128.shuffle<f32>(v, v, 2, 3, 0, 1);
}

@inline
function storeDemoted(p: usize, lo: v128, hi: v128): void {
  v128.store(p, v128.shuffle<i64>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2));
}

/**
 * out[j] = sum over r of g[r, j] for g [rows, c], in f64 and row order. Split by columns; each
 * pass over the rows covers 8 columns so that every cache line of a row is read once per pass.
 */
export function colSumF32(g: usize, rows: i32, c: i32, out: usize, tid: i32, nt: i32): void {
  const j0 = partStart(c, 8, tid, nt);
  const j1 = partEnd(c, 8, tid, nt);
  const rowBytes = (<usize>c) << 2;
  let j = j0;
  for (; j + 8 <= j1; j += 8) {
    let s0 = f64x2.splat(0);
    let s1 = f64x2.splat(0);
    let s2 = f64x2.splat(0);
    let s3 = f64x2.splat(0);
    let p = g + ((<usize>j) << 2);
    for (let r = 0; r < rows; r++) {
      const a = v128.load(p);
      const b = v128.load(p + 16);
      s0 = f64x2.add(s0, f64x2.promote_low_f32x4(a));
      s1 = f64x2.add(s1, f64x2.promote_low_f32x4(highHalf(a)));
      s2 = f64x2.add(s2, f64x2.promote_low_f32x4(b));
      s3 = f64x2.add(s3, f64x2.promote_low_f32x4(highHalf(b)));
      p += rowBytes;
    }
    storeDemoted(out + ((<usize>j) << 2), s0, s1);
    storeDemoted(out + ((<usize>j) << 2) + 16, s2, s3);
  }
  for (; j < j1; j++) {
    let s: f64 = 0;
    let p = g + ((<usize>j) << 2);
    for (let r = 0; r < rows; r++) {
      s += <f64>load<f32>(p);
      p += rowBytes;
    }
    store<f32>(out + ((<usize>j) << 2), <f32>s);
  }
}

/**
 * Sums a gradient over its broadcast dimensions (the general case): out[o] = sum over the reduced
 * multi-index r of g[base(o) + r . redStride]. `meta` points to i32 values: nk, keptShape[nk],
 * keptStride[nk], nr, redShape[nr], redStride[nr] (strides into g in elements).
 * Split by outputs.
 */
export function reduceStridedF32(
  g: usize,
  out: usize,
  nOut: i32,
  meta: usize,
  tid: i32,
  nt: i32,
): void {
  const o0 = partStart(nOut, 1, tid, nt);
  const o1 = partEnd(nOut, 1, tid, nt);
  const nk = load<i32>(meta);
  const keptShape = meta + 4;
  const keptStride = keptShape + ((<usize>nk) << 2);
  const redMeta = keptStride + ((<usize>nk) << 2);
  const nr = load<i32>(redMeta);
  const redShape = redMeta + 4;
  const redStride = redShape + ((<usize>nr) << 2);
  let redCount = 1;
  for (let d = 0; d < nr; d++) redCount *= load<i32>(redShape + ((<usize>d) << 2));
  const innerDim = load<i32>(redShape + ((<usize>(nr - 1)) << 2));
  const innerStride = load<i32>(redStride + ((<usize>(nr - 1)) << 2));
  const outer = redCount / innerDim;
  for (let o = o0; o < o1; o++) {
    // Offset of this output's first element in g.
    let rest = o;
    let base = 0;
    for (let d = nk - 1; d >= 0; d--) {
      const dim = load<i32>(keptShape + ((<usize>d) << 2));
      base += (rest % dim) * load<i32>(keptStride + ((<usize>d) << 2));
      rest /= dim;
    }
    let s: f64 = 0;
    for (let q = 0; q < outer; q++) {
      // Offset of reduced row q: decode it over the reduced dimensions except the innermost.
      let rq = q;
      let off = base;
      for (let d = nr - 2; d >= 0; d--) {
        const dim = load<i32>(redShape + ((<usize>d) << 2));
        off += (rq % dim) * load<i32>(redStride + ((<usize>d) << 2));
        rq /= dim;
      }
      for (let k = 0; k < innerDim; k++) {
        s += <f64>load<f32>(g + ((<usize>off) << 2));
        off += innerStride;
      }
    }
    store<f32>(out + ((<usize>o) << 2), <f32>s);
  }
}

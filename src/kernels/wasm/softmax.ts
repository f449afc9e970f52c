// Row-wise softmax over contiguous f32 rows, forward and backward. Threads split the rows, and
// each row is computed the same way on any thread, so results do not depend on the thread count.
import { partEnd, partStart } from "./split";
import { expShiftSumF32, hsum, rowMaxF32 } from "./simdmath";

/** out[i] = x[i] / d for n values. out may alias x. */
function divideF32(x: usize, out: usize, n: i32, d: f32): void {
  const vd = f32x4.splat(d);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(out + o, f32x4.div(v128.load(x + o), vd));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    store<f32>(out + o, load<f32>(x + o) / d);
  }
}

/**
 * out = softmax(x) over each of `rows` rows of `cols` f32 values. x, out: f32 offsets; out may
 * alias x. A row of all -inf gives NaN, as in torch.
 */
export function softmaxF32(x: usize, out: usize, rows: i32, cols: i32, tid: i32, nt: i32): void {
  const start = partStart(rows, 1, tid, nt);
  const end = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>cols) << 2;
  for (let r = start; r < end; r++) {
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * rowBytes;
    const m = rowMaxF32(xr, cols);
    const sum = expShiftSumF32(xr, or, cols, m);
    divideF32(or, or, cols, sum);
  }
}

/**
 * dx = y * (dy - sum(dy * y)) per row: the softmax backward from its output y. y, dy, dx: f32
 * offsets of `rows` rows of `cols` values; dx may alias dy.
 */
export function softmaxBackwardF32(
  y: usize,
  dy: usize,
  dx: usize,
  rows: i32,
  cols: i32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(rows, 1, tid, nt);
  const end = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>cols) << 2;
  for (let r = start; r < end; r++) {
    const yr = y + <usize>r * rowBytes;
    const dyr = dy + <usize>r * rowBytes;
    const dxr = dx + <usize>r * rowBytes;
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = (<usize>i) << 2;
      acc = f32x4.add(acc, f32x4.mul(v128.load(yr + o), v128.load(dyr + o)));
    }
    let dot = hsum(acc);
    for (; i < cols; i++) {
      const o = (<usize>i) << 2;
      dot += load<f32>(yr + o) * load<f32>(dyr + o);
    }
    const vdot = f32x4.splat(dot);
    i = 0;
    for (; i + 4 <= cols; i += 4) {
      const o = (<usize>i) << 2;
      const yv = v128.load(yr + o);
      v128.store(dxr + o, f32x4.mul(yv, f32x4.sub(v128.load(dyr + o), vdot)));
    }
    for (; i < cols; i++) {
      const o = (<usize>i) << 2;
      store<f32>(dxr + o, load<f32>(yr + o) * (load<f32>(dyr + o) - dot));
    }
  }
}

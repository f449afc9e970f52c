// Elementwise kernels over f32 arrays, with the broadcasting patterns the ops layer needs.
// Every thread writes a disjoint range of the output and each element is computed by the same
// instructions whatever the split, so results are bitwise independent of the thread count.
import { partStart, partEnd } from "./split";

// Binary operation codes shared with bindings/elementwise.ts.
const OP_ADD = 0;
const OP_SUB = 1;
const OP_MUL = 2;
// b - a: lets a row or scalar operand stand on the left of a subtraction.
const OP_RSUB = 3;

@inline
function vop(op: i32, x: v128, y: v128): v128 {
  if (op == OP_ADD) return f32x4.add(x, y);
  if (op == OP_SUB) return f32x4.sub(x, y);
  if (op == OP_MUL) return f32x4.mul(x, y);
  return f32x4.sub(y, x);
}

@inline
function sop(op: i32, x: f32, y: f32): f32 {
  if (op == OP_ADD) return x + y;
  if (op == OP_SUB) return x - y;
  if (op == OP_MUL) return x * y;
  return y - x;
}

// `op` is a literal at every call site, so after inlining the optimizer drops the branches.
@inline
function sameLoop(op: i32, a: usize, b: usize, out: usize, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(out + o, vop(op, v128.load(a + o), v128.load(b + o)));
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    store<f32>(out + o, sop(op, load<f32>(a + o), load<f32>(b + o)));
  }
}

/** out[i] = a[i] + b[i] for i in [0, n). a, b, out: f32 offsets; out may alias a or b. */
export function addF32(a: usize, b: usize, out: usize, n: i32, tid: i32, nt: i32): void {
  sameLoop(OP_ADD, a, b, out, partStart(n, 16, tid, nt), partEnd(n, 16, tid, nt));
}

/** out[i] = a[i] op b[i] for i in [0, n); op: 0 add, 1 sub, 2 mul, 3 reversed sub (b - a). */
export function binarySameF32(
  op: i32,
  a: usize,
  b: usize,
  out: usize,
  n: i32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  if (op == OP_ADD) sameLoop(OP_ADD, a, b, out, start, end);
  else if (op == OP_SUB) sameLoop(OP_SUB, a, b, out, start, end);
  else if (op == OP_MUL) sameLoop(OP_MUL, a, b, out, start, end);
  else sameLoop(OP_RSUB, a, b, out, start, end);
}

@inline
function rowLoop(op: i32, a: usize, b: usize, out: usize, c: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const base = (<usize>r * <usize>c) << 2;
    let j = 0;
    for (; j + 4 <= c; j += 4) {
      const o = (<usize>j) << 2;
      v128.store(out + base + o, vop(op, v128.load(a + base + o), v128.load(b + o)));
    }
    for (; j < c; j++) {
      const o = (<usize>j) << 2;
      store<f32>(out + base + o, sop(op, load<f32>(a + base + o), load<f32>(b + o)));
    }
  }
}

/**
 * out[r, j] = a[r, j] op b[j]: a and out are [rows, c], b is one row [c] repeated.
 * op as in binarySameF32 (3 gives b[j] - a[r, j]). Split by rows.
 */
export function binaryRowF32(
  op: i32,
  a: usize,
  b: usize,
  out: usize,
  rows: i32,
  c: i32,
  tid: i32,
  nt: i32,
): void {
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  if (op == OP_ADD) rowLoop(OP_ADD, a, b, out, c, r0, r1);
  else if (op == OP_SUB) rowLoop(OP_SUB, a, b, out, c, r0, r1);
  else if (op == OP_MUL) rowLoop(OP_MUL, a, b, out, c, r0, r1);
  else rowLoop(OP_RSUB, a, b, out, c, r0, r1);
}

@inline
function scalarLoop(op: i32, a: usize, s: f32, out: usize, start: i32, end: i32): void {
  const sv = f32x4.splat(s);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(out + o, vop(op, v128.load(a + o), sv));
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    store<f32>(out + o, sop(op, load<f32>(a + o), s));
  }
}

/** out[i] = a[i] op s, where s is the f32 stored at offset `scalar`; op as in binarySameF32. */
export function binaryScalarF32(
  op: i32,
  a: usize,
  scalar: usize,
  out: usize,
  n: i32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  const s = load<f32>(scalar);
  if (op == OP_ADD) scalarLoop(OP_ADD, a, s, out, start, end);
  else if (op == OP_SUB) scalarLoop(OP_SUB, a, s, out, start, end);
  else if (op == OP_MUL) scalarLoop(OP_MUL, a, s, out, start, end);
  else scalarLoop(OP_RSUB, a, s, out, start, end);
}

/** out[i] = a[i] * s. The factor is rounded to f32 first, as the f32 op would do. */
export function scaleF32(a: usize, out: usize, n: i32, s: f64, tid: i32, nt: i32): void {
  scalarLoop(OP_MUL, a, <f32>s, out, partStart(n, 16, tid, nt), partEnd(n, 16, tid, nt));
}

// One row of the strided path: out[k] = a[k * sa] op b[k * sb] for k in [0, len), with SIMD
// loops for the contiguous and broadcast (stride 0) cases.
@inline
function stridedRow(
  op: i32,
  a: usize,
  sa: i32,
  b: usize,
  sb: i32,
  out: usize,
  len: i32,
): void {
  let k = 0;
  if (sa == 1 && sb == 1) {
    for (; k + 4 <= len; k += 4) {
      const o = (<usize>k) << 2;
      v128.store(out + o, vop(op, v128.load(a + o), v128.load(b + o)));
    }
  } else if (sa == 1 && sb == 0) {
    const y = v128.load32_splat(b);
    for (; k + 4 <= len; k += 4) {
      const o = (<usize>k) << 2;
      v128.store(out + o, vop(op, v128.load(a + o), y));
    }
  } else if (sa == 0 && sb == 1) {
    const x = v128.load32_splat(a);
    for (; k + 4 <= len; k += 4) {
      const o = (<usize>k) << 2;
      v128.store(out + o, vop(op, x, v128.load(b + o)));
    }
  }
  for (; k < len; k++) {
    const x = load<f32>(a + ((<usize>(k * sa)) << 2));
    const y = load<f32>(b + ((<usize>(k * sb)) << 2));
    store<f32>(out + ((<usize>k) << 2), sop(op, x, y));
  }
}

/**
 * Computes the general broadcasting case: out[idx] = a[idx . strideA] op b[idx . strideB] over
 * the multi-index idx of the output. `meta` points to i32 values: ndim, shape[ndim],
 * strideA[ndim], strideB[ndim] (strides in elements, 0 on broadcast dimensions). Split by rows
 * of the last dimension.
 */
export function binaryStridedF32(
  op: i32,
  a: usize,
  b: usize,
  out: usize,
  n: i32,
  meta: usize,
  tid: i32,
  nt: i32,
): void {
  const nd = load<i32>(meta);
  const shape = meta + 4;
  const sa = shape + ((<usize>nd) << 2);
  const sb = sa + ((<usize>nd) << 2);
  const last = nd - 1;
  const len = load<i32>(shape + ((<usize>last) << 2));
  if (len == 0) return;
  const lastSa = load<i32>(sa + ((<usize>last) << 2));
  const lastSb = load<i32>(sb + ((<usize>last) << 2));
  const rows = n / len;
  const r0 = partStart(rows, 1, tid, nt);
  const r1 = partEnd(rows, 1, tid, nt);
  for (let r = r0; r < r1; r++) {
    // Offsets of this row's first element, from its index over the leading dimensions.
    let rest = r;
    let offA = 0;
    let offB = 0;
    for (let d = last - 1; d >= 0; d--) {
      const dim = load<i32>(shape + ((<usize>d) << 2));
      const k = rest % dim;
      rest /= dim;
      offA += k * load<i32>(sa + ((<usize>d) << 2));
      offB += k * load<i32>(sb + ((<usize>d) << 2));
    }
    const pa = a + ((<usize>offA) << 2);
    const pb = b + ((<usize>offB) << 2);
    const po = out + ((<usize>r * <usize>len) << 2);
    if (op == OP_ADD) stridedRow(OP_ADD, pa, lastSa, pb, lastSb, po, len);
    else if (op == OP_SUB) stridedRow(OP_SUB, pa, lastSa, pb, lastSb, po, len);
    else if (op == OP_MUL) stridedRow(OP_MUL, pa, lastSa, pb, lastSb, po, len);
    else stridedRow(OP_RSUB, pa, lastSa, pb, lastSb, po, len);
  }
}

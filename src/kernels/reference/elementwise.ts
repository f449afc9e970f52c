// Reference elementwise kernels: plain loops, the oracle for the wasm versions. They work on any
// array of numbers, so tests can run them in f64 as well as in f32.

/** A writable array of numbers: Float32Array, Float64Array or number[]. */
export type NumberArray = { [i: number]: number; length: number };

export function addRef(a: ArrayLike<number>, b: ArrayLike<number>, out: NumberArray): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}

export type BinaryOpName = "add" | "sub" | "mul";

function apply(op: BinaryOpName, x: number, y: number): number {
  if (op === "add") return x + y;
  if (op === "sub") return x - y;
  return x * y;
}

/** Returns the row-major strides of `shape` in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/** Returns the numpy broadcast of two shapes (no error checking: tests pass valid shapes). */
export function broadcastShapeRef(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Returns the flat index into an array of `shape` that broadcasts to multi-index `idx`. */
function broadcastIndex(idx: readonly number[], shape: readonly number[]): number {
  const strides = stridesOf(shape);
  const pad = idx.length - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] !== 1) flat += idx[pad + d] * strides[d];
  }
  return flat;
}

function multiIndex(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return idx;
}

/** out = a op b with numpy broadcasting; out has the broadcast shape. */
export function broadcastBinaryRef(
  op: BinaryOpName,
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  out: NumberArray,
): void {
  const shape = broadcastShapeRef(aShape, bShape);
  for (let i = 0; i < out.length; i++) {
    const idx = multiIndex(i, shape);
    out[i] = apply(op, a[broadcastIndex(idx, aShape)], b[broadcastIndex(idx, bShape)]);
  }
}

/** Sums g of shape gShape onto `out` of shape outShape (which broadcasts to gShape). */
export function reduceToShapeRef(
  g: ArrayLike<number>,
  gShape: readonly number[],
  out: NumberArray,
  outShape: readonly number[],
): void {
  for (let i = 0; i < out.length; i++) out[i] = 0;
  for (let i = 0; i < g.length; i++) {
    out[broadcastIndex(multiIndex(i, gShape), outShape)] += g[i];
  }
}

export function scaleRef(a: ArrayLike<number>, s: number, out: NumberArray): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] * s;
}

export function sumRef(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

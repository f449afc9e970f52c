// Numpy broadcasting for the binary ops: the result shape, the kernel plan for the forward pass
// and the reduction that folds a gradient back onto a broadcast input's shape.
import {
  BinaryOp,
  binaryRowF32,
  binaryScalarF32,
  binarySameF32,
  binaryStridedF32,
} from "../../kernels/bindings/elementwise.js";
import { colSumF32, reduceStridedF32, sumF32 } from "../../kernels/bindings/reduce.js";
import { Tensor, formatShape, shapeSize, type Shape } from "../tensor.js";

/** Returns the numpy broadcast of two shapes, or throws an error that names the op and both shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast: dimension ` +
          `${i - n} is ${da} against ${db}; each pair of trailing dimensions must match or be 1`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Returns true when `shape` padded on the left to out's rank equals a suffix of out with ones in front. */
function isRowOf(shape: Shape, out: Shape): boolean {
  const pad = out.length - shape.length;
  let i = 0;
  while (i < shape.length && shape[i] === 1 && out[pad + i] !== 1) i++;
  for (; i < shape.length; i++) if (shape[i] !== out[pad + i]) return false;
  return true;
}

/** Element strides of `shape` seen through the broadcast `out` shape (0 on broadcast dimensions). */
function broadcastStrides(shape: Shape, out: Shape): number[] {
  const strides = new Array<number>(out.length).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const k = out.length - shape.length + i;
    strides[k] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

/**
 * Merges neighbouring dimensions that every stride list walks contiguously, so that the strided
 * kernels loop over as few dimensions as possible. Returns the merged shape and strides.
 */
function collapseDims(
  shape: Shape,
  strideLists: number[][],
): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strideLists.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    const mergeable =
      last >= 0 && strideLists.every((s, k) => outStrides[k][last] === s[d] * shape[d]);
    if (mergeable) {
      outShape[last] *= shape[d];
      strideLists.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strideLists.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  if (outShape.length === 0) {
    outShape.push(1);
    strideLists.forEach((_, k) => outStrides[k].push(0));
  }
  return { shape: outShape, strides: outStrides };
}

function writeMeta(values: number[]): number {
  const meta = Tensor.from(Int32Array.from(values), [values.length], "i32");
  return meta.offset;
}

/**
 * Computes a op b into a new f32 tensor of the broadcast shape, recording nothing. Equal sizes,
 * a repeated row (for example [N, C] with [C]) and a scalar operand have fast kernels. Any
 * other pair goes through the strided kernel.
 */
export function broadcastBinary(op: string, code: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(shape);
  const n = out.size;
  if (n === 0) return out;
  const swapped = code === BinaryOp.Sub ? BinaryOp.RSub : code;

  if (a.size === n && b.size === n) {
    binarySameF32(code, a.offset, b.offset, out.offset, n);
  } else if (a.size === n && b.size === 1) {
    binaryScalarF32(code, a.offset, b.offset, out.offset, n);
  } else if (b.size === n && a.size === 1) {
    binaryScalarF32(swapped, b.offset, a.offset, out.offset, n);
  } else if (a.size === n && isRowOf(b.shape, shape)) {
    binaryRowF32(code, a.offset, b.offset, out.offset, n / b.size, b.size);
  } else if (b.size === n && isRowOf(a.shape, shape)) {
    binaryRowF32(swapped, b.offset, a.offset, out.offset, n / a.size, a.size);
  } else {
    const merged = collapseDims(shape, [
      broadcastStrides(a.shape, shape),
      broadcastStrides(b.shape, shape),
    ]);
    const meta = writeMeta([
      merged.shape.length,
      ...merged.shape,
      ...merged.strides[0],
      ...merged.strides[1],
    ]);
    binaryStridedF32(code, a.offset, b.offset, out.offset, n, meta);
  }
  return out;
}

/**
 * Sums gradient g (of the broadcast output shape) over the dimensions that broadcasting expanded,
 * giving a new tensor of `shape`. Returns g itself when nothing was expanded.
 */
export function reduceToShape(g: Tensor, shape: Shape): Tensor {
  const n = shapeSize(shape);
  if (n === g.size) return g.view(shape);
  // An empty output broadcast from a non-empty input: every sum is empty.
  if (g.size === 0) return Tensor.zeros(shape);

  const out = Tensor.empty(shape);
  if (n === 1) {
    out.f32()[0] = sumF32(g.offset, g.size);
    return out;
  }
  if (isRowOf(shape, g.shape)) {
    colSumF32(g.offset, g.size / n, n, out.offset);
    return out;
  }

  // General case: the kept dimensions index the output, and the others are summed.
  const gStrides = new Array<number>(g.shape.length);
  let stride = 1;
  for (let d = g.shape.length - 1; d >= 0; d--) {
    gStrides[d] = stride;
    stride *= g.shape[d];
  }
  const pad = g.shape.length - shape.length;
  const keptShape: number[] = [];
  const keptStrides: number[] = [];
  const redShape: number[] = [];
  const redStrides: number[] = [];
  for (let d = 0; d < g.shape.length; d++) {
    const own = d < pad ? 1 : shape[d - pad];
    if (own === g.shape[d]) {
      keptShape.push(g.shape[d]);
      keptStrides.push(gStrides[d]);
    } else {
      redShape.push(g.shape[d]);
      redStrides.push(gStrides[d]);
    }
  }

  const kept = collapseDims(keptShape, [keptStrides]);
  const red = collapseDims(redShape, [redStrides]);
  const meta = writeMeta([
    kept.shape.length,
    ...kept.shape,
    ...kept.strides[0],
    red.shape.length,
    ...red.shape,
    ...red.strides[0],
  ]);
  reduceStridedF32(g.offset, out.offset, n, meta, g.size);
  return out;
}

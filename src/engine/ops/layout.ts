// Layout ops: reshape (a view), transpose, slice and concat (copies). The copies move raw 2- or
// 4-byte elements, so they work for every dtype; gradients flow for f32 tensors.
import { copyRows, transposeSwap } from "../../kernels/bindings/layout.js";
import { record } from "../tape.js";
import { DTYPE_BYTES, Tensor, formatShape, type Shape } from "../tensor.js";

function product(dims: readonly number[]): number {
  let p = 1;
  for (const d of dims) p *= d;
  return p;
}

/** Resolves a possibly negative dimension index, or throws naming the op and the shape. */
function resolveDim(op: string, dim: number, shape: Shape): number {
  const d = dim < 0 ? dim + shape.length : dim;
  if (!Number.isInteger(dim) || d < 0 || d >= shape.length) {
    throw new Error(
      `${op}: dimension ${dim} is out of range for shape ${formatShape(shape)} ` +
        `(expected -${shape.length} to ${shape.length - 1})`,
    );
  }
  return d;
}

/** Returns a view of `a` with another shape of the same size; one entry may be -1. */
export function reshape(a: Tensor, shape: Shape): Tensor {
  a.assertAlive("reshape");
  let out: Tensor;
  try {
    out = a.view(shape);
  } catch {
    throw new Error(
      `reshape: cannot reshape ${formatShape(a.shape)} (${a.size} elements) into ${formatShape(shape)}`,
    );
  }
  return record(out, "reshape", [a], (g) => [g.view(a.shape)], []);
}

function transposeRaw(a: Tensor, d0: number, d1: number): Tensor {
  const lo = Math.min(d0, d1);
  const hi = Math.max(d0, d1);
  const shape = [...a.shape];
  shape[lo] = a.shape[hi];
  shape[hi] = a.shape[lo];
  const out = Tensor.empty(shape, a.dtype);
  const dims = {
    outer: product(a.shape.slice(0, lo)),
    d0: a.shape[lo],
    mid: product(a.shape.slice(lo + 1, hi)),
    d1: a.shape[hi],
    inner: product(a.shape.slice(hi + 1)),
  };
  transposeSwap(a.offset, out.offset, dims, DTYPE_BYTES[a.dtype]);
  return out;
}

/** Returns a contiguous copy of `a` with dimensions dim0 and dim1 swapped. */
export function transpose(a: Tensor, dim0: number, dim1: number): Tensor {
  a.assertAlive("transpose");
  const d0 = resolveDim("transpose", dim0, a.shape);
  const d1 = resolveDim("transpose", dim1, a.shape);
  if (d0 === d1) {
    const out = a.view(a.shape);
    return record(out, "transpose", [a], (g) => [g.view(a.shape)], []);
  }
  const out = transposeRaw(a, d0, d1);
  return record(out, "transpose", [a], (g) => [transposeRaw(g, d0, d1)], []);
}

/** Splits a shape around dimension d into [outer, size, inner] element counts. */
function splitAt(shape: Shape, d: number): { outer: number; size: number; inner: number } {
  return { outer: product(shape.slice(0, d)), size: shape[d], inner: product(shape.slice(d + 1)) };
}

/** Returns a copy of a[..., start:end, ...] along `dim` (end exclusive). */
export function slice(a: Tensor, dim: number, start: number, end: number): Tensor {
  a.assertAlive("slice");
  const d = resolveDim("slice", dim, a.shape);
  const n = a.shape[d];
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > n) {
    throw new Error(
      `slice: range [${start}, ${end}) is invalid for dimension ${dim} of ${formatShape(a.shape)}; ` +
        `expected whole numbers with 0 <= start <= end <= ${n}`,
    );
  }
  const shape = [...a.shape];
  shape[d] = end - start;
  const out = Tensor.empty(shape, a.dtype);
  const { outer, size, inner } = splitAt(a.shape, d);
  const eb = DTYPE_BYTES[a.dtype];
  const rowBytes = (end - start) * inner * eb;
  copyRows(a.offset + start * inner * eb, size * inner * eb, out.offset, rowBytes, outer, rowBytes);
  return record(
    out,
    "slice",
    [a],
    (g) => {
      const ga = Tensor.zeros(a.shape);
      copyRows(
        g.offset,
        rowBytes,
        ga.offset + start * inner * 4,
        size * inner * 4,
        outer,
        rowBytes,
      );
      return [ga];
    },
    [],
  );
}

/** Returns the tensors joined along `dim`; all other dimensions and the dtype must agree. */
export function concat(tensors: readonly Tensor[], dim: number): Tensor {
  if (tensors.length === 0) throw new Error("concat: expected at least one tensor, got none");
  const first = tensors[0];
  first.assertAlive("concat");
  const d = resolveDim("concat", dim, first.shape);
  let total = 0;
  for (const [i, t] of tensors.entries()) {
    t.assertAlive("concat");
    const same =
      t.dtype === first.dtype &&
      t.ndim === first.ndim &&
      t.shape.every((s, k) => k === d || s === first.shape[k]);
    if (!same) {
      throw new Error(
        `concat: tensor ${i} is ${t.describe()} but tensor 0 is ${first.describe()}; ` +
          `shapes must match except in dimension ${dim}, and dtypes must be equal`,
      );
    }
    total += t.shape[d];
  }
  const shape = [...first.shape];
  shape[d] = total;
  const out = Tensor.empty(shape, first.dtype);
  const { outer, inner } = splitAt(shape, d);
  const eb = DTYPE_BYTES[first.dtype];
  const outRow = total * inner * eb;
  const starts: number[] = [];
  let at = 0;
  for (const t of tensors) {
    starts.push(at);
    const rowBytes = t.shape[d] * inner * eb;
    copyRows(t.offset, rowBytes, out.offset + at * inner * eb, outRow, outer, rowBytes);
    at += t.shape[d];
  }
  return record(
    out,
    "concat",
    tensors,
    (g, needs) =>
      tensors.map((t, i) => {
        if (!needs[i]) return null;
        const gi = Tensor.empty(t.shape);
        const rowBytes = t.shape[d] * inner * 4;
        copyRows(
          g.offset + starts[i] * inner * 4,
          total * inner * 4,
          gi.offset,
          rowBytes,
          outer,
          rowBytes,
        );
        return gi;
      }),
    [],
  );
}

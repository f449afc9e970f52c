// Reference layout kernels: transpose, slice and concat by index arithmetic.
import { stridesOf, type NumberArray } from "./elementwise.js";

/** out = a with dimensions d0 and d1 swapped; out has the swapped shape. */
export function transposeRef(
  a: ArrayLike<number>,
  shape: readonly number[],
  d0: number,
  d1: number,
  out: NumberArray,
): void {
  const outShape = [...shape];
  outShape[d0] = shape[d1];
  outShape[d1] = shape[d0];
  const inStrides = stridesOf(shape);
  for (let i = 0; i < out.length; i++) {
    let rest = i;
    let src = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const k = rest % outShape[d];
      rest = Math.floor(rest / outShape[d]);
      let inDim = d;
      if (d === d0) inDim = d1;
      else if (d === d1) inDim = d0;
      src += k * inStrides[inDim];
    }
    out[i] = a[src];
  }
}

/** out = a[..., start:end, ...] along dim. */
export function sliceRef(
  a: ArrayLike<number>,
  shape: readonly number[],
  dim: number,
  start: number,
  end: number,
  out: NumberArray,
): void {
  const inner = stridesOf(shape)[dim];
  const outer = shape.slice(0, dim).reduce((p, d) => p * d, 1);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (let j = start; j < end; j++) {
      for (let i = 0; i < inner; i++) out[k++] = a[(o * shape[dim] + j) * inner + i];
    }
  }
}

/** out = the parts joined along dim. */
export function concatRef(
  parts: { data: ArrayLike<number>; shape: readonly number[] }[],
  dim: number,
  out: NumberArray,
): void {
  const shape = parts[0].shape;
  const inner = stridesOf(shape)[dim];
  const outer = shape.slice(0, dim).reduce((p, d) => p * d, 1);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const part of parts) {
      const rowLen = part.shape[dim] * inner;
      for (let i = 0; i < rowLen; i++) out[k++] = part.data[o * rowLen + i];
    }
  }
}

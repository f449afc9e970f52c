// Matrix products: matmul (batched, either operand transposed) and linear (x W^T + b or x W + b),
// with their backward passes. The right operand may be a frozen weight stored as bf16 or f16;
// gradients flow through it to the left operand, and it gets a gradient only if it requires one.
//
// Legend: M rows of the product, K inner dimension, N columns, batch = product of leading dims.
import {
  gemm,
  matrixOperand,
  type GemmDType,
  type GemmOperand,
} from "../../kernels/bindings/gemm.js";
import { QuantizedTensor } from "../quant.js";
import { record } from "../tape.js";
import { quantizedLinear } from "./quantized-linear.js";
import { formatShape, shapeSize, Tensor } from "../tensor.js";
import { expectDtype } from "./check.js";

export interface MatmulOptions {
  /** Read a as [..., K, M] (its last two dims swapped). */
  transA?: boolean;
  /** Read b as [..., N, K]. */
  transB?: boolean;
}

// Dimensions of one product and the operand layouts it reads, in elements.
interface Product {
  m: number;
  n: number;
  k: number;
  batch: number;
  /** Shape of the result: a's batch dims, then M and N as the caller sees them. */
  outShape: number[];
  a: GemmOperand;
  b: GemmOperand;
}

/**
 * Returns op(a) · op(b) for a [..., M, K] (or [..., K, M] with transA) and b [..., K, N] (or
 * [..., N, K] with transB). b is either 2-D and shared by every batch item, or has exactly the
 * batch dims of a. a is f32; b is f32, bf16 or f16. The result is f32 [..., M, N].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  expectDtype("matmul", "a", a, "f32");
  expectDtype("matmul", "b", b, "f32", "bf16", "f16");
  const p = describeProduct("matmul", a, b, transA, transB);
  const out = Tensor.empty(p.outShape);
  runProduct(p, b, out, false);
  return record(
    out,
    "matmul",
    [a, b],
    (g, needs) => [needs[0] ? gradLeft(p, a, b, g) : null, needs[1] ? gradRight(p, a, b, g) : null],
    [a.needsGrad ? b : null, b.needsGrad ? a : null],
  );
}

/**
 * Applies a linear layer to x [..., in]: "outIn" weight [out, in] as in torch nn.Linear
 * (x W^T + b), or "inOut" weight [in, out] as in GPT-2's Conv1D (x W + b). bias is [out] or null.
 * x is f32. The weight and the bias may be bf16 or f16, as checkpoints store them; a bias
 * gets an f32 gradient when it requires one. Returns [..., out].
 * A QuantizedTensor weight (int8 or NF4, always [out, in] whatever `layout` says) runs
 * quantizedLinear, which gives gradients to x and the bias only.
 */
export function linear(
  x: Tensor,
  weight: Tensor | QuantizedTensor,
  bias: Tensor | null = null,
  layout: "outIn" | "inOut" = "outIn",
): Tensor {
  if (weight instanceof QuantizedTensor) return quantizedLinear(x, weight, bias);
  expectDtype("linear", "x", x, "f32");
  expectDtype("linear", "weight", weight, "f32", "bf16", "f16");
  if (layout !== "outIn" && layout !== "inOut") {
    throw new Error(`linear: layout must be "outIn" or "inOut", got ${JSON.stringify(layout)}`);
  }
  if (weight.ndim !== 2 || x.ndim < 1) {
    throw new Error(
      `linear: expected x [..., in] and a 2-D weight, got x ${formatShape(x.shape)} ` +
        `and weight ${formatShape(weight.shape)}`,
    );
  }
  const transB = layout === "outIn";
  const inFeatures = x.shape[x.ndim - 1];
  const [wIn, outFeatures] = transB ? [weight.shape[1], weight.shape[0]] : weight.shape;
  if (wIn !== inFeatures) {
    throw new Error(
      `linear: x ${formatShape(x.shape)} has ${inFeatures} input features but weight ` +
        `${formatShape(weight.shape)} (layout "${layout}") expects ${wIn}; ` +
        `check the layout ("outIn" = [out, in], "inOut" = [in, out])`,
    );
  }
  if (bias !== null) {
    expectDtype("linear", "bias", bias, "f32", "bf16", "f16");
    if (bias.size !== outFeatures || bias.ndim !== 1) {
      throw new Error(
        `linear: bias must be [${outFeatures}] for weight ${formatShape(weight.shape)}, ` +
          `got ${formatShape(bias.shape)}`,
      );
    }
  }

  // x [..., in] as [rows, in]: one product with M = rows.
  const rows = shapeSize(x.shape.slice(0, -1));
  const x2 = x.view([rows, inFeatures]);
  const p = describeProduct("linear", x2, weight, false, transB);
  const out = Tensor.empty([...x.shape.slice(0, -1), outFeatures]);
  if (bias !== null) fillRows(out, bias, rows, outFeatures);
  runProduct(p, weight, out, bias !== null);

  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record(
    out,
    "linear",
    inputs,
    (g, needs) => [
      needs[0] ? gradLeft(p, x2, weight, g).view(x.shape) : null,
      needs[1] ? gradRight(p, x2, weight, g) : null,
      needs[2] ? sumRows(g, rows, outFeatures) : null,
    ],
    [x.needsGrad ? weight : null, weight.needsGrad ? x : null],
  );
}

/**
 * Returns base + x · weightᵀ for x [..., in] f32, an f32 weight [out, in] and base [..., out]
 * f32, adding the product into base's own memory. The result is a view of base, so base must be
 * a fresh output that nothing reads afterwards, such as a frozen layer's output before LoRA adds
 * its term (a linear's backward does not read its output). This saves the two [..., out]
 * tensors that add(base, linear(x, weight)) would allocate.
 */
export function addLinear(base: Tensor, x: Tensor, weight: Tensor): Tensor {
  expectDtype("addLinear", "base", base, "f32");
  expectDtype("addLinear", "x", x, "f32");
  expectDtype("addLinear", "weight", weight, "f32");
  const inFeatures = x.shape[x.ndim - 1];
  const expected = [...x.shape.slice(0, -1), weight.shape[0]];
  const matches =
    weight.ndim === 2 &&
    weight.shape[1] === inFeatures &&
    base.ndim === expected.length &&
    expected.every((d, i) => base.shape[i] === d);
  if (!matches) {
    throw new Error(
      `addLinear: expected x [..., in], weight [out, in] and base [..., out], got x ` +
        `${formatShape(x.shape)}, weight ${formatShape(weight.shape)} and base ` +
        `${formatShape(base.shape)}`,
    );
  }
  const rows = shapeSize(x.shape.slice(0, -1));
  const x2 = x.view([rows, inFeatures]);
  const p = describeProduct("addLinear", x2, weight, false, true);
  const out = base.view(base.shape);
  runProduct(p, weight, out, true);
  return record(
    out,
    "addLinear",
    [base, x, weight],
    (g, needs) => [
      needs[0] ? g : null,
      needs[1] ? gradLeft(p, x2, weight, g).view(x.shape) : null,
      needs[2] ? gradRight(p, x2, weight, g) : null,
    ],
    [x.needsGrad ? weight : null, weight.needsGrad ? x : null],
  );
}

function describeProduct(
  op: string,
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
): Product {
  const mismatch = (why: string): Error =>
    new Error(
      `${op}: a ${formatShape(a.shape)} and b ${formatShape(b.shape)} ` +
        `(transA ${transA}, transB ${transB}) do not match: ${why}`,
    );
  if (a.ndim < 2 || b.ndim < 2) throw mismatch("both operands need at least 2 dimensions");
  const [aRows, aCols] = a.shape.slice(-2);
  const [bRows, bCols] = b.shape.slice(-2);
  const [m, k] = transA ? [aCols, aRows] : [aRows, aCols];
  const [kb, n] = transB ? [bCols, bRows] : [bRows, bCols];
  if (k !== kb)
    throw mismatch(
      `the inner dimensions differ (K ${k} from a, ${kb} from b). ` +
        `Set transA or transB for an operand stored transposed`,
    );

  const batchShape = a.shape.slice(0, -2);
  const bShared = b.ndim === 2;
  if (!bShared) {
    const bBatch = b.shape.slice(0, -2);
    if (bBatch.length !== batchShape.length || bBatch.some((d, i) => d !== batchShape[i])) {
      throw mismatch(
        `batch dims ${formatShape(batchShape)} and ${formatShape(bBatch)} differ. ` +
          `b must be 2-D or have a's batch dims`,
      );
    }
  }
  const batch = shapeSize(batchShape);
  const outShape = [...batchShape, m, n];
  const bOperand = matrixOperand(b.offset, bRows, bCols, transB, !bShared);
  if (bShared && !transA && batch > 1) {
    // The batch items of an untransposed a are consecutive rows: one product with batch * M rows
    // packs the shared b once.
    const rows = batch * m;
    const aOperand = matrixOperand(a.offset, rows, k);
    return { m: rows, n, k, batch: 1, outShape, a: aOperand, b: bOperand };
  }
  const aOperand = matrixOperand(a.offset, aRows, aCols, transA);
  return { m, n, k, batch, outShape, a: aOperand, b: bOperand };
}

// out (+)= op(a) op(b) with out a fresh [batch, M, N] tensor.
function runProduct(p: Product, b: Tensor, out: Tensor, accumulate: boolean): void {
  gemm({
    a: p.a,
    b: p.b,
    bDtype: b.dtype as GemmDType,
    c: matrixOperand(out.offset, p.m, p.n),
    m: p.m,
    n: p.n,
    k: p.k,
    batch: p.batch,
    accumulate,
  });
}

// Gradient of a: d op(a) = G op(b)^T, written in a's own layout (so transA is handled by strides).
function gradLeft(p: Product, a: Tensor, b: Tensor, g: Tensor): Tensor {
  const da = Tensor.empty(a.shape);
  gemm({
    a: matrixOperand(g.offset, p.m, p.n),
    b: { offset: p.b.offset, row: p.b.col, col: p.b.row, batch: p.b.batch },
    bDtype: b.dtype as GemmDType,
    c: { offset: da.offset, row: p.a.row, col: p.a.col, batch: p.a.batch },
    m: p.m,
    n: p.k,
    k: p.n,
    batch: p.batch,
  });
  return da;
}

// Gradient of b: d op(b) = op(a)^T G, written in b's layout. A shared 2-D b sums over the batch.
function gradRight(p: Product, a: Tensor, b: Tensor, g: Tensor): Tensor {
  const db = Tensor.empty(b.shape);
  const dbOperand = { offset: db.offset, row: p.b.row, col: p.b.col, batch: p.b.batch };
  const aT = { offset: p.a.offset, row: p.a.col, col: p.a.row, batch: p.a.batch };
  const gOperand = matrixOperand(g.offset, p.m, p.n);
  const shared = p.b.batch === 0 && p.batch > 1;
  if (!shared) {
    gemm({
      a: aT,
      b: gOperand,
      bDtype: "f32",
      c: dbOperand,
      m: p.k,
      n: p.n,
      k: p.m,
      batch: p.batch,
    });
    return db;
  }
  // A shared b with a transposed, batched a (describeProduct merges an untransposed one into
  // rows): sum the items' products into db one after another.
  for (let t = 0; t < p.batch; t++) {
    gemm({
      a: { ...aT, offset: aT.offset + t * p.a.batch * 4 },
      b: { ...gOperand, offset: g.offset + t * p.m * p.n * 4 },
      bDtype: "f32",
      c: dbOperand,
      m: p.k,
      n: p.n,
      k: p.m,
      batch: 1,
      accumulate: t > 0,
    });
  }
  return db;
}

// Returns the column sums of g viewed as [rows, cols]: a GEMV of a row of ones with g.
function sumRows(g: Tensor, rows: number, cols: number): Tensor {
  const ones = Tensor.full([rows], 1);
  const out = Tensor.empty([cols]);
  gemm({
    a: matrixOperand(ones.offset, 1, rows),
    b: matrixOperand(g.offset, rows, cols),
    bDtype: "f32",
    c: matrixOperand(out.offset, 1, cols),
    m: 1,
    n: cols,
    k: rows,
    batch: 1,
  });
  return out;
}

// Copies bias [cols] into every row of out [rows, cols].
function fillRows(out: Tensor, bias: Tensor, rows: number, cols: number): void {
  const dst = out.f32();
  const src = bias.toFloat32Array();
  for (let r = 0; r < rows; r++) dst.set(src, r * cols);
}

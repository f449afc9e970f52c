// linear() with a quantized frozen weight: y = x W^T + b where W is an int8 or NF4
// QuantizedTensor. The backward gives the input gradient dx = dy W (through the quantized weight)
// and the bias gradient; the weight itself is frozen and never gets one.
//
// Legend: M rows (product of x's leading dims), K in features, N out features.
import { quantGemm, type QuantOperand } from "../../kernels/bindings/quant.js";
import type { QuantizedTensor } from "../quant.js";
import { record } from "../tape.js";
import { formatShape, shapeSize, Tensor } from "../tensor.js";
import { expectDtype } from "./check.js";

/** Returns x [..., K] · W^T + bias for a quantized W [N, K] and bias [N] (or null): [..., N]. */
export function quantizedLinear(
  x: Tensor,
  weight: QuantizedTensor,
  bias: Tensor | null = null,
): Tensor {
  expectDtype("linear", "x", x, "f32");
  weight.assertAlive("linear");
  const [outFeatures, inFeatures] = weight.shape;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== inFeatures) {
    throw new Error(
      `linear: x ${formatShape(x.shape)} must end in the ${inFeatures} input features of the ` +
        `quantized weight ${weight.describe()} ([out, in])`,
    );
  }
  if (bias !== null) {
    expectDtype("linear", "bias", bias, "f32", "bf16", "f16");
    if (bias.size !== outFeatures || bias.ndim !== 1) {
      throw new Error(
        `linear: bias must be [${outFeatures}] for weight ${weight.describe()}, ` +
          `got ${formatShape(bias.shape)}`,
      );
    }
  }
  const rows = shapeSize(x.shape.slice(0, -1));
  const operand = quantOperand(weight);
  const out = Tensor.empty([...x.shape.slice(0, -1), outFeatures]);
  if (bias !== null) {
    const values = bias.toFloat32Array();
    const dst = out.f32();
    for (let r = 0; r < rows; r++) dst.set(values, r * outFeatures);
  }
  quantGemm(operand, x.offset, rows, false, out.offset, bias !== null);

  const inputs = bias === null ? [x] : [x, bias];
  return record(
    out,
    "quantizedLinear",
    inputs,
    (g, needs) => {
      let dx: Tensor | null = null;
      if (needs[0]) {
        dx = Tensor.empty(x.shape);
        quantGemm(operand, g.offset, rows, true, dx.offset, false);
      }
      return [dx, needs[1] ? sumRows(g, rows, outFeatures) : null];
    },
    [],
  );
}

/** Returns the kernel's view of a quantized weight. */
export function quantOperand(weight: QuantizedTensor): QuantOperand {
  return {
    kind: weight.kind,
    codes: weight.codes.offset,
    scales: weight.scales.offset,
    absmaxSteps: weight.absmaxSteps?.offset ?? 0,
    absmaxMean: weight.absmaxMean,
    n: weight.shape[0],
    k: weight.shape[1],
    paddedK: weight.paddedK,
  };
}

// Column sums of g [rows, cols] in f64, rounded once: the bias gradient.
function sumRows(g: Tensor, rows: number, cols: number): Tensor {
  const values = g.f32();
  const sums = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) sums[c] += values[r * cols + c];
  }
  return Tensor.from(Float32Array.from(sums), [cols]);
}

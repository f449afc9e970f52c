// Gradient check: the engine's forward value and backward pass against an f64 reference forward
// function and its central finite differences.
import assert from "node:assert/strict";
import { backward, Tensor, type DType } from "../../src/engine/index.js";
import { assertClose } from "./assert.js";
import { randomArray } from "./random.js";

export interface GradcheckInput {
  /** Values, exactly representable in `dtype` (the reference reads them unchanged). */
  data: ArrayLike<number>;
  shape: number[];
  /** Default f32. */
  dtype?: DType;
  /** Default true for f32 inputs, false otherwise. Inputs without it must get no gradient. */
  requiresGrad?: boolean;
}

export interface GradcheckOptions {
  /** Finite-difference step, applied in f64. */
  eps?: number;
  /** Tolerance of forward values and gradients: |got - want| <= atol + rtol * |want|. */
  atol?: number;
  rtol?: number;
  /** Seed of the random output weights that reduce the output to a scalar. */
  seed?: number;
  what?: string;
}

/**
 * Checks fnEngine against fnRefF64. The output is reduced to the scalar L = sum(w * out) with
 * random weights w; the engine's backward from w must match dL/dx of the reference, estimated by
 * central differences in f64, for every input that requires a gradient.
 */
export function gradcheck(
  fnEngine: (inputs: Tensor[]) => Tensor,
  fnRefF64: (inputs: Float64Array[]) => ArrayLike<number>,
  inputs: GradcheckInput[],
  opts: GradcheckOptions = {},
): void {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-4, seed = 7, what = "gradcheck" } = opts;
  const tensors = inputs.map((input) => {
    const dtype = input.dtype ?? "f32";
    const requiresGrad = input.requiresGrad ?? dtype === "f32";
    return Tensor.from(input.data, input.shape, dtype, { persistent: true, requiresGrad });
  });
  const values = inputs.map((input) => Float64Array.from(input.data));

  const out = fnEngine(tensors);
  const expected = fnRefF64(values);
  assertClose(out.toFloat32Array(), expected, { atol, rtol, what: `${what}: forward` });

  const weights = randomArray(out.size, seed);
  backward(out, Tensor.from(weights, out.shape));
  const loss = (xs: Float64Array[]): number => {
    const y = fnRefF64(xs);
    let sum = 0;
    for (let i = 0; i < y.length; i++) sum += weights[i] * y[i];
    return sum;
  };

  tensors.forEach((t, index) => {
    if (!t.requiresGrad) {
      assert.equal(t.grad, null, `${what}: input ${index} must not get a gradient`);
      return;
    }
    const x = values[index];
    const numeric = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const saved = x[i];
      x[i] = saved + eps;
      const plus = loss(values);
      x[i] = saved - eps;
      const minus = loss(values);
      x[i] = saved;
      numeric[i] = (plus - minus) / (2 * eps);
    }
    assert.ok(t.grad !== null, `${what}: input ${index} got no gradient`);
    assertClose(t.grad.toFloat32Array(), numeric, {
      atol,
      rtol,
      what: `${what}: gradient of input ${index}`,
    });
  });
  for (const t of tensors) t.dispose();
}

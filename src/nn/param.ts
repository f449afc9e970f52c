// Parameter allocation shared by the nn modules.
import { Tensor, type DType } from "../engine/index.js";
import { formatShape, type Shape } from "../engine/tensor.js";

/** Storage type of frozen weight matrices. Norms and biases are always f32. */
export type WeightDType = "f32" | "bf16" | "f16";

/** Allocates a zero-filled persistent parameter. Loading a checkpoint overwrites it in place. */
export function newParameter(shape: Shape, dtype: DType = "f32"): Tensor {
  return Tensor.zeros(shape, dtype, { persistent: true });
}

/** Throws unless `value` has the `expected` shape, before a module's parameter is replaced. */
export function expectParameterShape(
  where: string,
  name: string,
  value: Tensor,
  expected: Shape,
): void {
  const same = value.ndim === expected.length && value.shape.every((d, i) => d === expected[i]);
  if (!same) {
    throw new Error(
      `${where}: parameter "${name}" must have shape ${formatShape(expected)}, ` +
        `got ${formatShape(value.shape)}`,
    );
  }
}

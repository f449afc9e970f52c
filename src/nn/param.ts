// Parameter allocation shared by the nn modules.
import { Tensor, type DType } from "../engine/index.js";
import { formatShape, type Shape } from "../engine/tensor.js";

/** Storage type of frozen weight matrices. Norms and biases are always f32. */
export type WeightDType = "f32" | "bf16" | "f16";

// Set while withUninitializedParameters runs.
let skipZeroFill = false;

/**
 * Runs `build` with newParameter leaving memory uninitialized, for a loader that overwrites or
 * replaces every parameter. Memory that is never written is never paged in, so a weight that a
 * quantizing loader frees unread takes no resident memory.
 */
export function withUninitializedParameters<T>(build: () => T): T {
  const previous = skipZeroFill;
  skipZeroFill = true;
  try {
    return build();
  } finally {
    skipZeroFill = previous;
  }
}

// Set while withDeferredLinearWeights runs.
let deferLinearWeights = false;

/**
 * Runs `build` with every Linear weight created as a placeholder without storage
 * (Tensor.placeholder), for a loader that quantizes those weights straight from the file. The
 * quantized weights are then allocated one after another in load order. Float placeholders
 * would leave holes between the norms and biases, and a training step's buffers, split across
 * those holes, would page in far more memory than they use.
 */
export function withDeferredLinearWeights<T>(build: () => T): T {
  const previous = deferLinearWeights;
  deferLinearWeights = true;
  try {
    return build();
  } finally {
    deferLinearWeights = previous;
  }
}

/** Creates a Linear's weight: a parameter, or a placeholder inside withDeferredLinearWeights. */
export function newLinearWeight(shape: Shape, dtype: DType): Tensor {
  return deferLinearWeights ? Tensor.placeholder(shape, dtype) : newParameter(shape, dtype);
}

/** Allocates a zero-filled persistent parameter. Loading a checkpoint overwrites it in place. */
export function newParameter(shape: Shape, dtype: DType = "f32"): Tensor {
  if (skipZeroFill) return Tensor.empty(shape, dtype, { persistent: true });
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

// The engine's public surface: tensors, autodiff and ops.
export { Tensor, endStep, type DType, type Shape, type TensorOptions } from "./tensor.js";
export { backward, noGrad, withGrad, zeroGrad, isGradEnabled } from "./tape.js";
export { addSame } from "./ops/add.js";
export { linear, matmul, type MatmulOptions } from "./ops/matmul.js";

// The engine's public surface: tensors, autodiff and ops.
export { Tensor, endStep, type DType, type Shape, type TensorOptions } from "./tensor.js";
export { backward, noGrad, withGrad, zeroGrad, isGradEnabled } from "./tape.js";
export { addSame } from "./ops/add.js";
export { linear, matmul, type MatmulOptions } from "./ops/matmul.js";
export { softmax } from "./ops/softmax.js";
export { attention, type AttentionOptions } from "./ops/attention.js";
export { rope } from "./ops/rope.js";
export {
  crossEntropy,
  crossEntropySum,
  linearCrossEntropy,
  linearCrossEntropySum,
  type CrossEntropyOptions,
  type LinearCrossEntropyOptions,
  type LossSum,
} from "./ops/xent.js";

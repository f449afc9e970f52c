// The engine's public surface: tensors, autodiff and ops.
export { Tensor, endStep, type DType, type Shape, type TensorOptions } from "./tensor.js";
export { backward, freeUnsaved, noGrad, withGrad, zeroGrad, isGradEnabled } from "./tape.js";
export { add, addSame, sub, mul, scale, sum, mean } from "./ops/elementwise.js";
export { broadcastShapes, reduceToShape } from "./ops/broadcast.js";
export { reshape, transpose, slice, concat } from "./ops/layout.js";
export { embedding } from "./ops/embedding.js";
export { rmsNorm, layerNorm } from "./ops/norm.js";
export { gelu, silu, swiglu } from "./ops/activation.js";
export { dropout } from "./ops/dropout.js";
export { Rng, type RngState } from "./random.js";
export { AdamW, gradNorm, clipGradNorm, type AdamWOptions } from "./optim.js";
export { addLinear, linear, matmul, type MatmulOptions } from "./ops/matmul.js";
export { softmax } from "./ops/softmax.js";
export { attention, type AttentionOptions } from "./ops/attention.js";
export { rope } from "./ops/rope.js";
export {
  crossEntropy,
  crossEntropySum,
  type CrossEntropyOptions,
  type LossSum,
} from "./ops/xent.js";
export {
  linearCrossEntropy,
  linearCrossEntropySum,
  type LinearCrossEntropyOptions,
} from "./ops/linear-xent.js";
export {
  QuantizedTensor,
  QUANT_KINDS,
  parseQuantizeOption,
  quantizeRoundTrip,
  quantizedByteLength,
  type QuantKind,
  type QuantizeOption,
  type QuantizeOptions,
} from "./quant.js";
export { quantizedLinear } from "./ops/quantized-linear.js";

// Quantizing the frozen base of a causal LM: every Linear of the transformer blocks gets an int8 or
// NF4 weight (Linear.quantizedWeight) and its float weight is freed. The token embedding, the
// norms, the biases and the output projection keep their stored dtype.
import { QuantizedTensor, type QuantKind, type Tensor } from "../engine/index.js";
import type { SourceDType } from "../engine/quant.js";
import type { Checkpoint } from "../io/checkpoint.js";
import { decodeFloat32Into, isFloatDType, SAFETENSORS_DTYPE_BYTES } from "../io/dtypes.js";
import { Linear } from "../nn/linear.js";
import { newParameter, withUninitializedParameters } from "../nn/param.js";
import type { CausalLM } from "./types.js";

/** Memory of the quantized layers' weights before and after quantization. */
export interface QuantizeSummary {
  kind: QuantKind;
  /** Linear layers quantized. */
  layers: number;
  /** Bytes their weights took in the loaded dtype. */
  bytesBefore: number;
  /** Bytes of their codes and scales. */
  bytesAfter: number;
}

/**
 * Returns the Linear modules that quantization replaces, with their paths: every Linear except
 * the output projection (lm_head, or a Linear whose weight is the output projection).
 */
export function quantizableLinears(model: CausalLM): [string, Linear][] {
  const head = model.lmHeadWeight();
  const found: [string, Linear][] = [];
  for (const [path, module] of model.namedModules()) {
    if (!(module instanceof Linear)) continue;
    if (module.weight === head || /(^|\.)lm_head$/.test(path)) continue;
    found.push([path, module]);
  }
  return found;
}

/**
 * Gives every Linear that stays float (an untied output layer) an uninitialized weight, in a
 * model built inside withDeferredLinearWeights. The block Linears keep their placeholders, which
 * quantizingLoader replaces.
 */
export function allocateFloatLinears(model: CausalLM): void {
  const quantized = new Set(quantizableLinears(model).map(([, linear]) => linear));
  for (const [, module] of model.namedModules()) {
    if (!(module instanceof Linear) || quantized.has(module)) continue;
    const { dtype } = module.weight;
    module.weight = withUninitializedParameters(() => newParameter(module.weightShape(), dtype));
  }
}

/**
 * Quantizes a loaded model in place: each block Linear's weight becomes `kind` and the float
 * weight is freed. Already quantized layers are skipped. Returns the memory before and after.
 */
export function quantizeModel(model: CausalLM, kind: QuantKind): QuantizeSummary {
  const summary: QuantizeSummary = { kind, layers: 0, bytesBefore: 0, bytesAfter: 0 };
  for (const [path, linear] of quantizableLinears(model)) {
    if (linear.quantizedWeight !== null) continue;
    const weight = linear.weight;
    const quantized = QuantizedTensor.fromTensor(kind, weight, linear.layout);
    quantized.name = `${path}.weight`;
    summary.bytesBefore += weight.byteLength;
    setQuantized(linear, quantized);
    summary.bytesAfter += quantized.byteLength;
    summary.layers++;
  }
  return summary;
}

/**
 * Returns a tensor loader for loadWeights that quantizes each block Linear's weight straight from
 * the checkpoint, so that the float weight is never written to the shared memory, and fills
 * `summary` as it goes. Other tensors are left to the default copy.
 */
export function quantizingLoader(
  model: CausalLM,
  kind: QuantKind,
  summary: QuantizeSummary,
): (path: string, target: Tensor, checkpoint: Checkpoint, stored: string) => boolean {
  const byWeightPath = new Map<string, Linear>();
  for (const [path, linear] of quantizableLinears(model))
    byWeightPath.set(`${path}.weight`, linear);
  // One file buffer and one f32 buffer, reused for every layer and grown for the largest, so
  // loading leaves no per-layer garbage behind for the collector.
  let bytes = new Uint8Array(0);
  let floats = new Float32Array(0);
  return (path, target, checkpoint, stored) => {
    const linear = byWeightPath.get(path);
    if (linear === undefined || linear.weight !== target) return false;
    const info = checkpoint.info(stored);
    if (!isFloatDType(info.dtype)) {
      throw new Error(
        `quantize: tensor "${stored}" is stored as ${info.dtype}; only F32, F16 and BF16 ` +
          `weights can be quantized`,
      );
    }
    const count = target.size;
    const width = SAFETENSORS_DTYPE_BYTES[info.dtype];
    if (bytes.byteLength < count * width) bytes = new Uint8Array(count * width);
    if (floats.length < count) floats = new Float32Array(count);
    const raw = bytes.subarray(0, count * width);
    checkpoint.readInto(stored, raw);
    const values = floats.subarray(0, count);
    decodeFloat32Into(raw, info.dtype, values, `tensor "${stored}"`);
    const quantized = QuantizedTensor.quantize(
      kind,
      values,
      linear.outFeatures,
      linear.inFeatures,
      {
        layout: linear.layout,
        sourceDtype: sourceDtypeOf(info.dtype, target),
        name: path,
      },
    );
    summary.bytesBefore += target.byteLength;
    setQuantized(linear, quantized);
    summary.bytesAfter += quantized.byteLength;
    summary.layers++;
    return true;
  };
}

// Installs the quantized weight and frees the float one (its Tensor keeps shape and dtype).
function setQuantized(linear: Linear, quantized: QuantizedTensor): void {
  linear.quantizedWeight = quantized;
  linear.weight.dispose();
}

// The checkpoint dtype to restore when a merge decodes the weight, else the loaded dtype.
function sourceDtypeOf(stored: string, target: Tensor): SourceDType {
  if (stored === "F32") return "f32";
  if (stored === "BF16") return "bf16";
  if (stored === "F16") return "f16";
  return target.dtype === "i32" ? "f32" : target.dtype;
}

/** Returns the quantization of a model: the format of its quantized layers, or null. */
export function quantizationOf(model: CausalLM): QuantKind | null {
  for (const [, linear] of quantizableLinears(model)) {
    if (linear.quantizedWeight !== null) return linear.quantizedWeight.kind;
  }
  return null;
}

/** Frees the quantized weights of a model (Module.dispose also frees them). */
export function disposeQuantized(model: CausalLM): void {
  for (const [, linear] of quantizableLinears(model)) {
    linear.quantizedWeight?.dispose();
    linear.quantizedWeight = null;
  }
}

/** Formats a byte count in MiB with one decimal. */
export function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Replaces a Linear's quantized weight by its decoded values, stored in the dtype the checkpoint
 * had, and frees the codes. Returns the format the weight had, or null when it was not quantized.
 */
export function dequantizeLinear(linear: Linear): QuantKind | null {
  const quantized = linear.quantizedWeight;
  if (quantized === null) return null;
  linear.weight = quantized.dequantize();
  linear.quantizedWeight = null;
  quantized.dispose();
  return quantized.kind;
}

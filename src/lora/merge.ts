// Merging adapters into the frozen weights and back out. The arithmetic is f32 whatever the
// weight's dtype: decode W to f32, add or subtract scaling · B·A (transposed for GPT-2's Conv1D
// [in, out] weights), round back to the stored dtype. Merging then unmerging a bf16 or f16
// weight is therefore not exact (PEFT has the same limit).
import { encodeBf16, encodeF16, type Tensor } from "../engine/tensor.js";
import type { Linear, LinearLayout } from "../nn/linear.js";
import { dequantizeLinear } from "../models/quantize.js";
import type { Module } from "../nn/module.js";
import type { LoraWeights } from "./layer.js";
import { loraState, releaseLoraState } from "./state.js";

/** The values a delta needs: A [r, in], B [out, r], the rank and the scaling. */
export interface DeltaInputs {
  A: Float32Array;
  B: Float32Array;
  r: number;
  scaling: number;
}

/**
 * Adds sign · scaling · B·A to `weight` (f32 values of a weight stored [out, in] for "outIn" or
 * [in, out] for "inOut"), in place. B·A is summed in f64 and rounded to f32 once, then scaled and
 * added in f32 as PEFT's torch code does.
 */
export function addLoraDelta(
  weight: Float32Array,
  layout: LinearLayout,
  inFeatures: number,
  outFeatures: number,
  delta: DeltaInputs,
  sign: 1 | -1,
): void {
  const { A, B, r } = delta;
  const s = Math.fround(delta.scaling);
  if (weight.length !== inFeatures * outFeatures || A.length !== r * inFeatures) {
    throw new Error(
      `addLoraDelta: weight has ${weight.length} values and lora_A ${A.length}, expected ` +
        `${inFeatures * outFeatures} and ${r * inFeatures} (in ${inFeatures}, out ${outFeatures}, r ${r})`,
    );
  }
  const row = new Float64Array(inFeatures);
  for (let o = 0; o < outFeatures; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[o * r + k];
      const aRow = k * inFeatures;
      for (let i = 0; i < inFeatures; i++) row[i] += b * A[aRow + i];
    }
    for (let i = 0; i < inFeatures; i++) {
      const d = Math.fround(Math.fround(row[i]) * s);
      const at = layout === "outIn" ? o * inFeatures + i : i * outFeatures + o;
      weight[at] = sign > 0 ? weight[at] + d : weight[at] - d;
    }
  }
}

/** Writes f32 values into a tensor of dtype f32, bf16 or f16 (rounding to nearest even). */
export function storeFloat32(target: Tensor, values: Float32Array): void {
  switch (target.dtype) {
    case "f32":
      target.f32().set(values);
      return;
    case "bf16":
      encodeBf16(values, target.u16());
      return;
    case "f16":
      encodeF16(values, target.u16());
      return;
    default:
      throw new Error(`storeFloat32: cannot store float values in a ${target.dtype} tensor`);
  }
}

function deltaInputs(w: LoraWeights): DeltaInputs {
  return { A: w.A.toFloat32Array(), B: w.B.toFloat32Array(), r: w.r, scaling: w.scaling };
}

/**
 * Merges adapters into the weights of their Linear modules (default: the active adapter).
 * A merged adapter's forward term is skipped, so outputs stay the same up to rounding.
 */
export function mergeAdapter(model: Module, names?: readonly string[]): void {
  const state = loraState(model, "mergeAdapter");
  const toMerge = names ?? (state.active === null ? [] : [state.active]);
  for (const name of toMerge) {
    if (!state.adapters.has(name)) {
      throw new Error(
        `mergeAdapter: no adapter named "${name}" (adapters: ${[...state.adapters.keys()].join(", ")})`,
      );
    }
  }
  const decoded: Linear[] = [];
  for (const layer of state.layers.values()) {
    for (const name of toMerge) {
      const w = layer.adapters.get(name);
      if (w === undefined || layer.merged.has(name)) continue;
      const linear = layer.base;
      if (dequantizeLinear(linear) !== null) decoded.push(linear);
      const values = linear.weight.toFloat32Array();
      addLoraDelta(values, linear.layout, linear.inFeatures, linear.outFeatures, deltaInputs(w), 1);
      storeFloat32(linear.weight, values);
      layer.merged.add(name);
    }
  }
  if (decoded.length > 0) {
    const dtypes = [...new Set(decoded.map((l) => l.weight.dtype))].join(", ");
    console.warn(
      `mergeAdapter: ${decoded.length} quantized base weights were decoded to f32, merged and ` +
        `stored as ${dtypes} (the checkpoint's dtype). They keep the quantization error of the ` +
        `base and stay unquantized, so those layers now take their full memory.`,
    );
  }
}

/** Subtracts every merged adapter from the weights again. */
export function unmergeAdapter(model: Module): void {
  const state = loraState(model, "unmergeAdapter");
  for (const layer of state.layers.values()) {
    for (const name of [...layer.merged].reverse()) {
      const w = layer.adapters.get(name);
      if (w === undefined) continue;
      const linear = layer.base;
      const values = linear.weight.toFloat32Array();
      addLoraDelta(
        values,
        linear.layout,
        linear.inFeatures,
        linear.outFeatures,
        deltaInputs(w),
        -1,
      );
      storeFloat32(linear.weight, values);
      layer.merged.delete(name);
    }
  }
}

/**
 * Merges the active adapter into the weights and removes every LoRA hook, leaving a plain model
 * (PEFT: merge_and_unload). The active adapter's modules_to_save copies stay in the model.
 */
export function mergeAndUnload<M extends Module>(model: M): M {
  const state = loraState(model, "mergeAndUnload");
  mergeAdapter(model);
  for (const layer of state.layers.values()) layer.base.hook = null;
  for (const [, t] of model.namedParameters()) t.requiresGrad = false;
  // The adapters are now part of the weights, so only tensors still in the model stay alive.
  releaseLoraState(model, new Set(model.parameters()));
  return model;
}

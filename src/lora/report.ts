// The trainable-parameter count in PEFT's form (PeftModel.print_trainable_parameters).
import type { Tensor } from "../engine/index.js";
import type { Module } from "../nn/module.js";
import { findLoraState } from "./state.js";

export interface ParameterCount {
  trainable: number;
  all: number;
  /** 100 · trainable / all. */
  percent: number;
}

/**
 * Counts the model's parameters as PEFT does. Every distinct tensor counts once (tied weights
 * too), including every adapter's LoRA tensors and both the originals and the copies of
 * modules_to_save modules. Trainable tensors are those that require a gradient.
 */
export function countParameters(model: Module): ParameterCount {
  const tensors = new Set<Tensor>(model.namedParameters().map(([, t]) => t));
  const state = findLoraState(model);
  if (state !== null) {
    for (const layer of state.layers.values()) {
      for (const w of layer.adapters.values()) tensors.add(w.A).add(w.B);
    }
    for (const record of state.adapters.values()) {
      for (const t of record.savedModules.values()) tensors.add(t);
    }
    for (const t of state.originals.values()) tensors.add(t);
  }
  let trainable = 0;
  let all = 0;
  for (const t of tensors) {
    all += t.size;
    if (t.requiresGrad) trainable += t.size;
  }
  return { trainable, all, percent: all === 0 ? 0 : (100 * trainable) / all };
}

/** Returns "trainable params: X || all params: Y || trainable%: Z" with PEFT's formatting. */
export function trainableParametersReport(model: Module): string {
  const { trainable, all, percent } = countParameters(model);
  const group = (n: number) => n.toLocaleString("en-US");
  return (
    `trainable params: ${group(trainable)} || all params: ${group(all)} || ` +
    `trainable%: ${percent.toFixed(4)}`
  );
}

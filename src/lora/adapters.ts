// Managing the named adapters of a model: switch the active one, disable all (run the base
// model), delete one, list them, and collect the trainable tensors.
import type { Tensor } from "../engine/index.js";
import type { Module } from "../nn/module.js";
import type { LoraLinear } from "./layer.js";
import { loraKey, paramKey } from "./keys.js";
import {
  adapterRecord,
  findLoraState,
  loraState,
  type AdapterRecord,
  type LoraState,
} from "./state.js";

/** Sets requiresGrad on every tensor an adapter trains. */
export function setRequiresGrad(
  record: AdapterRecord,
  layers: ReadonlyMap<string, LoraLinear>,
  value: boolean,
): void {
  for (const path of record.targets) {
    const w = layers.get(path)?.adapters.get(record.name);
    if (w === undefined) continue;
    w.A.requiresGrad = value;
    w.B.requiresGrad = value;
  }
  for (const t of record.savedModules.values()) t.requiresGrad = value;
  for (const t of record.biases.values()) t.requiresGrad = value;
}

/** Puts the original tensors back where modules_to_save copies were swapped in. */
function restoreOriginals(model: Module, state: LoraState): void {
  for (const [path, original] of state.originals) model.setParameter(path, original);
  state.originals.clear();
}

/** Swaps an adapter's modules_to_save copies into the model, remembering the originals. */
function swapInSavedModules(model: Module, state: LoraState, record: AdapterRecord): void {
  if (record.savedModules.size === 0) return;
  const current = new Map(model.namedParameters());
  for (const [path, copy] of record.savedModules) {
    const original = current.get(path);
    if (original !== undefined && !state.originals.has(path)) state.originals.set(path, original);
    model.setParameter(path, copy);
  }
}

/**
 * Makes `name` the model's active adapter: its LoRA terms run in forward, its modules_to_save
 * copies replace the model's modules, and only its tensors require gradients.
 */
export function activateAdapter(model: Module, name: string): void {
  const state = loraState(model, "setActiveAdapter");
  const record = adapterRecord(state, name, "setActiveAdapter");
  for (const other of state.adapters.values()) setRequiresGrad(other, state.layers, false);
  restoreOriginals(model, state);
  state.active = name;
  for (const layer of state.layers.values()) layer.active = layer.adapters.has(name) ? [name] : [];
  if (!state.disabled) swapInSavedModules(model, state, record);
  setRequiresGrad(record, state.layers, record.trainable);
}

/** Switches the active adapter (PEFT: set_adapter). */
export function setActiveAdapter(model: Module, name: string): void {
  activateAdapter(model, name);
}

/** Returns the active adapter's name, or null. */
export function activeAdapter(model: Module): string | null {
  return loraState(model, "activeAdapter").active;
}

/** Returns the names of the model's adapters in the order they were added ([] for none). */
export function listAdapters(model: Module): string[] {
  const state = findLoraState(model, "listAdapters");
  return state === null ? [] : [...state.adapters.keys()];
}

/** Returns an adapter's record (config, targets). */
export function getAdapter(model: Module, name: string): AdapterRecord {
  return adapterRecord(loraState(model, "getAdapter"), name, "getAdapter");
}

function throwIfMerged(state: LoraState, where: string): void {
  for (const layer of state.layers.values()) {
    if (layer.merged.size > 0) {
      throw new Error(
        `${where}: adapter(s) ${[...layer.merged].join(", ")} are merged into the weights; ` +
          `call unmergeAdapter first`,
      );
    }
  }
}

/**
 * Disables every adapter: the model computes the base outputs with its original modules.
 * Trained biases (bias "all" or "lora_only") stay in place, as in PEFT.
 */
export function disableAdapters(model: Module): void {
  const state = loraState(model, "disableAdapters");
  throwIfMerged(state, "disableAdapters");
  state.disabled = true;
  for (const layer of state.layers.values()) layer.disabled = true;
  restoreOriginals(model, state);
}

/** Enables the adapters again after disableAdapters. */
export function enableAdapters(model: Module): void {
  const state = loraState(model, "enableAdapters");
  state.disabled = false;
  for (const layer of state.layers.values()) layer.disabled = false;
  if (state.active !== null) activateAdapter(model, state.active);
}

/** Runs `fn` with the adapters disabled and enables them again afterwards. */
export function withAdaptersDisabled<T>(model: Module, fn: () => T): T {
  disableAdapters(model);
  try {
    return fn();
  } finally {
    enableAdapters(model);
  }
}

/**
 * Deletes an adapter and frees its tensors. A Linear left without adapters loses its hook.
 * If it was active, the first remaining adapter becomes active (PEFT: delete_adapter).
 */
export function deleteAdapter(model: Module, name: string): void {
  const state = loraState(model, "deleteAdapter");
  const record = adapterRecord(state, name, "deleteAdapter");
  throwIfMerged(state, "deleteAdapter");
  if (state.active === name) restoreOriginals(model, state);
  for (const path of record.targets) {
    const layer = state.layers.get(path);
    const w = layer?.adapters.get(name);
    if (layer === undefined || w === undefined) continue;
    layer.adapters.delete(name);
    layer.active = layer.active.filter((n) => n !== name);
    w.A.dispose();
    w.B.dispose();
    if (layer.adapters.size === 0) {
      layer.base.hook = null;
      state.layers.delete(path);
    }
  }
  for (const t of record.savedModules.values()) t.dispose();
  state.adapters.delete(name);
  if (state.active === name) {
    state.active = null;
    const next = state.adapters.keys().next();
    if (!next.done) activateAdapter(model, next.value);
  }
}

/**
 * Returns the active adapter's tensors for an optimizer, or throws saying why the model has
 * nothing to train and what to call first. `where` names the caller in the message.
 */
export function trainableAdapterParameters(model: Module, where: string): [string, Tensor][] {
  const state = findLoraState(model, where);
  if (state === null || state.adapters.size === 0) {
    throw new Error(
      `${where}: the model has no adapter to train; call applyLora, or loadAdapter with ` +
        `{ trainable: true }, first`,
    );
  }
  const known = [...state.adapters.keys()].join(", ");
  if (state.active === null) {
    throw new Error(
      `${where}: the model has no active adapter (adapters: ${known}); call setActiveAdapter first`,
    );
  }
  const name = state.active;
  const record = adapterRecord(state, name, where);
  if (!record.trainable) {
    throw new Error(
      `${where}: adapter "${name}" was added with trainable false, so nothing can learn; ` +
        `pass { trainable: true } to loadAdapter (or applyLora)`,
    );
  }
  if (state.disabled) {
    throw new Error(`${where}: the adapters are disabled; call enableAdapters first`);
  }
  for (const layer of state.layers.values()) {
    if (layer.merged.has(name)) {
      throw new Error(
        `${where}: adapter "${name}" is merged into the weights, so its LoRA matrices take no ` +
          `part in forward; call unmergeAdapter first`,
      );
    }
  }
  const named = adapterTensors(state, record);
  if (!named.some(([, t]) => t.requiresGrad)) {
    throw new Error(`${where}: adapter "${name}" has no tensor that requires a gradient`);
  }
  return named;
}

/**
 * Returns an adapter's tensors (default: the active adapter's) under the names PEFT saves them
 * with (base_model.model.<path>.lora_A.weight, ...): LoRA matrices in module order, then trained
 * biases, then modules_to_save copies. These are the tensors to give the optimizer.
 */
export function trainableParameters(model: Module, name?: string): [string, Tensor][] {
  const state = loraState(model, "trainableParameters");
  const adapterName = name ?? state.active;
  if (adapterName === null) return [];
  return adapterTensors(state, adapterRecord(state, adapterName, "trainableParameters"));
}

/** Returns every tensor saved for an adapter, keyed as in adapter_model.safetensors. */
export function adapterTensors(state: LoraState, record: AdapterRecord): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const path of record.targets) {
    const w = state.layers.get(path)?.adapters.get(record.name);
    if (w === undefined) continue;
    out.push([loraKey(path, "lora_A"), w.A], [loraKey(path, "lora_B"), w.B]);
  }
  for (const [path, t] of record.biases) out.push([savedBiasKey(state, path), t]);
  for (const [path, t] of record.savedModules) out.push([paramKey(path), t]);
  return out;
}

/**
 * Returns the file key of a trained bias. A LoRA-wrapped layer's own tensors sit under
 * ".base_layer." in PEFT's model, so PEFT saves (and loads) its bias under that name.
 */
export function savedBiasKey(state: LoraState, paramPath: string): string {
  const modulePath = paramPath.slice(0, paramPath.lastIndexOf("."));
  if (!state.layers.has(modulePath)) return paramKey(paramPath);
  return paramKey(`${modulePath}.base_layer${paramPath.slice(modulePath.length)}`);
}

// The LoRA state of one model: its adapted layers, the named adapters and which one is active.
// Kept beside the model (a WeakMap) so the model classes need no LoRA fields.
import type { Tensor } from "../engine/index.js";
import type { Module } from "../nn/module.js";
import { randomSourceOf } from "../nn/random-source.js";
import type { LoraConfig } from "./config.js";
import type { DropoutSource, LoraLinear } from "./layer.js";

/** One named adapter of a model. */
export interface AdapterRecord {
  readonly name: string;
  /** The config with target_modules resolved to what was applied (saved as is). */
  readonly config: LoraConfig;
  /** Paths of the Linear modules that carry this adapter. */
  readonly targets: readonly string[];
  /**
   * modules_to_save: parameter path → this adapter's own copy, swapped into the model while
   * the adapter is active.
   */
  readonly savedModules: Map<string, Tensor>;
  /** Biases this adapter trains (bias "all" or "lora_only"): the model's own tensors. */
  readonly biases: Map<string, Tensor>;
  /** Whether the adapter's tensors require gradients while it is active. */
  trainable: boolean;
}

export interface LoraState {
  readonly layers: Map<string, LoraLinear>;
  readonly adapters: Map<string, AdapterRecord>;
  /** The active adapter, or null after every adapter was deleted. */
  active: string | null;
  /** True while adapters are disabled (the base model runs). */
  disabled: boolean;
  readonly dropout: DropoutSource;
  /** Original model tensors replaced by modules_to_save copies, by parameter path. */
  readonly originals: Map<string, Tensor>;
}

const states = new WeakMap<Module, LoraState>();

/**
 * Returns the model's LoRA state, or null if no adapter was ever applied. Throws if the model
 * was disposed.
 */
export function findLoraState(model: Module, where = "LoRA"): LoraState | null {
  model.throwIfDisposed(where);
  return states.get(model) ?? null;
}

/** Returns the model's LoRA state, or throws an error naming applyLora and loadAdapter. */
export function loraState(model: Module, where: string): LoraState {
  const state = findLoraState(model, where) ?? undefined;
  if (state === undefined) {
    throw new Error(`${where}: the model has no LoRA adapter; call applyLora or loadAdapter first`);
  }
  return state;
}

/**
 * Returns the model's LoRA state, creating an empty one on first use. The model's dispose()
 * then frees every adapter tensor too.
 */
export function ensureLoraState(model: Module, where: string): LoraState {
  let state = findLoraState(model, where) ?? undefined;
  if (state === undefined) {
    state = {
      layers: new Map(),
      adapters: new Map(),
      active: null,
      disabled: false,
      dropout: randomSourceOf(model),
      originals: new Map(),
    };
    states.set(model, state);
    model.onDispose(() => releaseLoraState(model, new Set()));
  }
  return state;
}

/**
 * Frees every tensor the model's LoRA state owns except those in `keep`, then removes the state.
 * The tensors are the LoRA matrices, trained bias copies, modules_to_save copies and the
 * originals those replaced, each with its gradient. A tensor that is also a model parameter is
 * freed once, because Tensor.dispose ignores a second call.
 */
export function releaseLoraState(model: Module, keep: ReadonlySet<Tensor>): void {
  const state = states.get(model);
  if (state === undefined) return;
  const owned: Tensor[] = [...state.originals.values()];
  for (const layer of state.layers.values()) {
    for (const weights of layer.adapters.values()) owned.push(weights.A, weights.B);
  }
  for (const record of state.adapters.values()) {
    owned.push(...record.savedModules.values(), ...record.biases.values());
  }
  for (const t of owned) if (!keep.has(t)) t.dispose();
  states.delete(model);
}

/** Returns the adapter record or throws listing the model's adapters. */
export function adapterRecord(state: LoraState, name: string, where: string): AdapterRecord {
  const record = state.adapters.get(name);
  if (record === undefined) {
    const known = [...state.adapters.keys()].join(", ") || "none";
    throw new Error(`${where}: no adapter named "${name}" (adapters: ${known})`);
  }
  return record;
}

// The generator that training draws dropout masks from, one per model. The base model's own
// dropout (attention probabilities, residual branches, embeddings) and LoRA's input dropout
// share it, so that a checkpoint saves one generator state and gradient checkpointing rewinds
// one generator to draw a recomputed block's masks again.
import { Rng } from "../engine/random.js";
import type { Module } from "./module.js";

/** A replaceable generator: restoring a checkpoint or rewinding for a recompute swaps `rng`. */
export interface RandomSource {
  rng: Rng | null;
}

/** Seed of the generator a model gets when nothing has set one (LoRA's default seed too). */
export const DEFAULT_DROPOUT_SEED = 0;

const sources = new WeakMap<Module, RandomSource>();

/** Returns the random source of `model` (the root module), creating an empty one on first use. */
export function randomSourceOf(model: Module): RandomSource {
  let source = sources.get(model);
  if (source === undefined) {
    source = { rng: null };
    sources.set(model, source);
  }
  return source;
}

/** Returns the model's random source with a generator, seeded DEFAULT_DROPOUT_SEED if it had none. */
export function seededRandomSource(model: Module): RandomSource {
  const source = randomSourceOf(model);
  source.rng ??= new Rng(DEFAULT_DROPOUT_SEED);
  return source;
}

// Logit processing and token choice for one row of next-token logits [V], following the order
// and semantics of transformers' generate(): repetition penalty, then temperature, top-k and
// top-p, then a draw from the softmax (or argmax when greedy).
import { Rng } from "../engine/index.js";

/** A source of uniform numbers in [0, 1). */
export type UniformSource = () => number;

/**
 * Returns a seeded source of uniform numbers in [0, 1) over the engine's counter-based Rng, so
 * a seed gives the same tokens on every machine and thread count.
 */
export function seededUniform(seed: number): UniformSource {
  const rng = new Rng(seed);
  return () => rng.uniformValues(1)[0];
}

/**
 * Applies transformers' repetition penalty in place: the logit of every token in `seen` is
 * divided by `penalty` when positive and multiplied by it when negative.
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  seen: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const value = logits[id];
    logits[id] = value < 0 ? value * penalty : value / penalty;
  }
}

/** Divides the logits by `temperature` in place. */
export function applyTemperature(logits: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < logits.length; i++) logits[i] /= temperature;
}

/** Sets every logit below the k-th largest to -Infinity (ties with the k-th are kept). */
export function applyTopK(logits: Float32Array, k: number): void {
  if (k <= 0 || k >= logits.length) return;
  const sorted = Float32Array.from(logits).sort();
  const threshold = sorted[sorted.length - k];
  for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
}

/**
 * Nucleus filtering as transformers' TopPLogitsWarper does it: sorting ascending, tokens whose
 * cumulative probability is <= 1 - topP are removed, and the most likely token is always kept.
 */
export function applyTopP(logits: Float32Array, topP: number): void {
  if (topP >= 1) return;
  const probs = softmax(logits);
  const order = Array.from(probs.keys()).sort((a, b) => probs[a] - probs[b]);
  let cumulative = 0;
  for (let rank = 0; rank < order.length - 1; rank++) {
    cumulative += probs[order[rank]];
    if (cumulative > 1 - topP) break;
    logits[order[rank]] = -Infinity;
  }
}

/** Returns softmax(logits) in float64 arithmetic, stored as float64. */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = logits[i] === -Infinity ? 0 : Math.exp(logits[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** Returns the index of the largest logit; the first one on ties, as torch.argmax. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Draws one index from softmax(logits) by inverting the cumulative distribution at `u`. */
export function sampleIndex(logits: Float32Array, u: number): number {
  const probs = softmax(logits);
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  return last;
}

export interface SamplingOptions {
  /** 0 (or undefined) = greedy decoding; otherwise the softmax temperature. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches topP (1 = off). */
  topP?: number;
  /** transformers' repetition_penalty (1 = off); > 1 discourages tokens already present. */
  repetitionPenalty?: number;
}

/** Chooses the next token from one row of logits; modifies `logits` in place. */
export function chooseToken(
  logits: Float32Array,
  previous: readonly number[],
  options: SamplingOptions,
  uniform: UniformSource,
): number {
  applyRepetitionPenalty(logits, previous, options.repetitionPenalty ?? 1);
  const temperature = options.temperature ?? 0;
  if (temperature === 0) return argmax(logits);
  applyTemperature(logits, temperature);
  applyTopK(logits, options.topK ?? 0);
  applyTopP(logits, options.topP ?? 1);
  return sampleIndex(logits, uniform());
}

/** Throws unless the sampling options are in range, naming the option. */
export function checkSamplingOptions(options: SamplingOptions): void {
  const { temperature = 0, topK = 0, topP = 1, repetitionPenalty = 1 } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new Error(`generate: temperature must be >= 0 (0 = greedy), got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new Error(`generate: topK must be a whole number >= 0 (0 = off), got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new Error(`generate: topP must be in (0, 1] (1 = off), got ${topP}`);
  }
  if (!(repetitionPenalty > 0) || !Number.isFinite(repetitionPenalty)) {
    throw new Error(`generate: repetitionPenalty must be > 0 (1 = off), got ${repetitionPenalty}`);
  }
}

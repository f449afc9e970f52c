// Per-forward bookkeeping shared by the architectures: positions, the key padding mask and the
// KV cache, derived once from the inputs before the layers run.
//
// Legend: B batch, T new tokens, S cached + new tokens.
import { Tensor } from "../engine/index.js";
import { formatShape } from "../engine/tensor.js";
import type { KVCache } from "../generate/kv-cache.js";
import type { RandomSource } from "../nn/random-source.js";
import type { ForwardOptions } from "./types.js";

export interface ForwardContext {
  batch: number;
  tokens: number;
  /** Positions i32 [B, T] (for RoPE or learned position tables). */
  positions: Tensor;
  /** Key padding mask i32 [B, S] (1 real, 0 padding), or undefined when every key is real. */
  keyMask: Tensor | undefined;
  cache: KVCache | null;
  /**
   * The model's dropout generator when training applies the base model's own dropout (the
   * model sets it after prepareForward), else null. Ops read `rng` when they draw, because
   * gradient checkpointing swaps it to draw a recomputed block's masks again.
   */
  dropout: RandomSource | null;
}

/**
 * Builds the positions and key mask for one forward call. Real tokens get position
 * cumsum(mask) - 1 over the row, as in transformers' generate(). That is 0..T-1 without padding
 * and skips left padding. Padding tokens keep their index.
 */
export function prepareForward(
  where: string,
  inputIds: Tensor,
  options: ForwardOptions,
): ForwardContext {
  if (inputIds.dtype !== "i32" || inputIds.ndim !== 2) {
    throw new Error(`${where}: inputIds must be i32 [B, T], got ${inputIds.describe()}`);
  }
  const [batch, tokens] = inputIds.shape;
  const cache = options.cache ?? null;
  const past = cache?.length ?? 0;
  if (cache !== null && cache.batch !== batch) {
    throw new Error(`${where}: the KV cache has batch ${cache.batch}, inputIds has ${batch}`);
  }
  const newMask = readNewMask(where, options.attentionMask, batch, tokens, past);
  cache?.begin(tokens, newMask);

  const positions = options.positions ?? derivePositions(newMask, batch, tokens, past, cache);
  const keyMask = buildKeyMask(newMask, batch, tokens, cache);
  return {
    batch,
    tokens,
    positions: expandPositions(where, positions, batch, tokens),
    keyMask,
    cache,
    dropout: null,
  };
}

/** Returns the mask values of the T new tokens [B * T], or null when there is no mask. */
function readNewMask(
  where: string,
  mask: Tensor | undefined,
  batch: number,
  tokens: number,
  past: number,
): Float32Array | null {
  if (mask === undefined) return null;
  const width = mask.shape[1];
  if (mask.ndim !== 2 || mask.shape[0] !== batch || (width !== tokens && width !== past + tokens)) {
    throw new Error(
      `${where}: attentionMask must be [${batch}, ${tokens}] or [${batch}, ${past + tokens}] ` +
        `(cached + new tokens), got ${formatShape(mask.shape)}`,
    );
  }
  const values = mask.toFloat32Array();
  if (width === tokens) return values;
  const out = new Float32Array(batch * tokens);
  for (let b = 0; b < batch; b++) {
    out.set(values.subarray(b * width + past, (b + 1) * width), b * tokens);
  }
  return out;
}

function derivePositions(
  mask: Float32Array | null,
  batch: number,
  tokens: number,
  past: number,
  cache: KVCache | null,
): Tensor {
  const out = new Int32Array(batch * tokens);
  for (let b = 0; b < batch; b++) {
    let real = cache?.realCount(b) ?? 0;
    for (let t = 0; t < tokens; t++) {
      const isReal = mask === null || mask[b * tokens + t] !== 0;
      out[b * tokens + t] = isReal ? real : past + t;
      if (isReal) real++;
    }
  }
  return Tensor.from(out, [batch, tokens], "i32");
}

function expandPositions(where: string, positions: Tensor, batch: number, tokens: number): Tensor {
  if (positions.dtype !== "i32") {
    throw new Error(`${where}: positions must be i32, got ${positions.describe()}`);
  }
  if (positions.ndim === 2 && positions.shape[0] === batch && positions.shape[1] === tokens) {
    return positions;
  }
  if (positions.ndim === 1 && positions.shape[0] === tokens) {
    const row = positions.i32();
    const out = new Int32Array(batch * tokens);
    for (let b = 0; b < batch; b++) out.set(row, b * tokens);
    return Tensor.from(out, [batch, tokens], "i32");
  }
  throw new Error(
    `${where}: positions must be i32 [${batch}, ${tokens}] or [${tokens}], ` +
      `got ${formatShape(positions.shape)}`,
  );
}

function buildKeyMask(
  newMask: Float32Array | null,
  batch: number,
  tokens: number,
  cache: KVCache | null,
): Tensor | undefined {
  if (cache === null) {
    if (newMask === null || newMask.every((m) => m !== 0)) return undefined;
    return Tensor.from(
      Int32Array.from(newMask, (m) => (m !== 0 ? 1 : 0)),
      [batch, tokens],
      "i32",
    );
  }
  const total = cache.length + tokens;
  const out = new Int32Array(batch * total);
  for (let b = 0; b < batch; b++) out.set(cache.rowMask(b), b * total);
  if (out.every((m) => m !== 0)) return undefined;
  return Tensor.from(out, [batch, total], "i32");
}

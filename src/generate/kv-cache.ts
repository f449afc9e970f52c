// The key/value cache for incremental decoding. Each layer keeps persistent buffers
// [B, Hkv, maxLength, D] that survive endStep(). A step appends its T new keys and values, and
// attention reads the first S = length + T positions of the buffers in place (append) or from an
// arena copy (update).
//
// Legend: B batch, Hkv key/value heads, T new tokens, S cached + new tokens, D head size.
import { Tensor } from "../engine/index.js";
import { formatShape } from "../engine/tensor.js";

export interface KVCacheOptions {
  numLayers: number;
  batch: number;
  numKvHeads: number;
  headDim: number;
  /** Capacity in tokens: the prompt (with padding) plus every token to be generated. */
  maxLength: number;
}

export class KVCache {
  readonly numLayers: number;
  readonly batch: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly maxLength: number;
  /** Positions already stored (committed) in every layer. */
  length = 0;
  private pending = 0;
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];
  /** 1 = real token, 0 = padding, [B, maxLength]. */
  private readonly mask: Int32Array;
  /** Real (unpadded) tokens stored per row, for the positions of the next tokens. */
  private readonly realCounts: Int32Array;

  constructor(options: KVCacheOptions) {
    this.numLayers = options.numLayers;
    this.batch = options.batch;
    this.numKvHeads = options.numKvHeads;
    this.headDim = options.headDim;
    this.maxLength = options.maxLength;
    const shape = [this.batch, this.numKvHeads, this.maxLength, this.headDim];
    for (let i = 0; i < this.numLayers; i++) {
      this.keys.push(Tensor.empty(shape, "f32", { persistent: true, name: `cache.keys.${i}` }));
      this.values.push(Tensor.empty(shape, "f32", { persistent: true, name: `cache.values.${i}` }));
    }
    this.mask = new Int32Array(this.batch * this.maxLength);
    this.realCounts = new Int32Array(this.batch);
  }

  /** Bytes held by the key and value buffers. */
  get byteLength(): number {
    return this.keys.reduce((sum, k) => sum + 2 * k.byteLength, 0);
  }

  /**
   * Starts a forward step of `tokens` new positions with their padding mask ([B, T], 1 = real;
   * null = all real). Call commit() after the last layer has been updated.
   */
  begin(tokens: number, mask: ArrayLike<number> | null): void {
    if (this.length + tokens > this.maxLength) {
      throw new Error(
        `KVCache: ${this.length} cached + ${tokens} new tokens exceed the capacity of ` +
          `${this.maxLength}; create the cache with a larger maxLength`,
      );
    }
    for (let b = 0; b < this.batch; b++) {
      for (let t = 0; t < tokens; t++) {
        const real = mask === null || mask[b * tokens + t] !== 0;
        this.mask[b * this.maxLength + this.length + t] = real ? 1 : 0;
      }
    }
    this.pending = tokens;
  }

  /** Returns the padding mask of row `b` over the S = length + T positions of this step. */
  rowMask(b: number): Int32Array {
    const start = b * this.maxLength;
    return this.mask.subarray(start, start + this.length + this.pending);
  }

  /** Real tokens stored in row `b` before this step. */
  realCount(b: number): number {
    return this.realCounts[b];
  }

  /**
   * Appends one layer's new keys and values [B, Hkv, T, D] and returns the cached keys and
   * values of positions 0..S-1 as arena tensors [B, Hkv, S, D].
   */
  update(layer: number, keys: Tensor, values: Tensor): { keys: Tensor; values: Tensor } {
    this.checkFresh("KVCache.update", layer, keys, values);
    this.store(this.keys[layer], keys);
    this.store(this.values[layer], values);
    return { keys: this.read(this.keys[layer]), values: this.read(this.values[layer]) };
  }

  /**
   * Appends one layer's new keys and values [B, Hkv, T, D] and returns the layer's persistent
   * buffers [B, Hkv, maxLength, D], of which the first `length` = S positions are valid. Pass
   * them to attention() with keyLength S: it reads them in place, so a step copies only its T
   * new positions. The buffers change at the next append, so use them before then.
   */
  append(
    layer: number,
    keys: Tensor,
    values: Tensor,
  ): { keys: Tensor; values: Tensor; length: number } {
    this.checkFresh("KVCache.append", layer, keys, values);
    this.store(this.keys[layer], keys);
    this.store(this.values[layer], values);
    const length = this.length + this.pending;
    return { keys: this.keys[layer], values: this.values[layer], length };
  }

  /** Marks this step's positions as stored. */
  commit(): void {
    for (let b = 0; b < this.batch; b++) {
      const row = this.rowMask(b);
      for (let t = this.length; t < row.length; t++) this.realCounts[b] += row[t];
    }
    this.length += this.pending;
    this.pending = 0;
  }

  /** Frees the persistent buffers. The cache cannot be used afterwards. */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }

  private checkFresh(where: string, layer: number, keys: Tensor, values: Tensor): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new Error(`${where}: layer ${layer} is outside 0..${this.numLayers - 1}`);
    }
    const expected = [this.batch, this.numKvHeads, this.pending, this.headDim];
    for (const [name, t] of [
      ["keys", keys],
      ["values", values],
    ] as const) {
      if (t.dtype !== "f32" || t.shape.some((d, i) => d !== expected[i]) || t.ndim !== 4) {
        throw new Error(
          `${where}: ${name} must be f32 ${formatShape(expected)}, got ${t.describe()}`,
        );
      }
    }
  }

  // Copies the T fresh positions of every (b, kv head) row after the `length` stored ones.
  private store(buffer: Tensor, fresh: Tensor): void {
    const { batch, numKvHeads, maxLength, headDim, length, pending } = this;
    const stored = buffer.f32();
    const src = fresh.f32();
    for (let row = 0; row < batch * numKvHeads; row++) {
      const freshRow = src.subarray(row * pending * headDim, (row + 1) * pending * headDim);
      stored.set(freshRow, (row * maxLength + length) * headDim);
    }
  }

  // Returns a contiguous arena copy [B, Hkv, S, D] of the first S = length + T positions.
  private read(buffer: Tensor): Tensor {
    const { batch, numKvHeads, maxLength, headDim } = this;
    const total = this.length + this.pending;
    const out = Tensor.empty([batch, numKvHeads, total, headDim]);
    const stored = buffer.f32();
    const dst = out.f32();
    for (let row = 0; row < batch * numKvHeads; row++) {
      const base = row * maxLength * headDim;
      dst.set(stored.subarray(base, base + total * headDim), row * total * headDim);
    }
    return out;
  }
}

// Batches of tokenized examples, right-padded to the longest example of the batch.
// Dimension legend: B batch size, T tokens of the longest example (after rounding up).
//
// With shuffling, each epoch's order depends on (seed, epoch) alone. The examples are shuffled
// and cut into windows of `bucketBatches` batches. Each window is sorted by length, so a batch
// contains similar lengths and little padding, and cut into batches. Then the batches are
// shuffled. A position (epoch, index) therefore restores the exact stream on resume.
import { createRandom, shuffleInPlace } from "./random.js";
import { IGNORE_INDEX, scoredLabels, type TokenizedExample } from "./tokenize.js";

/** One padded batch, row-major [B, T]. */
export interface Batch {
  /** Token ids, the pad id after each example's end. */
  inputIds: Int32Array;
  /** Labels, -100 on padding and masked tokens. */
  labels: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Indices of the batch's examples in the iterator's example list. */
  exampleIndices: number[];
  /** Real tokens (attention mask 1), and the tokens the loss scores (see scoredLabels). */
  tokens: number;
  learnedTokens: number;
}

/** The position of the next batch: `index` counts batches within `epoch`. */
export interface BatchPosition {
  epoch: number;
  index: number;
}

export interface BatchOptions {
  batchSize: number;
  padTokenId: number;
  /** Shuffle with bucketing (training); false keeps the example order (evaluation). */
  shuffle?: boolean;
  seed?: number;
  /** Batches per length-sorting window when shuffling (default 32); 1 turns bucketing off. */
  bucketBatches?: number;
  /** Drop the last, smaller batch of an epoch (default false). */
  dropLast?: boolean;
  /** Round T up to a multiple of this (default 1). */
  padToMultipleOf?: number;
}

/** Pads examples into one batch. */
export function collate(
  examples: readonly TokenizedExample[],
  indices: readonly number[],
  padTokenId: number,
  padToMultipleOf = 1,
): Batch {
  const B = indices.length;
  let longest = 0;
  for (const i of indices) longest = Math.max(longest, examples[i].inputIds.length);
  const T = Math.ceil(longest / padToMultipleOf) * padToMultipleOf;

  const inputIds = new Int32Array(B * T).fill(padTokenId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(B * T);
  let tokens = 0;
  let learnedTokens = 0;
  indices.forEach((exampleIndex, row) => {
    const example = examples[exampleIndex];
    const n = example.inputIds.length;
    inputIds.set(example.inputIds, row * T);
    labels.set(example.labels, row * T);
    attentionMask.fill(1, row * T, row * T + n);
    tokens += n;
    learnedTokens += scoredLabels(example.labels);
  });
  return {
    inputIds,
    labels,
    attentionMask,
    batchSize: B,
    seqLen: T,
    exampleIndices: [...indices],
    tokens,
    learnedTokens,
  };
}

/**
 * An endless stream of batches over epochs. `position` and `seek` save and restore where the
 * stream is, for exact resume from a checkpoint.
 */
export class BatchIterator {
  private epoch = 0;
  private index = 0;
  private plan: number[][] | null = null;
  private readonly shuffle: boolean;
  private readonly seed: number;
  private readonly bucketBatches: number;
  private readonly dropLast: boolean;
  private readonly padToMultipleOf: number;

  constructor(
    private readonly examples: readonly TokenizedExample[],
    private readonly options: BatchOptions,
  ) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`BatchIterator: batchSize must be a positive integer, got ${batchSize}`);
    }
    if (examples.length === 0) throw new Error("BatchIterator: no examples to batch");
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed ?? 0;
    this.bucketBatches = options.bucketBatches ?? 32;
    this.dropLast = options.dropLast ?? false;
    this.padToMultipleOf = options.padToMultipleOf ?? 1;
    if (this.dropLast && examples.length < batchSize) {
      throw new Error(
        `BatchIterator: dropLast with ${examples.length} examples and batchSize ${batchSize} ` +
          `leaves no batch; lower batchSize or turn dropLast off`,
      );
    }
  }

  /** Number of batches in one epoch. */
  get batchesPerEpoch(): number {
    const n = this.examples.length / this.options.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The position of the batch that `next()` returns next. */
  get position(): BatchPosition {
    return { epoch: this.epoch, index: this.index };
  }

  /** Moves to a saved position. */
  seek(position: BatchPosition): void {
    const { epoch, index } = position;
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(index) || index < 0) {
      throw new Error(`BatchIterator.seek: invalid position ${JSON.stringify(position)}`);
    }
    if (index > this.batchesPerEpoch) {
      throw new Error(
        `BatchIterator.seek: index ${index} is past the ${this.batchesPerEpoch} batches of an ` +
          `epoch; the checkpoint was written for other data or another batch size`,
      );
    }
    if (epoch !== this.epoch) this.plan = null;
    this.epoch = epoch;
    this.index = index;
  }

  /** Returns the next batch, moving to the next epoch after the last one. */
  next(): Batch {
    if (this.index >= this.batchesPerEpoch) {
      this.epoch++;
      this.index = 0;
      this.plan = null;
    }
    this.plan ??= this.planEpoch(this.epoch);
    const indices = this.plan[this.index];
    this.index++;
    return collate(this.examples, indices, this.options.padTokenId, this.padToMultipleOf);
  }

  /** Returns the batches of one epoch as lists of example indices. */
  planEpoch(epoch: number): number[][] {
    const { batchSize } = this.options;
    const order = this.examples.map((_, i) => i);
    const batches: number[][] = [];
    if (!this.shuffle) {
      for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
      return batches.slice(0, this.batchesPerEpoch);
    }

    const random = createRandom(this.seed, epoch);
    shuffleInPlace(order, random);
    const window = batchSize * this.bucketBatches;
    const length = (i: number) => this.examples[i].inputIds.length;
    for (let w = 0; w < order.length; w += window) {
      const bucket = order.slice(w, w + window).sort((a, b) => length(a) - length(b) || a - b);
      for (let i = 0; i < bucket.length; i += batchSize)
        batches.push(bucket.slice(i, i + batchSize));
    }

    // Only the final batch of the epoch can be short; with dropLast it is removed before the
    // batch order is shuffled.
    if (this.dropLast && batches[batches.length - 1].length < batchSize) batches.pop();
    return shuffleInPlace(batches, random);
  }
}

// Evaluation loss and perplexity over the unmasked tokens of a whole dataset: the sum of the
// per-token losses divided by their count, so long and short examples weigh by their tokens
// (a mean of per-batch means would not).
import { endStep, linearCrossEntropySum, noGrad, reshape, Tensor } from "../engine/index.js";
import { BatchIterator, type Batch } from "../data/batches.js";
import { IGNORE_INDEX, type TokenizedExample } from "../data/tokenize.js";
import { shiftLabels } from "../models/base.js";
import type { CausalLM } from "../models/types.js";

export interface LossReport {
  /** Mean loss per unmasked target token, in nats. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Unmasked target tokens scored (labels other than -100 after the shift). */
  tokens: number;
  examples: number;
}

/** Counts the targets a causal-LM loss scores in a batch: labels[t + 1] != -100 per row. */
export function countTargets(batch: Batch): number {
  const { labels, batchSize, seqLen } = batch;
  let count = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let t = 1; t < seqLen; t++) if (labels[b * seqLen + t] !== IGNORE_INDEX) count++;
  }
  return count;
}

/** Returns the mean loss tensor of one batch, with gradients recorded if enabled. */
export function batchLoss(model: CausalLM, batch: Batch): Tensor {
  const shape = [batch.batchSize, batch.seqLen];
  return model.loss(
    Tensor.from(batch.inputIds, shape, "i32"),
    Tensor.from(batch.labels, shape, "i32"),
    {
      attentionMask: Tensor.from(batch.attentionMask, shape, "i32"),
    },
  );
}

/**
 * Returns the summed loss and the target count of one batch, without gradients. The op sums
 * the per-row losses in float64, so adding batches loses nothing to a mean's rounding.
 */
export function batchLossSum(model: CausalLM, batch: Batch): { sum: number; count: number } {
  const shape = [batch.batchSize, batch.seqLen];
  return noGrad(() => {
    const hidden = model.forward(Tensor.from(batch.inputIds, shape, "i32"), {
      attentionMask: Tensor.from(batch.attentionMask, shape, "i32"),
    }); // [B, T, C]
    const [b, t, c] = hidden.shape;
    const labels = shiftLabels(Tensor.from(batch.labels, shape, "i32"), IGNORE_INDEX); // [B * T]
    return linearCrossEntropySum(reshape(hidden, [b * t, c]), model.lmHeadWeight(), labels);
  });
}

/**
 * Computes the loss and perplexity of `model` over `examples` without gradients, in batches of
 * `batchSize` in dataset order. Frees the arena after each batch (endStep), and throws when no
 * example has an unmasked target.
 */
export function evaluateLoss(
  model: CausalLM,
  examples: readonly TokenizedExample[],
  options: { batchSize: number; padTokenId: number },
): LossReport {
  if (examples.length === 0) throw new Error("evaluateLoss: no examples to evaluate");
  const iterator = new BatchIterator(examples, { ...options, shuffle: false });
  const wasTraining = model.training;
  model.eval();
  let sum = 0;
  let tokens = 0;
  try {
    for (let i = 0; i < iterator.batchesPerEpoch; i++) {
      const result = batchLossSum(model, iterator.next());
      sum += result.sum;
      tokens += result.count;
      endStep();
    }
  } finally {
    model.train(wasTraining);
  }
  if (tokens === 0) {
    throw new Error(
      `evaluateLoss: none of the ${examples.length} examples has an unmasked target token; ` +
        `check the labels (with --mask-prompt every answer must survive truncation)`,
    );
  }
  const loss = sum / tokens;
  return { loss, perplexity: Math.exp(loss), tokens, examples: examples.length };
}

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
  const batches = lossBatches(model, examples, options);
  for (let next = batches.next(); !next.done; next = batches.next());
  return batches.report();
}

/**
 * Computes the same report as evaluateLoss, but returns to the event loop between batches, so a
 * SIGINT handler can run. Returns null when `signal` aborts before the last batch.
 */
export async function evaluateLossInterruptible(
  model: CausalLM,
  examples: readonly TokenizedExample[],
  options: { batchSize: number; padTokenId: number; signal?: AbortSignal },
): Promise<LossReport | null> {
  const batches = lossBatches(model, examples, options);
  for (let next = batches.next(); !next.done; next = batches.next()) {
    await new Promise((resolve) => setImmediate(resolve));
    if (options.signal?.aborted) {
      batches.stop();
      return null;
    }
  }
  return batches.report();
}

/** Steps through the loss batches one at a time; see evaluateLoss. */
function lossBatches(
  model: CausalLM,
  examples: readonly TokenizedExample[],
  options: { batchSize: number; padTokenId: number },
): { next(): { done: boolean }; stop(): void; report(): LossReport } {
  if (examples.length === 0) throw new Error("evaluateLoss: no examples to evaluate");
  const iterator = new BatchIterator(examples, {
    batchSize: options.batchSize,
    padTokenId: options.padTokenId,
    shuffle: false,
  });
  const wasTraining = model.training;
  let sum = 0;
  let tokens = 0;
  let done = 0;
  const stop = () => model.train(wasTraining);
  return {
    next() {
      if (done >= iterator.batchesPerEpoch) return { done: true };
      model.eval();
      try {
        const result = batchLossSum(model, iterator.next());
        sum += result.sum;
        tokens += result.count;
        endStep();
      } finally {
        stop();
      }
      done++;
      return { done: false };
    },
    stop,
    report: () => lossReport(sum, tokens, examples.length),
  };
}

function lossReport(sum: number, tokens: number, examples: number): LossReport {
  if (tokens === 0) {
    throw new Error(
      `evaluateLoss: none of the ${examples} examples has an unmasked target token; ` +
        `check the labels (with --mask-prompt every answer must survive truncation)`,
    );
  }
  const loss = sum / tokens;
  return { loss, perplexity: Math.exp(loss), tokens, examples };
}

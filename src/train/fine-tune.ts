// LoRA fine-tuning as one library call: builds the optimizer, the batch stream, validation and
// the checkpoint files around trainLoop, and saves the final adapter in PEFT format.
import { existsSync, rmSync } from "node:fs";
import { formatValue } from "../engine/format-value.js";
import { makeFolder } from "../io/folders.js";
import { randomSourceOf } from "../nn/random-source.js";
import { join } from "node:path";
import type { Tensor } from "../engine/index.js";
import { BatchIterator, type Batch } from "../data/batches.js";
import type { TokenizedExample } from "../data/tokenize.js";
import { decodeToFloat32 } from "../io/dtypes.js";
import { readSafetensors, writeSafetensors } from "../io/safetensors.js";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, saveAdapter } from "../lora/adapter-io.js";
import { trainableAdapterParameters } from "../lora/adapters.js";
import { Rng, type RngState } from "../engine/random.js";
import type { CausalLM } from "../models/types.js";
import { batchLoss, countTargets, evaluateLossInterruptible } from "../eval/loss.js";
import { AdamW, clipGradNorm, gradNorm } from "../engine/optim.js";
import { CheckpointStore, type CheckpointParts } from "./checkpoint-store.js";
import { enableGradientCheckpointing } from "./checkpointing.js";
import { MetricsLog } from "./progress.js";
import { findRunFolderProblem, METRICS_FILE } from "./run-folder.js";
import type { ScheduleKind } from "./schedule.js";
import {
  trainLoop,
  type BatchSource,
  type StatefulRng,
  type TrainLoopOptions,
  type TrainResult,
} from "./trainer.js";
import type { StepMetrics, ValidationMetrics } from "./progress.js";

export const OPTIMIZER_FILE = "optimizer.safetensors";

export interface FineTuneOptions {
  /** A model with an active, trainable LoRA adapter (applyLora or loadAdapter). */
  model: CausalLM;
  train: readonly TokenizedExample[];
  validation?: readonly TokenizedExample[] | null;
  padTokenId: number;
  batchSize: number;
  gradAccum?: number;
  steps: number;
  lr: number;
  schedule?: ScheduleKind;
  warmupSteps?: number;
  minLrRatio?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Gradient-norm clipping threshold; null disables clipping. */
  maxGradNorm?: number | null;
  evalEvery?: number;
  evalBatchSize?: number;
  saveEvery?: number;
  keepCheckpoints?: number;
  /** Output folder: final adapter, checkpoints/ and metrics.jsonl. Null keeps nothing on disk. */
  outDir: string | null;
  resume?: boolean;
  seed: number;
  gradientCheckpointing?: boolean;
  /** The generator saved in checkpoints. Default: the model's dropout generator (dropoutRng). */
  rng?: StatefulRng;
  /** Run settings stored in checkpoints and compared on resume. */
  settings?: Record<string, unknown>;
  signal?: AbortSignal;
  onStep?: (metrics: StepMetrics) => void;
  onValidation?: (metrics: ValidationMetrics) => void;
  log?: (line: string) => void;
}

export interface FineTuneResult extends TrainResult {
  /** The folder of the final PEFT adapter, when training completed with an output folder. */
  adapterDir: string | null;
}

/**
 * Creates the output folder, or rejects a file path and, for a new run, a folder that contains
 * another run's files (so that metrics and checkpoints of two runs never mix). A new run removes
 * the metrics log of a run that stopped before its first checkpoint.
 */
function prepareOutDir(outDir: string, resume: boolean): void {
  const problem = findRunFolderProblem(outDir, resume);
  if (problem === "file") {
    throw new Error(`fineTune: output path ${outDir} is a file; pass a folder path for outDir`);
  }
  if (problem === "not-empty") {
    throw new Error(
      `fineTune: outDir ${outDir} is not empty; pass another folder as outDir, ` +
        `or resume: true to continue the run saved in it`,
    );
  }
  // "no-checkpoint" is reported by trainLoop, which also covers a missing outDir.
  makeFolder(outDir);
  if (!resume) rmSync(join(outDir, METRICS_FILE), { force: true });
}

/**
 * Rejects options that would otherwise fail deep in the schedule or the batch iterator, naming
 * them as fineTune's caller wrote them.
 */
function checkFineTuneOptions(options: FineTuneOptions): void {
  const wholeNumbers: [keyof FineTuneOptions, unknown][] = [
    ["steps", options.steps],
    ["batchSize", options.batchSize],
  ];
  for (const [name, value] of wholeNumbers) {
    if (!(typeof value === "number" && Number.isInteger(value) && value >= 1)) {
      throw new Error(`fineTune: ${name} must be a whole number >= 1, got ${formatValue(value)}`);
    }
  }
  if (options.train.length === 0) {
    throw new Error(
      `fineTune: train has no examples; pass the tokenized training examples ` +
        `(tokenizeSamples(...).examples, or the train part of splitByGroup)`,
    );
  }
}

/**
 * Wraps `onStep` so that the first step a resumed run takes removes the adapter that an earlier
 * end of the run saved in `outDir`. That adapter is older than the checkpoints from then on, and
 * eval or generate would read it without a word. The new one is saved when the run ends.
 */
function removeEarlierAdapterOnFirstStep(
  outDir: string,
  onStep: ((metrics: StepMetrics) => void) | undefined,
  log: ((line: string) => void) | undefined,
): (metrics: StepMetrics) => void {
  let checked = false;
  return (metrics) => {
    if (!checked) {
      checked = true;
      const weights = join(outDir, ADAPTER_WEIGHTS_FILE);
      if (existsSync(weights)) {
        rmSync(weights, { force: true });
        rmSync(join(outDir, ADAPTER_CONFIG_FILE), { force: true });
        log?.(
          `removed the adapter that the run's earlier end saved in ${outDir}; the run saves a ` +
            `new one when it ends, and until then the latest checkpoint folder is the adapter`,
        );
      }
    }
    onStep?.(metrics);
  };
}

/** Adapts the data module's BatchIterator to the trainer's BatchSource interface. */
class IteratorSource implements BatchSource<Batch> {
  constructor(private readonly iterator: BatchIterator) {}
  next(): Batch {
    return this.iterator.next();
  }
  get epoch(): number {
    return this.iterator.position.epoch;
  }
  position(): unknown {
    return this.iterator.position;
  }
  restore(position: unknown): void {
    this.iterator.seek(position as { epoch: number; index: number });
  }
}

/**
 * Returns the model's dropout generator (randomSourceOf, which LoRA's and the base model's
 * dropout share) as a StatefulRng. Restoring replaces the generator with one rebuilt from the
 * saved state, so that later draws continue the interrupted run's.
 */
export function dropoutRng(model: CausalLM): StatefulRng {
  const source = randomSourceOf(model);
  return {
    state: () => source.rng?.state() ?? null,
    setState: (state) => {
      if (state !== null) source.rng = Rng.fromState(state as RngState);
    },
  };
}

/** Saves and restores the adapter tensors and AdamW state of a checkpoint folder. */
function checkpointParts(
  model: CausalLM,
  named: readonly [string, Tensor][],
  optimizer: AdamW,
): CheckpointParts {
  return {
    save: (dir) => {
      saveAdapter(model, dir);
      const { tensors, metadata } = optimizer.exportState(named.map(([key]) => key));
      writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, metadata);
    },
    load: (dir) => {
      restoreAdapterValues(dir, named);
      const path = join(dir, OPTIMIZER_FILE);
      if (!existsSync(path))
        throw new Error(`checkpoint: ${path} not found; the checkpoint is incomplete`);
      const { tensors, metadata } = readSafetensors(path);
      optimizer.importState(
        tensors,
        metadata,
        named.map(([key]) => key),
      );
    },
  };
}

/** Copies a checkpoint's adapter tensors into the training tensors, bit for bit. */
function restoreAdapterValues(dir: string, named: readonly [string, Tensor][]): void {
  const path = join(dir, ADAPTER_WEIGHTS_FILE);
  const { tensors } = readSafetensors(path);
  const problems: string[] = [];
  for (const [key, t] of named) {
    const stored = tensors.get(key);
    if (stored === undefined) {
      problems.push(`missing ${key}`);
      continue;
    }
    const values = decodeToFloat32(stored.data, stored.dtype, key);
    if (values.length !== t.size) {
      problems.push(`${key} has ${values.length} values, expected ${t.size}`);
      continue;
    }
    t.f32().set(values);
  }
  if (problems.length > 0) {
    throw new Error(
      `checkpoint: ${path} does not match the adapter being trained: ${problems.join("; ")}`,
    );
  }
}

/**
 * Trains the model's active LoRA adapter on tokenized examples. Returns when the steps are done
 * or `signal` aborts (after saving a checkpoint). Throws NonFiniteLossError on a NaN or infinite
 * loss.
 */
export async function fineTune(options: FineTuneOptions): Promise<FineTuneResult> {
  const { model, outDir } = options;
  checkFineTuneOptions(options);
  const named = trainableAdapterParameters(model, "fineTune");
  if (outDir !== null) prepareOutDir(outDir, options.resume ?? false);
  const params = named.map(([, t]) => t);
  const optimizer = new AdamW(params, {
    lr: options.lr,
    betas: options.betas ?? [0.9, 0.999],
    eps: options.eps ?? 1e-8,
    weightDecay: options.weightDecay ?? 0,
  });
  const iterator = new BatchIterator(options.train, {
    batchSize: options.batchSize,
    padTokenId: options.padTokenId,
    shuffle: true,
    seed: options.seed,
  });
  if (options.gradientCheckpointing) enableGradientCheckpointing(model);

  const validation = options.validation ?? null;
  const validate =
    validation !== null && validation.length > 0
      ? async () => {
          const report = await evaluateLossInterruptible(model, validation, {
            batchSize: options.evalBatchSize ?? options.batchSize,
            padTokenId: options.padTokenId,
            signal: options.signal,
          });
          return report === null ? null : { loss: report.loss, tokens: report.tokens };
        }
      : undefined;

  const loop: TrainLoopOptions<Batch> = {
    params,
    optimizerStep: (lr) => optimizer.step(lr),
    clipGradNorm: (p, maxNorm) => clipGradNorm([...p], maxNorm),
    gradNorm: (p) => gradNorm([...p]),
    batches: new IteratorSource(iterator),
    lossOf: (batch) => batchLoss(model, batch),
    countTokens: (batch) => ({ lossTokens: countTargets(batch), tokens: batch.tokens }),
    schedule: {
      kind: options.schedule ?? "cosine",
      lr: options.lr,
      warmupSteps: options.warmupSteps ?? 0,
      totalSteps: options.steps,
      minLrRatio: options.minLrRatio ?? 0,
    },
    gradAccum: options.gradAccum ?? 1,
    maxGradNorm: options.maxGradNorm ?? null,
    evalEvery: options.evalEvery ?? 0,
    validate,
    validateAtStart: true,
    saveEvery: options.saveEvery ?? 0,
    checkpoints:
      outDir === null
        ? undefined
        : new CheckpointStore(join(outDir, "checkpoints"), options.keepCheckpoints ?? 2),
    checkpointParts: checkpointParts(model, named, optimizer),
    resume: options.resume ?? false,
    rng: options.rng ?? dropoutRng(model),
    settings: options.settings,
    signal: options.signal,
    onStep:
      outDir !== null && options.resume === true
        ? removeEarlierAdapterOnFirstStep(outDir, options.onStep, options.log)
        : options.onStep,
    onValidation: options.onValidation,
    log: options.log,
    metricsLog: outDir === null ? undefined : new MetricsLog(join(outDir, METRICS_FILE)),
  };

  model.train();
  let result: TrainResult;
  try {
    result = await trainLoop(loop);
  } finally {
    model.eval();
  }
  let adapterDir: string | null = null;
  if (outDir !== null && result.reason === "completed") {
    saveAdapter(model, outDir);
    adapterDir = outDir;
  }
  return { ...result, adapterDir };
}

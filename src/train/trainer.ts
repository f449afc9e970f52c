// The training loop: gradient accumulation over micro-batches, clipping, an optimizer step at
// the scheduled learning rate, periodic validation and checkpoints, exact resume, a clean stop
// on an abort request (Ctrl-C) and on a non-finite loss.
//
// The loop is generic over the batch type and reaches the model, data and optimizer only
// through the functions in TrainLoopOptions, so the same loop serves the CLI, the library and
// tests on small hand-built models.
import { backward, endStep, Tensor, zeroGrad } from "../engine/index.js";
import { formatValue } from "../engine/format-value.js";
import { getArena, getHeap } from "../engine/memory.js";
import { CheckpointStore, newTrainerState, type CheckpointParts } from "./checkpoint-store.js";
import {
  formatStepLine,
  formatValidationLine,
  type MetricsLog,
  type StepMetrics,
  type ValidationMetrics,
} from "./progress.js";
import { learningRateAt, validateSchedule, type ScheduleConfig } from "./schedule.js";

/** A stream of training batches that can report and restore its position. */
export interface BatchSource<B> {
  /** Returns the next batch; the source starts a new epoch by itself when one ends. */
  next(): B;
  /** Completed passes over the data. */
  readonly epoch: number;
  /** The position as plain JSON, enough to continue with the same batches after a restart. */
  position(): unknown;
  restore(position: unknown): void;
}

export interface TokenCounts {
  /** Unmasked target tokens the batch's mean loss is over. */
  lossTokens: number;
  /** Input tokens of the batch for tokens/s (fineTune counts real tokens, not padding). */
  tokens: number;
}

/** A validation result: the mean loss over every unmasked token of the validation set. */
export interface ValidationResult {
  loss: number;
  tokens: number;
}

/** A random generator whose state goes into checkpoints (dropout, for example). */
export interface StatefulRng {
  state(): unknown;
  setState(state: unknown): void;
}

export interface TrainLoopOptions<B> {
  /** The tensors the optimizer updates; their `.grad` is read for the norm and clipping. */
  params: readonly Tensor[];
  /** Applies one update from the accumulated gradients at learning rate `lr`. */
  optimizerStep(lr: number): void;
  /** Clips the gradients to `maxNorm` and returns the norm before clipping. */
  clipGradNorm(params: readonly Tensor[], maxNorm: number): number;
  /** Returns the L2 norm of the gradients (used when clipping is off). */
  gradNorm(params: readonly Tensor[]): number;
  batches: BatchSource<B>;
  /**
   * Runs the forward pass of one micro-batch with gradients recorded and returns the scalar mean
   * loss over its unmasked tokens. Batches must not hold arena tensors, because the loop frees
   * the arena after each micro-batch.
   */
  lossOf(batch: B): Tensor;
  countTokens(batch: B): TokenCounts;
  schedule: ScheduleConfig;
  /** Micro-batches per optimizer step. Default 1. */
  gradAccum?: number;
  /** Gradient-norm clipping threshold; null or Infinity disables clipping. */
  maxGradNorm?: number | null;
  /** Runs validation every this many optimizer steps (and at the end); 0 disables it. */
  evalEvery?: number;
  /** Returns null when the run was interrupted during validation. */
  validate?: () => ValidationResult | null | Promise<ValidationResult | null>;
  /** Also validates before the first step of a new run, as the step-0 baseline. Default false. */
  validateAtStart?: boolean;
  /** Saves a checkpoint every this many optimizer steps and at the end; 0 only at the end. */
  saveEvery?: number;
  /** Checkpoint folder. Without it nothing is saved and resume is impossible. */
  checkpoints?: CheckpointStore;
  /** The adapter and optimizer files of a checkpoint. */
  checkpointParts?: CheckpointParts;
  /** Continue from the newest checkpoint in `checkpoints`. */
  resume?: boolean;
  rng?: StatefulRng;
  /** Settings stored in each checkpoint and compared on resume. */
  settings?: Record<string, unknown>;
  /** Aborting it saves a checkpoint after the current step and stops (Ctrl-C). */
  signal?: AbortSignal;
  onStep?: (metrics: StepMetrics) => void;
  onValidation?: (metrics: ValidationMetrics) => void;
  /** Receives the progress and validation lines (stderr in the CLI). */
  log?: (line: string) => void;
  metricsLog?: MetricsLog;
}

export type StopReason = "completed" | "aborted";

export interface TrainResult {
  reason: StopReason;
  /** Optimizer steps completed, counting steps from a resumed checkpoint. */
  step: number;
  /** The folder of the last checkpoint written, if any. */
  lastCheckpoint: string | null;
  lastLoss: number | null;
  validations: ValidationMetrics[];
}

/** Thrown when the loss or the gradient norm becomes NaN or infinite. */
export class NonFiniteLossError extends Error {
  readonly step: number;
  readonly lastCheckpoint: string | null;

  constructor(what: string, value: number, step: number, lastCheckpoint: string | null) {
    const kept =
      lastCheckpoint === null
        ? "No checkpoint was saved before it."
        : `The last good checkpoint is ${lastCheckpoint}; it was not overwritten.`;
    super(
      `training stopped: the ${what} is ${value} at step ${step}. ${kept} ` +
        `Lower the learning rate (--lr), enable clipping (--max-grad-norm) or check the data.`,
    );
    this.name = "NonFiniteLossError";
    this.step = step;
    this.lastCheckpoint = lastCheckpoint;
  }
}

interface LoopState {
  step: number;
  lastCheckpoint: string | null;
  /** The step of lastCheckpoint. */
  lastCheckpointStep: number | null;
}

/** Lets pending events (a SIGINT handler, for example) run between steps. */
function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Trains until `schedule.totalSteps` optimizer steps are done or `signal` aborts. Resolves with
 * the reason. Throws NonFiniteLossError on a NaN or infinite loss, before that step updates
 * anything.
 */
export async function trainLoop<B>(options: TrainLoopOptions<B>): Promise<TrainResult> {
  const gradAccum = options.gradAccum ?? 1;
  const evalEvery = options.evalEvery ?? 0;
  const saveEvery = options.saveEvery ?? 0;
  const maxGradNorm = options.maxGradNorm ?? null;
  validateSchedule(options.schedule);
  checkWholeNumber("gradAccum", gradAccum, 1);
  checkWholeNumber("evalEvery", evalEvery, 0);
  checkWholeNumber("saveEvery", saveEvery, 0);
  checkTrainable(options.params);
  const totalSteps = options.schedule.totalSteps;

  const state: LoopState = { step: 0, lastCheckpoint: null, lastCheckpointStep: null };
  if (options.resume) resumeFrom(options, state);

  const validations: ValidationMetrics[] = [];
  let lastLoss: number | null = null;
  if (options.validate && options.validateAtStart && state.step === 0) {
    const metrics = await runValidation(options, 0);
    if (metrics !== null) validations.push(metrics);
  }
  // A run interrupted during the validation of its last step saved a checkpoint at that step
  // without the validation, so the resumed run makes it up.
  const missedValidation =
    options.resume === true &&
    evalEvery > 0 &&
    state.step > 0 &&
    state.step % evalEvery === 0 &&
    options.metricsLog?.has("validation", state.step) === false;
  if (options.validate && missedValidation) {
    const metrics = await runValidation(options, state.step);
    if (metrics !== null) validations.push(metrics);
  }
  const startedAt = performance.now();
  const startStep = state.step;

  while (state.step < totalSteps) {
    if (options.signal?.aborted) {
      // A checkpoint saved at this step already contains everything the abort would save.
      if (state.lastCheckpointStep !== state.step) saveCheckpoint(options, state, "abort");
      return {
        reason: "aborted",
        step: state.step,
        lastCheckpoint: state.lastCheckpoint,
        lastLoss,
        validations,
      };
    }

    const stepStart = performance.now();
    const { loss, gradNorm, lossTokens, tokens } = runStep(options, state, gradAccum, maxGradNorm);
    lastLoss = loss;
    state.step++;

    const seconds = (performance.now() - stepStart) / 1000;
    const meanStepSeconds = (performance.now() - startedAt) / 1000 / (state.step - startStep);
    const heap = getHeap();
    const metrics: StepMetrics = {
      step: state.step,
      totalSteps,
      loss,
      learningRate: learningRateAt(state.step - 1, options.schedule),
      gradNorm,
      lossTokens,
      inputTokens: tokens,
      tokensPerSecond: tokens / Math.max(seconds, 1e-9),
      stepSeconds: seconds,
      etaSeconds: meanStepSeconds * (totalSteps - state.step),
      // The arena keeps its chunks between steps; only the part in use counts.
      memoryBytes: heap.bytesInUse - getArena().reservedBytes + getArena().usedBytes,
      peakMemoryBytes: heap.peakBytes,
      epoch: options.batches.epoch,
    };
    options.log?.(formatStepLine(metrics));
    options.metricsLog?.write("train", metrics);
    options.onStep?.(metrics);

    const last = state.step === totalSteps;
    if (options.validate && ((evalEvery > 0 && state.step % evalEvery === 0) || last)) {
      const validation = await runValidation(options, state.step);
      if (validation !== null) validations.push(validation);
    }
    if ((saveEvery > 0 && state.step % saveEvery === 0) || last) {
      saveCheckpoint(options, state, last ? "end" : "periodic");
    }
    await yieldToEvents();
  }
  return {
    reason: "completed",
    step: state.step,
    lastCheckpoint: state.lastCheckpoint,
    lastLoss,
    validations,
  };
}

function checkWholeNumber(name: string, value: number, min: number): void {
  if (!(Number.isInteger(value) && value >= min)) {
    throw new Error(
      `trainLoop: ${name} must be a whole number >= ${min}, got ${formatValue(value)}`,
    );
  }
}

/** Rejects a run whose backward pass would find no tensor to compute a gradient for. */
function checkTrainable(params: readonly Tensor[]): void {
  if (params.length === 0) {
    throw new Error("trainLoop: params is empty; pass the tensors the optimizer updates");
  }
  if (!params.some((p) => p.requiresGrad)) {
    throw new Error(
      `trainLoop: none of the ${params.length} params requires a gradient, so nothing can ` +
        `learn; set requiresGrad on them (for LoRA: an active, trainable, unmerged adapter)`,
    );
  }
}

/** Runs one optimizer step: accumulates gradients over the micro-batches, clips, updates. */
function runStep<B>(
  options: TrainLoopOptions<B>,
  state: LoopState,
  gradAccum: number,
  maxGradNorm: number | null,
): { loss: number; gradNorm: number; lossTokens: number; tokens: number } {
  const { params } = options;
  zeroGrad(params);

  // Each micro-batch's gradient is weighted by its share of the step's loss tokens, so the step
  // minimises the mean over all of them, as one large batch would, even when micro-batches hold
  // different numbers of unmasked tokens. With one micro-batch the weight is exactly 1.
  const micro = Array.from({ length: gradAccum }, () => options.batches.next());
  const counts = micro.map((batch) => options.countTokens(batch));
  const totalLossTokens = counts.reduce((sum, c) => sum + c.lossTokens, 0);
  let loss = 0;
  for (let i = 0; i < micro.length; i++) {
    const lossTensor = options.lossOf(micro[i]);
    const value = lossTensor.item();
    checkFinite("loss", value, state);
    const weight = totalLossTokens > 0 ? counts[i].lossTokens / totalLossTokens : 1 / gradAccum;
    loss += value * weight;
    backward(lossTensor, Tensor.full([1], weight));
    // Frees this micro-batch's activations before the next forward pass.
    endStep();
  }

  const clipping = maxGradNorm !== null && Number.isFinite(maxGradNorm);
  const gradNorm = clipping ? options.clipGradNorm(params, maxGradNorm) : options.gradNorm(params);
  checkFinite("gradient norm", gradNorm, state);
  options.optimizerStep(learningRateAt(state.step, options.schedule));
  endStep();

  const tokens = counts.reduce((sum, c) => sum + c.tokens, 0);
  return { loss, gradNorm, lossTokens: totalLossTokens, tokens };
}

function checkFinite(what: string, value: number, state: LoopState): void {
  if (!Number.isFinite(value)) {
    throw new NonFiniteLossError(what, value, state.step + 1, state.lastCheckpoint);
  }
}

async function runValidation<B>(
  options: TrainLoopOptions<B>,
  step: number,
): Promise<ValidationMetrics | null> {
  const started = performance.now();
  const result = await options.validate!();
  endStep();
  if (result === null) {
    options.log?.(`step ${step} validation interrupted`);
    return null;
  }
  const metrics: ValidationMetrics = {
    step,
    valLoss: result.loss,
    valPerplexity: Math.exp(result.loss),
    valTokens: result.tokens,
    seconds: (performance.now() - started) / 1000,
  };
  options.log?.(formatValidationLine(metrics));
  options.metricsLog?.write("validation", metrics);
  options.onValidation?.(metrics);
  return metrics;
}

function saveCheckpoint<B>(
  options: TrainLoopOptions<B>,
  state: LoopState,
  why: "periodic" | "end" | "abort",
): void {
  const { checkpoints, checkpointParts } = options;
  if (!checkpoints || !checkpointParts) return;
  const trainerState = newTrainerState({
    step: state.step,
    totalSteps: options.schedule.totalSteps,
    epoch: options.batches.epoch,
    dataPosition: options.batches.position(),
    rngState: options.rng?.state() ?? null,
    settings: options.settings ?? {},
  });
  state.lastCheckpoint = checkpoints.save(trainerState, checkpointParts);
  state.lastCheckpointStep = state.step;
  options.log?.(`saved checkpoint ${state.lastCheckpoint} (${why})`);
  options.metricsLog?.write("event", {
    step: state.step,
    event: `checkpoint-${why}`,
    path: state.lastCheckpoint,
  });
}

function resumeFrom<B>(options: TrainLoopOptions<B>, state: LoopState): void {
  const { checkpoints, checkpointParts } = options;
  if (!checkpoints || !checkpointParts) {
    throw new Error("trainLoop: resume needs `checkpoints` and `checkpointParts`");
  }
  const dir = checkpoints.latestDir();
  if (dir === null) {
    throw new Error(
      `trainLoop: --resume found no checkpoint in ${checkpoints.root} (no "latest" file); ` +
        `run without --resume to start from step 0`,
    );
  }
  const saved = checkpoints.load(dir, checkpointParts, (state) =>
    checkSameSettings(state.settings, options.settings ?? {}, dir),
  );
  if (saved.step > options.schedule.totalSteps) {
    throw new Error(
      `trainLoop: checkpoint ${dir} is at step ${saved.step}, past the run's ` +
        `${options.schedule.totalSteps} steps; raise --steps to continue it`,
    );
  }
  options.batches.restore(saved.dataPosition);
  if (options.rng && saved.rngState !== null) options.rng.setState(saved.rngState);
  state.step = saved.step;
  state.lastCheckpoint = dir;
  state.lastCheckpointStep = saved.step;
  options.metricsLog?.truncateAfter(saved.step);
  options.log?.(`resumed from ${dir} at step ${saved.step}`);
  const savedSteps = saved.settings.steps;
  const steps = options.settings?.steps;
  if (saved.step === options.schedule.totalSteps) {
    options.log?.(
      `the run had already reached its last step (${saved.step}); raise --steps to train it ` +
        `further`,
    );
  }
  if (savedSteps !== undefined && steps !== undefined && savedSteps !== steps) {
    options.log?.(
      `the run continues to step ${options.schedule.totalSteps} (it was set to ` +
        `${formatValue(savedSteps)}); the learning-rate schedule spans the new count`,
    );
  }
  options.metricsLog?.write("event", { step: saved.step, event: "resume", path: dir });
}

// Settings a resumed run may change: more (or fewer) steps continue the same run, and the
// learning-rate schedule then spans the new count. The default warmup is a share of the steps,
// so it changes with them.
const CHANGEABLE_ON_RESUME = new Set(["steps", "warmup"]);

// The value of a setting that a run records only when its option is given.
const UNRECORDED_DEFAULTS: Record<string, string> = { quantize: '"none"', dtype: '"auto"' };

/** Formats a setting for the resume error; quantize and dtype are absent at their default. */
function formatSetting(key: string, value: unknown): string {
  if (value === undefined) return UNRECORDED_DEFAULTS[key] ?? "not set";
  return JSON.stringify(value);
}

/** Throws when a setting that shapes the run differs from the checkpoint's. */
function checkSameSettings(
  saved: Record<string, unknown>,
  current: Record<string, unknown>,
  dir: string,
): void {
  const changed = Object.keys({ ...saved, ...current }).filter(
    (key) =>
      !CHANGEABLE_ON_RESUME.has(key) && JSON.stringify(saved[key]) !== JSON.stringify(current[key]),
  );
  if (changed.length > 0) {
    const list = changed
      .map(
        (key) => `${key}: ${formatSetting(key, saved[key])} -> ${formatSetting(key, current[key])}`,
      )
      .join(", ");
    throw new Error(
      `trainLoop: cannot resume from ${dir}: settings changed since it was saved (${list}); ` +
        `run with the original settings, or start a new run in another output folder`,
    );
  }
}

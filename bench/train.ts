// LoRA training throughput: train-smollm2, train-gpt2 and train-tinystories. The parent side
// (trainJob) prepares the checkpoint and runs one child process per weight dtype. The child side
// (measureTraining) loads the model, adds the adapter (LoRA dropout 0, PEFT's default) and times
// full training steps.
//
// One step = forward + loss (the model's loss, a chunked linear cross-entropy) + backward +
// AdamW step + endStep(), on a fixed batch of random token ids. Legend: B batch, T tokens.
import { backward, endStep, Tensor, zeroGrad, type QuantizeOption } from "../src/engine/index.js";
import { getHeap } from "../src/engine/memory.js";
import { AdamW } from "../src/engine/optim.js";
import { Rng } from "../src/engine/random.js";
import { getPool } from "../src/kernels/pool.js";
import { getRuntime } from "../src/kernels/runtime.js";
import { applyLora, trainableParameters } from "../src/lora/index.js";
import { loadModelFromDir } from "../src/models/index.js";
import { enableGradientCheckpointing } from "../src/train/checkpointing.js";
import type { BenchJob } from "./job.js";
import { KernelProfiler, formatProfile, type KernelTime } from "./profile.js";
import { currentLoad, median, peakRssBytes, runInChild } from "./process.js";
import {
  ensureRandomCheckpoint,
  randomTokenIds,
  type BenchModelName,
} from "./random-checkpoint.js";
import {
  compare,
  failedRow,
  megabytes,
  REFERENCE,
  skippedRow,
  type ComparedResult,
} from "./report.js";
import { benchFlags, fixtureDir, type BenchFlags, type WeightDtype } from "./flags.js";

/** Options of one measured training run (the child task's input). */
export interface TrainOptions {
  label: string;
  modelDir: string;
  dtype: WeightDtype;
  r: number;
  alpha: number;
  targets: string[];
  fanInFanOut: boolean;
  batch: number;
  seqLen: number;
  warmupSteps: number;
  /** Keep warming up until this many seconds have passed, even after warmupSteps. */
  warmupSeconds: number;
  steps: number;
  seed: number;
  /** Time every kernel and print the breakdown to stderr. */
  profile: boolean;
  gradientCheckpointing: boolean;
  /** Quantize the block Linear weights while loading (default "none"). */
  quantize?: QuantizeOption;
}

/** Medians over the measured steps of the time spent in each part of a step, in ms. */
export interface StepPhases {
  forwardAndLoss: number;
  backward: number;
  optimizer: number;
  endStep: number;
}

export interface TrainMeasurement {
  label: string;
  modelType: string;
  dtype: WeightDtype;
  threads: number;
  simd: string;
  batch: number;
  seqLen: number;
  tokensPerStep: number;
  trainableParameters: number;
  loadMs: number;
  warmupMs: number[];
  stepMs: number[];
  medianStepMs: number;
  /** CPU time of all threads per measured step: unlike wall time, barely changed by load. */
  cpuMs: number[];
  medianCpuMs: number;
  tokensPerSecond: number;
  phasesMs: StepPhases;
  /** Loss of the first and the last step: finite values show the step computed something. */
  firstLoss: number;
  lastLoss: number;
  peakRssBytes: number;
  /** Peak bytes allocated from the engine's heap: persistent tensors and the step arena. */
  heapPeakBytes: number;
  /** Heap bytes in use during the first step: before it, after forward + loss, after backward. */
  firstStepHeapBytes: { before: number; afterForward: number; afterBackward: number };
  wasmMemoryBytes: number;
  loadAverageStart: number;
  loadAverageEnd: number;
  kernels?: KernelTime[];
}

// ---- child side ----------------------------------------------------------------------------

/** Measures training steps in this process: the "train" task of bench/child.ts. */
export function measureTraining(input: unknown): TrainMeasurement {
  const options = input as TrainOptions;
  checkTrainOptions(options);
  const loadAverageStart = currentLoad();
  const t0 = performance.now();
  const model = loadModelFromDir(options.modelDir, options.dtype, { quantize: options.quantize });
  applyLora(
    model,
    {
      r: options.r,
      lora_alpha: options.alpha,
      lora_dropout: 0,
      target_modules: options.targets,
      fan_in_fan_out: options.fanInFanOut,
    },
    { rng: new Rng(options.seed) },
  );
  if (options.gradientCheckpointing) enableGradientCheckpointing(model);
  const params = trainableParameters(model).map(([, t]) => t);
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const loadMs = performance.now() - t0;

  // ids i32 [B, T], persistent so that endStep() keeps it; labels = ids (the loss shifts them).
  const { batch, seqLen } = options;
  const ids = Tensor.from(
    randomTokenIds(batch * seqLen, model.dims.vocabSize, options.seed),
    [batch, seqLen],
    "i32",
    { persistent: true },
  );
  model.train();
  const profiler = options.profile ? new KernelProfiler() : null;
  profiler?.start();

  const warmupMs: number[] = [];
  const stepMs: number[] = [];
  const cpuMs: number[] = [];
  const phases: StepPhases[] = [];
  let firstLoss = NaN;
  const firstStepHeapBytes = { before: getHeap().bytesInUse, afterForward: 0, afterBackward: 0 };
  let lastLoss = NaN;
  const warmupStart = performance.now();
  let measured = false;
  for (let step = 0; stepMs.length < options.steps; step++) {
    measured ||=
      step >= options.warmupSteps &&
      performance.now() - warmupStart >= 1000 * options.warmupSeconds;
    profiler?.setRecording(measured);
    const cpu0 = process.cpuUsage();
    const s0 = performance.now();
    zeroGrad(params);
    const loss = model.loss(ids, ids);
    const lossValue = loss.item();
    const heapAfterForward = getHeap().bytesInUse;
    const s1 = performance.now();
    backward(loss);
    const s2 = performance.now();
    const heapAfterBackward = getHeap().bytesInUse;
    optimizer.step();
    const s3 = performance.now();
    endStep();
    const s4 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    if (step === 0) {
      firstLoss = lossValue;
      firstStepHeapBytes.afterForward = heapAfterForward;
      firstStepHeapBytes.afterBackward = heapAfterBackward;
    }
    lastLoss = lossValue;
    if (!Number.isFinite(lossValue)) {
      throw new Error(`train ${options.label}: step ${step} loss is ${lossValue}`);
    }
    if (!measured) {
      warmupMs.push(s4 - s0);
      continue;
    }
    stepMs.push(s4 - s0);
    cpuMs.push((cpu.user + cpu.system) / 1000);
    phases.push({
      forwardAndLoss: s1 - s0,
      backward: s2 - s1,
      optimizer: s3 - s2,
      endStep: s4 - s3,
    });
  }
  profiler?.stop();

  const medianStepMs = median(stepMs);
  const tokensPerStep = batch * seqLen;
  const kernels = profiler?.perStep(options.steps);
  if (kernels !== undefined) {
    // The kernel totals are means over the measured steps, so compare them with the mean step.
    const mean = (values: number[]): number =>
      values.reduce((sum, v) => sum + v, 0) / values.length;
    const step = { ms: mean(stepMs), cpuMs: mean(cpuMs) };
    console.error(formatProfile(options.label, kernels, step).join("\n"));
  }
  return {
    label: options.label,
    modelType: model.modelType,
    dtype: options.dtype,
    threads: getPool().threads,
    simd: getRuntime().simd,
    batch,
    seqLen,
    tokensPerStep,
    trainableParameters: params.reduce((n, p) => n + p.size, 0),
    loadMs,
    warmupMs,
    stepMs,
    medianStepMs,
    cpuMs,
    medianCpuMs: median(cpuMs),
    tokensPerSecond: (1000 * tokensPerStep) / medianStepMs,
    phasesMs: {
      forwardAndLoss: median(phases.map((p) => p.forwardAndLoss)),
      backward: median(phases.map((p) => p.backward)),
      optimizer: median(phases.map((p) => p.optimizer)),
      endStep: median(phases.map((p) => p.endStep)),
    },
    firstLoss,
    lastLoss,
    peakRssBytes: peakRssBytes(),
    heapPeakBytes: getHeap().peakBytes,
    firstStepHeapBytes,
    wasmMemoryBytes: getHeap().memoryBytes,
    loadAverageStart,
    loadAverageEnd: currentLoad(),
    kernels,
  };
}

function checkTrainOptions(o: TrainOptions): void {
  const minimums = {
    r: 1,
    batch: 1,
    seqLen: 1,
    steps: 1,
    seed: 0,
    warmupSteps: 0,
  } as const;
  for (const [key, min] of Object.entries(minimums) as [keyof typeof minimums, number][]) {
    if (!Number.isInteger(o[key]) || o[key] < min) {
      throw new Error(`train task: ${key} must be a whole number >= ${min}, got ${o[key]}`);
    }
  }
  if (!(o.warmupSeconds >= 0)) {
    throw new Error(`train task: warmupSeconds must be a number >= 0, got ${o.warmupSeconds}`);
  }
  if (o.dtype !== "f32" && o.dtype !== "bf16") {
    throw new Error(`train task: dtype must be "f32" or "bf16", got ${JSON.stringify(o.dtype)}`);
  }
}

// ---- parent side ---------------------------------------------------------------------------

/** The model, adapter and batch shape of one training job. */
export interface TrainSpec {
  /** A random-weight benchmark model, or a fixture folder relative to the fixtures root. */
  model: { random: BenchModelName } | { fixture: string };
  r: number;
  alpha: number;
  targets: string[];
  /** True for GPT-2's Conv1D weights ([in, out]), as PEFT's config needs it. */
  fanInFanOut: boolean;
  batch: number;
  seqLen: number;
}

/** Returns the options of one measured run of `spec`: its LoRA and shape, and the bench flags. */
export function trainOptionsOf(
  spec: TrainSpec,
  flags: BenchFlags,
  run: Pick<TrainOptions, "label" | "modelDir" | "dtype" | "batch" | "quantize">,
): TrainOptions {
  return {
    ...run,
    r: spec.r,
    alpha: spec.alpha,
    targets: spec.targets,
    fanInFanOut: spec.fanInFanOut,
    seqLen: spec.seqLen,
    warmupSteps: flags.warmupSteps,
    warmupSeconds: flags.warmupSeconds,
    steps: flags.steps,
    seed: 1,
    profile: flags.profile,
    gradientCheckpointing: flags.gradientCheckpointing,
  };
}

export const TRAIN_SPECS: Record<string, TrainSpec> = {
  "train-smollm2": {
    model: { random: "smollm2-135m" },
    r: 16,
    alpha: 32,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
    fanInFanOut: false,
    batch: 4,
    seqLen: 256,
  },
  "train-gpt2": {
    model: { random: "gpt2-124m" },
    r: 16,
    alpha: 32,
    targets: ["c_attn"],
    fanInFanOut: true,
    batch: 4,
    seqLen: 256,
  },
  "train-tinystories": {
    model: { fixture: "models/TinyStories-656K" },
    r: 8,
    alpha: 16,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
    fanInFanOut: false,
    batch: 4,
    seqLen: 64,
  },
  // For the smoke test: the same path on a model that trains in milliseconds.
  "train-tiny": {
    model: { random: "tiny-llama" },
    r: 4,
    alpha: 8,
    targets: ["q_proj", "v_proj"],
    fanInFanOut: false,
    batch: 2,
    seqLen: 16,
  },
};

/** Returns the benchmark job `name` (a key of TRAIN_SPECS). */
export function trainJob(name: string, flags: BenchFlags = benchFlags()): BenchJob {
  const spec = TRAIN_SPECS[name];
  if (spec === undefined) {
    throw new Error(
      `trainJob: unknown job "${name}"; known: ${Object.keys(TRAIN_SPECS).join(", ")}`,
    );
  }
  return { run: () => runTrainJob(name, spec, flags) };
}

async function runTrainJob(
  name: string,
  spec: TrainSpec,
  flags: BenchFlags,
): Promise<ComparedResult[]> {
  let modelDir: string;
  if ("random" in spec.model) modelDir = await ensureRandomCheckpoint(spec.model.random);
  else {
    const dir = fixtureDir(spec.model.fixture);
    if (dir === null) {
      return [skippedRow(name, `fixture ${spec.model.fixture} not found; set TSLORA_FIXTURES`)];
    }
    modelDir = dir;
  }
  const rows: ComparedResult[] = [];
  const batch = flags.batch ?? spec.batch;
  for (const dtype of flags.dtypes ?? (["f32"] as const)) {
    const checkpointing = flags.gradientCheckpointing ? " gradient-checkpointing" : "";
    const label = `${name} ${dtype} B=${batch} T=${spec.seqLen} r=${spec.r}${checkpointing}`;
    const options = trainOptionsOf(spec, flags, { label, modelDir, dtype, batch });
    try {
      const result = (await runInChild(
        { task: "train", options },
        { nodeArgs: flags.nodeArgs },
      )) as TrainMeasurement;
      rows.push(...trainRows(name, result));
    } catch (err) {
      console.error(err instanceof Error ? err.message : err);
      rows.push(failedRow(label, err));
      process.exitCode = 1;
    }
  }
  return rows;
}

/** Builds the report rows of one training measurement: speed, then peak memory. */
export function trainRows(job: string, m: TrainMeasurement): ComparedResult[] {
  const reference = REFERENCE[job];
  const p = m.phasesMs;
  const speed: ComparedResult = {
    name: m.label,
    value: m.tokensPerSecond,
    unit: "tokens/s",
    note:
      `${m.medianStepMs.toFixed(0)} ms/step, median of ${m.stepMs.length} after ` +
      `${m.warmupMs.length} warm-up steps, ` +
      `CPU ${m.medianCpuMs.toFixed(0)} ms/step; ` +
      `forward+loss ${p.forwardAndLoss.toFixed(0)}, backward ${p.backward.toFixed(0)}, ` +
      `AdamW ${p.optimizer.toFixed(1)} ms; ${m.threads} threads, load ` +
      `${m.loadAverageStart.toFixed(1)}→${m.loadAverageEnd.toFixed(1)}`,
    details: m,
  };
  // PyTorch's figures are f32; a bf16 row is compared with them too, to show what bf16 buys.
  const memory: ComparedResult = {
    name: `${m.label} peak RSS`,
    value: megabytes(m.peakRssBytes),
    unit: "MB",
  };
  return [compare(speed, reference?.speed), compare(memory, reference?.memoryMB)];
}

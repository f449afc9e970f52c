// Quantized frozen bases: quant-train-smollm2 and quant-decode-smollm2 repeat the train-smollm2
// and decode-smollm2 measurements three times, each in its own child process: with f32 weights,
// then with the block Linear weights quantized to int8, then to NF4. They report peak memory and
// speed against the f32 run. Targets: peak RSS at most 0.6x (int8) and 0.4x (NF4) of f32, and
// faster decoding.
import type { QuantizeOption } from "../src/engine/index.js";
import { decodeRows, DECODE_SPECS, type DecodeMeasurement, type DecodeOptions } from "./decode.js";
import { benchFlags, type BenchFlags } from "./flags.js";
import type { BenchJob } from "./job.js";
import { runInChild } from "./process.js";
import { ensureRandomCheckpoint } from "./random-checkpoint.js";
import { failedRow, type ComparedResult } from "./report.js";
import { trainRows, TRAIN_SPECS, type TrainMeasurement, type TrainOptions } from "./train.js";

const VARIANTS: readonly QuantizeOption[] = ["none", "int8", "nf4"];

/** Peak RSS targets relative to the f32 run. */
const MEMORY_TARGETS: Partial<Record<QuantizeOption, number>> = { int8: 0.6, nf4: 0.4 };

interface Measured {
  quantize: QuantizeOption;
  peakRssBytes: number;
  /** Tokens per second: training throughput, or decode speed. */
  speed: number;
}

/** Returns the job that runs `base` ("train-smollm2" or "decode-smollm2") per quantization. */
export function quantJob(base: string, flags: BenchFlags = benchFlags()): BenchJob {
  if (base === "train-smollm2") return { run: () => runTrain(base, flags) };
  if (base === "decode-smollm2") return { run: () => runDecode(base, flags) };
  throw new Error(`quantJob: unknown base job "${base}"; use train-smollm2 or decode-smollm2`);
}

function variantName(quantize: QuantizeOption): string {
  return quantize === "none" ? "f32" : `f32+${quantize}`;
}

async function runTrain(base: string, flags: BenchFlags): Promise<ComparedResult[]> {
  const spec = TRAIN_SPECS[base];
  if (!("random" in spec.model)) throw new Error(`quantJob: ${base} must use a random model`);
  const modelDir = await ensureRandomCheckpoint(spec.model.random);
  const rows: ComparedResult[] = [];
  const measured: Measured[] = [];
  // The batch of train-smollm2 (4 x 256), unless --batch overrides it.
  const batch = flags.batch ?? spec.batch;
  for (const quantize of VARIANTS) {
    const label =
      `quant-${base} ${variantName(quantize)} B=${batch} T=${spec.seqLen} r=${spec.r}` +
      (flags.gradientCheckpointing ? " gradient-checkpointing" : "");
    const options: TrainOptions = {
      label,
      modelDir,
      dtype: "f32",
      r: spec.r,
      alpha: spec.alpha,
      targets: spec.targets,
      fanInFanOut: spec.fanInFanOut,
      batch,
      seqLen: spec.seqLen,
      warmupSteps: flags.warmupSteps,
      steps: flags.steps,
      seed: 1,
      profile: flags.profile,
      gradientCheckpointing: flags.gradientCheckpointing,
      quantize,
    };
    try {
      const result = (await runInChild(
        { task: "train", options },
        { nodeArgs: flags.nodeArgs },
      )) as TrainMeasurement;
      rows.push(...trainRows(`quant-${base}`, result));
      measured.push({ quantize, peakRssBytes: result.peakRssBytes, speed: result.tokensPerSecond });
    } catch (err) {
      console.error(err instanceof Error ? err.message : err);
      rows.push(failedRow(label, err));
      process.exitCode = 1;
    }
  }
  return [...rows, ...ratioRows(`quant-${base}`, measured, false)];
}

async function runDecode(base: string, flags: BenchFlags): Promise<ComparedResult[]> {
  const spec = DECODE_SPECS[base];
  const modelDir = await ensureRandomCheckpoint(spec.model);
  const rows: ComparedResult[] = [];
  const measured: Measured[] = [];
  for (const quantize of VARIANTS) {
    const label =
      `quant-${base} ${variantName(quantize)} ` +
      `prompt=${spec.promptTokens} new=${spec.newTokens}`;
    const options: DecodeOptions = {
      label,
      modelDir,
      dtype: "f32",
      promptTokens: spec.promptTokens,
      newTokens: spec.newTokens,
      runs: flags.steps,
      seed: 1,
      profile: flags.profile,
      quantize,
    };
    try {
      const result = (await runInChild(
        { task: "decode", options },
        { nodeArgs: flags.nodeArgs },
      )) as DecodeMeasurement;
      rows.push(...decodeRows(`quant-${base}`, result));
      measured.push({
        quantize,
        peakRssBytes: result.peakRssBytes,
        speed: result.medianDecodeTokensPerSecond,
      });
    } catch (err) {
      console.error(err instanceof Error ? err.message : err);
      rows.push(failedRow(label, err));
      process.exitCode = 1;
    }
  }
  return [...rows, ...ratioRows(`quant-${base}`, measured, true)];
}

// Rows of peak RSS and speed relative to the f32 run, with the targets in the notes.
function ratioRows(job: string, measured: Measured[], decoding: boolean): ComparedResult[] {
  const reference = measured.find((m) => m.quantize === "none");
  if (reference === undefined) return [];
  const rows: ComparedResult[] = [];
  for (const m of measured.filter((x) => x.quantize !== "none")) {
    const memory = m.peakRssBytes / reference.peakRssBytes;
    const target = MEMORY_TARGETS[m.quantize];
    rows.push({
      name: `${job} ${m.quantize} peak RSS / f32`,
      value: memory,
      unit: "x",
      note:
        target === undefined
          ? undefined
          : `target <= ${target}: ${memory <= target ? "met" : "missed"}`,
    });
    const speed = m.speed / reference.speed;
    rows.push({
      name: `${job} ${m.quantize} speed / f32`,
      value: speed,
      unit: "x",
      note: decoding ? `target > 1: ${speed > 1 ? "met" : "missed"}` : undefined,
    });
  }
  return rows;
}

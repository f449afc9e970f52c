// Quantized frozen bases: quant-train-smollm2 and quant-decode-smollm2 repeat the train-smollm2
// and decode-smollm2 measurements, each variant in its own child process: with f32 weights, then
// with the block Linear weights quantized to int8 and to NF4. The quantized runs load two copies
// of the random checkpoint: one stored in f32 (the embedding, which is also the output layer,
// stays f32) and one stored in bf16 like the published SmolLM2-135M (it stays bf16). They report
// peak memory and speed against the f32 run. Targets: peak RSS at most 0.6x (int8) and 0.4x (NF4)
// of f32, and faster decoding.
import type { QuantizeOption } from "../src/engine/index.js";
import { decodeRows, DECODE_SPECS, type DecodeMeasurement, type DecodeOptions } from "./decode.js";
import { benchFlags, type BenchFlags } from "./flags.js";
import type { BenchJob } from "./job.js";
import { runInChild } from "./process.js";
import { ensureRandomCheckpoint, type BenchModelName } from "./random-checkpoint.js";
import { failedRow, type ComparedResult } from "./report.js";
import { trainOptionsOf, trainRows, TRAIN_SPECS, type TrainMeasurement } from "./train.js";

/** One measured run: the quantization and the dtype the checkpoint is stored (and loaded) in. */
interface Variant {
  quantize: QuantizeOption;
  stored: "f32" | "bf16";
}

const VARIANTS: readonly Variant[] = [
  { quantize: "none", stored: "f32" },
  { quantize: "int8", stored: "f32" },
  { quantize: "nf4", stored: "f32" },
  { quantize: "int8", stored: "bf16" },
  { quantize: "nf4", stored: "bf16" },
];

/** Peak RSS targets relative to the f32 run. */
const MEMORY_TARGETS: Partial<Record<QuantizeOption, number>> = { int8: 0.6, nf4: 0.4 };

interface Measured {
  variant: Variant;
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

function variantName({ quantize, stored }: Variant): string {
  return quantize === "none" ? stored : `${stored}+${quantize}`;
}

// The checkpoint of a variant: the job's f32 random model, or its copy stored in bf16.
async function checkpointOf(model: BenchModelName, variant: Variant): Promise<string> {
  if (variant.stored === "f32") return ensureRandomCheckpoint(model);
  if (model !== "smollm2-135m") {
    throw new Error(`quantJob: no bf16 copy of the random ${model} checkpoint`);
  }
  return ensureRandomCheckpoint("smollm2-135m-bf16");
}

async function runTrain(base: string, flags: BenchFlags): Promise<ComparedResult[]> {
  const spec = TRAIN_SPECS[base];
  if (!("random" in spec.model)) throw new Error(`quantJob: ${base} must use a random model`);
  const rows: ComparedResult[] = [];
  const measured: Measured[] = [];
  // The batch of train-smollm2 (4 x 256), unless --batch overrides it.
  const batch = flags.batch ?? spec.batch;
  for (const variant of VARIANTS) {
    const { quantize } = variant;
    const label =
      `quant-${base} ${variantName(variant)} B=${batch} T=${spec.seqLen} r=${spec.r}` +
      (flags.gradientCheckpointing ? " gradient-checkpointing" : "");
    const modelDir = await checkpointOf(spec.model.random, variant);
    const options = trainOptionsOf(spec, flags, {
      label,
      modelDir,
      dtype: variant.stored,
      batch,
      quantize,
    });
    try {
      const result = (await runInChild(
        { task: "train", options },
        { nodeArgs: flags.nodeArgs },
      )) as TrainMeasurement;
      rows.push(...trainRows(`quant-${base}`, result));
      measured.push({ variant, peakRssBytes: result.peakRssBytes, speed: result.tokensPerSecond });
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
  const rows: ComparedResult[] = [];
  const measured: Measured[] = [];
  for (const variant of VARIANTS) {
    const { quantize } = variant;
    const label =
      `quant-${base} ${variantName(variant)} ` +
      `prompt=${spec.promptTokens} new=${spec.newTokens}`;
    const options: DecodeOptions = {
      label,
      modelDir: await checkpointOf(spec.model, variant),
      dtype: variant.stored,
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
        variant,
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
  const reference = measured.find((m) => m.variant.quantize === "none");
  if (reference === undefined) return [];
  const rows: ComparedResult[] = [];
  for (const m of measured.filter((x) => x.variant.quantize !== "none")) {
    const name = `${job} ${variantName(m.variant)}`;
    const memory = m.peakRssBytes / reference.peakRssBytes;
    const target = MEMORY_TARGETS[m.variant.quantize];
    rows.push({
      name: `${name} peak RSS / f32`,
      value: memory,
      unit: "x",
      note:
        target === undefined
          ? undefined
          : `target <= ${target}: ${memory <= target ? "met" : "missed"}`,
    });
    const speed = m.speed / reference.speed;
    rows.push({
      name: `${name} speed / f32`,
      value: speed,
      unit: "x",
      note: decoding ? `target > 1: ${speed > 1 ? "met" : "missed"}` : undefined,
    });
  }
  return rows;
}

// Greedy decoding throughput: decode-smollm2 and decode-gpt2, batch 1, a 128-token prompt of
// random ids and 64 new tokens, with f32 and bf16 weights. The parent side (decodeJob) runs one
// child process per dtype; the child side (measureDecoding) times generate() calls.
//
// The first new token comes out of the prefill (the forward over the prompt); each further token
// takes one decode step with the KV cache. Reported: prefill time, and decode tokens/s = 63
// tokens / the time from the first new token to the last. The end-to-end rate (64 tokens over
// prefill + decode) is in the details.
import type { QuantizeOption } from "../src/engine/index.js";
import { getHeap } from "../src/engine/memory.js";
import { generate } from "../src/generate/index.js";
import { getPool } from "../src/kernels/pool.js";
import { getRuntime } from "../src/kernels/runtime.js";
import { loadModelFromDir } from "../src/models/index.js";
import { benchFlags, type BenchFlags, type WeightDtype } from "./flags.js";
import type { BenchJob } from "./job.js";
import { currentLoad, median, peakRssBytes, runInChild } from "./process.js";
import { formatProfile, KernelProfiler, type KernelTime } from "./profile.js";
import {
  ensureRandomCheckpoint,
  randomTokenIds,
  type BenchModelName,
} from "./random-checkpoint.js";
import { compare, failedRow, megabytes, REFERENCE, type ComparedResult } from "./report.js";

export interface DecodeOptions {
  label: string;
  modelDir: string;
  dtype: WeightDtype;
  promptTokens: number;
  newTokens: number;
  /** Timed generate() calls after one warm-up call. */
  runs: number;
  seed: number;
  profile: boolean;
  /** Quantize the block Linear weights while loading (default "none"). */
  quantize?: QuantizeOption;
}

export interface DecodeMeasurement {
  label: string;
  modelType: string;
  dtype: WeightDtype;
  threads: number;
  simd: string;
  promptTokens: number;
  newTokens: number;
  loadMs: number;
  /** Per run: prompt forward + first token, in ms. */
  prefillMs: number[];
  /** Per run: tokens 2..newTokens per second. */
  decodeTokensPerSecond: number[];
  /** Per run: newTokens / (prefill + decode). */
  endToEndTokensPerSecond: number[];
  medianPrefillMs: number;
  medianDecodeTokensPerSecond: number;
  medianEndToEndTokensPerSecond: number;
  peakRssBytes: number;
  heapPeakBytes: number;
  loadAverageStart: number;
  loadAverageEnd: number;
  kernels?: KernelTime[];
}

// ---- child side ----------------------------------------------------------------------------

interface RunTiming {
  prefillMs: number;
  decodeMs: number;
  totalMs: number;
  /** The whole generate() call, wall and CPU time (for the kernel profile). */
  callMs: number;
  callCpuMs: number;
}

/** Measures generate() calls in this process: the "decode" task of bench/child.ts. */
export function measureDecoding(input: unknown): DecodeMeasurement {
  const options = input as DecodeOptions;
  checkDecodeOptions(options);
  const loadAverageStart = currentLoad();
  const t0 = performance.now();
  const model = loadModelFromDir(options.modelDir, options.dtype, { quantize: options.quantize });
  const loadMs = performance.now() - t0;
  const prompt = Array.from(
    randomTokenIds(options.promptTokens, model.dims.vocabSize, options.seed),
  );

  const timeRun = (newTokens: number): RunTiming => {
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const result = generate(model, [prompt], {
      maxNewTokens: newTokens,
      eosTokenId: null,
      onToken: () => times.push(performance.now()),
    });
    const callMs = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const generated = result.tokens[0].length;
    if (generated !== newTokens || times.length !== newTokens) {
      throw new Error(
        `decode ${options.label}: generated ${generated} tokens, expected ${newTokens}`,
      );
    }
    const first = times[0];
    const last = times[times.length - 1];
    return {
      prefillMs: first - start,
      decodeMs: last - first,
      totalMs: last - start,
      callMs,
      callCpuMs: (cpu.user + cpu.system) / 1000,
    };
  };

  // One short call first: V8 compiles the kernels and the prefill shapes get their first run.
  timeRun(Math.min(4, options.newTokens));
  const profiler = options.profile ? new KernelProfiler() : null;
  profiler?.start();
  profiler?.setRecording(true);
  const runs: RunTiming[] = [];
  for (let i = 0; i < options.runs; i++) runs.push(timeRun(options.newTokens));
  profiler?.stop();

  const decodeSteps = options.newTokens - 1;
  const prefillMs = runs.map((r) => r.prefillMs);
  const decodeRates = runs.map((r) => (decodeSteps > 0 ? (1000 * decodeSteps) / r.decodeMs : NaN));
  const endToEnd = runs.map((r) => (1000 * options.newTokens) / r.totalMs);
  const kernels = profiler?.perStep(options.runs);
  if (kernels !== undefined) {
    const mean = (values: number[]): number =>
      values.reduce((sum, v) => sum + v, 0) / values.length;
    const call = { ms: mean(runs.map((r) => r.callMs)), cpuMs: mean(runs.map((r) => r.callCpuMs)) };
    const label = `${options.label} (per generate call)`;
    console.error(formatProfile(label, kernels, call).join("\n"));
  }
  return {
    label: options.label,
    modelType: model.modelType,
    dtype: options.dtype,
    threads: getPool().threads,
    simd: getRuntime().simd,
    promptTokens: options.promptTokens,
    newTokens: options.newTokens,
    loadMs,
    prefillMs,
    decodeTokensPerSecond: decodeRates,
    endToEndTokensPerSecond: endToEnd,
    medianPrefillMs: median(prefillMs),
    medianDecodeTokensPerSecond: median(decodeRates),
    medianEndToEndTokensPerSecond: median(endToEnd),
    peakRssBytes: peakRssBytes(),
    heapPeakBytes: getHeap().peakBytes,
    loadAverageStart,
    loadAverageEnd: currentLoad(),
    kernels,
  };
}

function checkDecodeOptions(o: DecodeOptions): void {
  for (const key of ["promptTokens", "newTokens", "runs"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) {
      throw new Error(`decode task: ${key} must be a whole number >= 1, got ${o[key]}`);
    }
  }
  if (o.dtype !== "f32" && o.dtype !== "bf16") {
    throw new Error(`decode task: dtype must be "f32" or "bf16", got ${JSON.stringify(o.dtype)}`);
  }
}

// ---- parent side ---------------------------------------------------------------------------

export interface DecodeSpec {
  model: BenchModelName;
  promptTokens: number;
  newTokens: number;
}

export const DECODE_SPECS: Record<string, DecodeSpec> = {
  "decode-smollm2": { model: "smollm2-135m", promptTokens: 128, newTokens: 64 },
  "decode-gpt2": { model: "gpt2-124m", promptTokens: 128, newTokens: 64 },
  // For the smoke test.
  "decode-tiny": { model: "tiny-gpt2", promptTokens: 16, newTokens: 8 },
};

/** Returns the benchmark job `name` (a key of DECODE_SPECS). */
export function decodeJob(name: string, flags: BenchFlags = benchFlags()): BenchJob {
  const spec = DECODE_SPECS[name];
  if (spec === undefined) {
    throw new Error(
      `decodeJob: unknown job "${name}"; known: ${Object.keys(DECODE_SPECS).join(", ")}`,
    );
  }
  return { run: () => runDecodeJob(name, spec, flags) };
}

async function runDecodeJob(
  name: string,
  spec: DecodeSpec,
  flags: BenchFlags,
): Promise<ComparedResult[]> {
  const modelDir = await ensureRandomCheckpoint(spec.model);
  const rows: ComparedResult[] = [];
  for (const dtype of flags.dtypes ?? (["f32", "bf16"] as const)) {
    const options: DecodeOptions = {
      label: `${name} ${dtype} prompt=${spec.promptTokens} new=${spec.newTokens}`,
      modelDir,
      dtype,
      promptTokens: spec.promptTokens,
      newTokens: spec.newTokens,
      runs: flags.steps,
      seed: 1,
      profile: flags.profile,
    };
    try {
      const result = (await runInChild(
        { task: "decode", options },
        { nodeArgs: flags.nodeArgs },
      )) as DecodeMeasurement;
      rows.push(...decodeRows(name, result));
    } catch (err) {
      console.error(err instanceof Error ? err.message : err);
      rows.push(failedRow(options.label, err));
      process.exitCode = 1;
    }
  }
  return rows;
}

/** Builds the report rows of one decode measurement: decode speed, prefill time, peak memory. */
export function decodeRows(job: string, m: DecodeMeasurement): ComparedResult[] {
  const speed: ComparedResult = {
    name: m.label,
    value: m.medianDecodeTokensPerSecond,
    unit: "tokens/s",
    note:
      `median of ${m.prefillMs.length} runs; with prefill ` +
      `${m.medianEndToEndTokensPerSecond.toFixed(1)} tokens/s; ${m.threads} threads, load ` +
      `${m.loadAverageStart.toFixed(1)}→${m.loadAverageEnd.toFixed(1)}`,
    details: m,
  };
  const prefill: ComparedResult = {
    name: `${m.label} prefill`,
    value: m.medianPrefillMs,
    unit: "ms",
    note: `${m.promptTokens} prompt tokens and the first new token`,
  };
  const memory: ComparedResult = {
    name: `${m.label} peak RSS`,
    value: megabytes(m.peakRssBytes),
    unit: "MB",
  };
  return [compare(speed, REFERENCE[job]?.speed), prefill, memory];
}

// Entry of `npm run bench`: node dist/bench/main.js [job...] [--json]. Runs the named jobs (all
// of them when none is named) and prints one line per measurement, or a JSON array with --json.
import { loadavg } from "node:os";
import { getRuntime } from "../src/kernels/runtime.js";
import { BENCH_FLAGS_HELP } from "./flags.js";
import type { BenchJob, BenchResult } from "./job.js";

// One line per job: its name and a loader, so a run imports only the jobs it names.
const JOBS: Record<string, () => Promise<BenchJob>> = {
  gemm: async () => (await import("./gemm.js")).job,
  "train-smollm2": async () => (await import("./train.js")).trainJob("train-smollm2"),
  "train-gpt2": async () => (await import("./train.js")).trainJob("train-gpt2"),
  "train-tinystories": async () => (await import("./train.js")).trainJob("train-tinystories"),
  "decode-smollm2": async () => (await import("./decode.js")).decodeJob("decode-smollm2"),
  "decode-gpt2": async () => (await import("./decode.js")).decodeJob("decode-gpt2"),
  "quant-train-smollm2": async () => (await import("./quant.js")).quantJob("train-smollm2"),
  "quant-decode-smollm2": async () => (await import("./quant.js")).quantJob("decode-smollm2"),
};

function usage(): string {
  const jobs = Object.keys(JOBS).join(", ");
  return `usage: node dist/bench/main.js [job...] [--json]\njobs: ${jobs}\n${BENCH_FLAGS_HELP}`;
}

async function main(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage());
    return 0;
  }
  const names = argv.filter((a) => !a.startsWith("--"));
  const unknown = names.filter((n) => !(n in JOBS));
  if (unknown.length > 0) {
    console.error(`bench: unknown job ${unknown.join(", ")}\n${usage()}`);
    return 2;
  }
  const selected = names.length > 0 ? names : Object.keys(JOBS);
  const simd = getRuntime().simd;
  const results: BenchResult[] = [];
  // Other processes on the machine slow every measurement down; the load average shows how much.
  const load = loadavg()[0];
  if (!json) {
    console.log(`bench: ${simd} kernels, node ${process.version}, load average ${load.toFixed(1)}`);
  }
  for (const name of selected) {
    const job = await JOBS[name]();
    for (const result of await job.run()) {
      results.push({ ...result, job: name });
      if (!json) console.log(formatResult(result));
    }
  }
  if (json) {
    const loadAverage = load;
    console.log(JSON.stringify({ simd, node: process.version, loadAverage, results }, null, 2));
  }
  return 0;
}

function formatResult(r: BenchResult): string {
  // Ratios need two decimals: a target of 0.4x must not read as met at 0.44x.
  let digits = r.value >= 100 ? 0 : 1;
  if (r.unit === "x") digits = 2;
  const value = r.value.toFixed(digits);
  return `${r.name.padEnd(56)} ${value.padStart(8)} ${r.unit}${r.note ? `  (${r.note})` : ""}`;
}

process.exitCode = await main(process.argv.slice(2));
